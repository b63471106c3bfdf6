"""TVM 0.27's ONNX frontend cannot import DepthToSpace on a tensor with a zero-size dimension: a one-node graph,
x 0x8x3x3 (an empty batch), blocksize 2, mode CRD, fails to convert ('The type is not populated'), where ONNX
Runtime and OpenVINO return the 0x2x6x6 result. The `phase` lowering emits DepthToSpace, so its model of a
ConvTranspose with an empty batch fails on TVM (the native node and the other lowerings compile).
Prints REPRODUCED and exits 0 while the import fails, FIXED and exit 1 once TVM returns the empty 0x2x6x6 tensor.
"""

import numpy as np
from _verdict import verdict
from onnx import helper

node = helper.make_node("DepthToSpace", ["X"], ["Y"], blocksize=2, mode="CRD")
graph = helper.make_graph(
    [node],
    "g",
    [helper.make_tensor_value_info("X", 1, [0, 8, 3, 3])],
    [helper.make_tensor_value_info("Y", 1, [0, 2, 6, 6])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
x = np.zeros((0, 8, 3, 3), np.float32)

import tvm  # noqa: E402
from tvm import relax  # noqa: E402
from tvm.relax.frontend.onnx import from_onnx  # noqa: E402

try:
    mod = from_onnx(model, shape_dict={"X": list(x.shape)})
    vm = relax.VirtualMachine(relax.build(mod, target="llvm"), tvm.cpu())
    y = vm["main"](tvm.runtime.tensor(x)).numpy()
except tvm.error.InternalError as e:  # the failure to import is the bug; any other error is a broken reproducer
    if "type is not populated" not in str(e):
        raise
    first = (str(e).strip().splitlines() or [""])[0]
    verdict(True, f"tvm {tvm.__version__}: DepthToSpace of a 0x8x3x3 tensor fails: {type(e).__name__}: {first[:160]}")
verdict(y.shape != (0, 2, 6, 6), f"tvm {tvm.__version__}: output shape {list(y.shape)}")
