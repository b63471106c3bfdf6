"""TVM 0.27's ONNX frontend ignores ConvTranspose `output_shape`.

Input 1x1x4x4, kernel 3x3, stride 2, output_shape [10, 9]: the spec's output is 1x1x10x9 (total padding
(-1, 0) -> zero-filled border). TVM returns the shape the pads alone would give, 9x9.
Prints REPRODUCED and exits 0 while the shape is wrong, FIXED and exit 1 once it is the spec's
(docs/upstream/_verdict.py); an error from TVM is not this bug and propagates (a broken reproducer).
"""
import numpy as np
import tvm
from _verdict import verdict
from onnx import helper, numpy_helper
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx

node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], strides=[2, 2], output_shape=[10, 9])
graph = helper.make_graph([node], "output_shape", [helper.make_tensor_value_info("X", 1, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("Y", 1, [1, 1, 10, 9])],
                          [numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "W")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
ex = relax.build(from_onnx(model), target="llvm")
vm = relax.VirtualMachine(ex, tvm.cpu())
got = list(vm["main"](tvm.runtime.tensor(np.ones((1, 1, 4, 4), np.float32))).numpy().shape)
verdict(got != [1, 1, 10, 9], f"tvm {tvm.__version__}: expected shape [1, 1, 10, 9], got {got}")
