"""IREE 3.13 cannot compile a depthwise ConvTranspose — group = C > 1, one output channel per group:
"'tensor.collapse_shape' op expected reassociation map #0 to have size equal to the expanded rank".

One node: x 1x4x4x4, W 4x1x2x2 (ones), group 4, stride 2 — the nearest-unpooling ConvTranspose of models/unpool.py,
and the layer kind of dwdecoder (48 channels, k4 s2 p1), which fails the same way. The neighbours compile: the same
node with two output channels per group (W 4x2x2x2), and group 2 over 4 channels (W 4x1x2x2). Prints REPRODUCED and
exits 0 while the depthwise node fails to compile and its neighbours compile, FIXED and exit 1 once it compiles
(docs/upstream/_verdict.py); any other error propagates.
"""

import iree.compiler as ic
import numpy as np
from _iree import compile_onnx, first_error, version
from _verdict import verdict
from onnx import TensorProto, helper, numpy_helper


def model(c: int, per_group: int, group: int):
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], group=group, strides=[2, 2], kernel_shape=[2, 2])
    g = helper.make_graph(
        [node],
        "main_graph",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, per_group * group, 8, 8])],
        [numpy_helper.from_array(np.ones((c, per_group, 2, 2), np.float32), "w")],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def compiles(c: int, per_group: int, group: int) -> str:
    try:
        compile_onnx(model(c, per_group, group))
        return "compiles"
    except ic.CompilerToolError as e:
        return f"fails ({first_error(e)})"


depthwise = compiles(4, 1, 4)
wider, fewer = compiles(4, 2, 4), compiles(4, 1, 2)
verdict(
    depthwise != "compiles" and wider == "compiles" and fewer == "compiles",
    f"iree {version()}: depthwise ConvTranspose (C 4, group 4, W 4x1x2x2) {depthwise}; two outputs per group {wider}; "
    f"group 2 {fewer}",
)
