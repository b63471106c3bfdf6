"""IREE 3.13 cannot compile a grouped ConvTranspose with a bias whose output is a single position per channel
(1 x 1 spatially): "'linalg.generic' op write affecting operations on global resources are restricted to workgroup
distributed contexts". Found by `convtx fuzz` (1-D: x 1x6x1, W 6x1x1 or 6x2x3 with pads 1, group 2, a bias).

One node: x 1x6x1x1, W 6x2x1x1 (seeded normal weights), group 2, bias of 4. The neighbours compile: the same node
without the bias, and the same node on a 4x4 input. Prints
REPRODUCED and exits 0 while the node fails to compile and the neighbours compile, FIXED and exit 1 once it compiles
(docs/upstream/_verdict.py); any other error propagates.
"""

import iree.compiler as ic
import numpy as np
from _iree import compile_onnx, first_error, version
from _verdict import verdict
from onnx import TensorProto, helper, numpy_helper


def model(x_shape, w_shape, group: int, bias: bool):
    rng = np.random.default_rng(0)
    m_out = w_shape[1] * group
    inits = [numpy_helper.from_array(rng.standard_normal(w_shape).astype(np.float32), "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(m_out).astype(np.float32), "b"))
        inputs.append("b")
    node = helper.make_node("ConvTranspose", inputs, ["y"], group=group)
    out = [1, m_out, *x_shape[2:]]
    g = helper.make_graph(
        [node],
        "main_graph",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def compiles(*args) -> str:
    try:
        compile_onnx(model(*args))
        return "compiles"
    except ic.CompilerToolError as e:
        return f"fails ({first_error(e)[:120]})"


bug = compiles((1, 6, 1, 1), (6, 2, 1, 1), 2, True)
no_bias = compiles((1, 6, 1, 1), (6, 2, 1, 1), 2, False)
wider = compiles((1, 6, 4, 4), (6, 2, 1, 1), 2, True)
verdict(
    bug != "compiles" and no_bias == "compiles" and wider == "compiles",
    f"iree {version()}: group 2 with a bias, 1x1 output: {bug}; without the bias: {no_bias}; "
    f"with the bias on a 4x4 input: {wider}",
)
