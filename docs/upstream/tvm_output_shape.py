"""TVM 0.27's ONNX frontend ignores ConvTranspose `output_shape`.

Input 1x1x4x4, kernel 3x3, stride 2, output_shape [10, 9]: the spec's output is 1x1x10x9 (total padding
(-1, 0) -> zero-filled border). TVM returns the shape the pads alone would give, 9x9.
Exit status 1 while the bug is present.
"""
import numpy as np
import tvm
from onnx import helper, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], strides=[2, 2], output_shape=[10, 9])
graph = helper.make_graph([node], "output_shape", [helper.make_tensor_value_info("X", 1, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("Y", 1, [1, 1, 10, 9])],
                          [numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "W")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
try:
    ex = relax.build(from_onnx(model), target="llvm")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(np.ones((1, 1, 4, 4), np.float32))).numpy()
    got = list(out.shape)
except Exception as e:  # noqa: BLE001
    got = f"error: {str(e).strip().splitlines()[-1][:160]}"
print(f"tvm {tvm.__version__}: expected shape [1, 1, 10, 9], got {got}")
raise SystemExit(0 if got == [1, 1, 10, 9] else 1)
