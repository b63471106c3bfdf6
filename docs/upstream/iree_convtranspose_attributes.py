"""IREE 3.13's ONNX import converts a ConvTranspose only with symmetric explicit pads: every other valid node stays an unconverted `torch.operator "onnx.ConvTranspose"` and iree-compile refuses it
("failed to legalize operation 'torch.operator' that was explicitly marked illegal").

Minimal nodes (x 1x2x4x4, W 2x2x3x3 of ones — 1x4x4x4 and 4x2x3x3 when grouped — stride 2; found by `convtx fuzz` and `convtx conformance`): asymmetric
pads [0, 0, 1, 1], auto_pad SAME_UPPER, output_shape [8, 8]. Their neighbour with symmetric pads [1, 1, 1, 1]
compiles and is right, and so does a grouped one (group 2, W 4x2x3x3, bias of 4). (One output_shape node IREE does
take — x 1x1x5, W 1x1x2, stride 3, dilation 2, output_shape [17], a negative total padding — comes out wrong: the
fuzzer's class, in the same ledger entry.) Prints REPRODUCED and exits 0 while the four are refused and the
neighbours compile and agree with the spec, FIXED and exit 1 once any of the four compiles (docs/upstream/_verdict.py);
any other error propagates.
"""

import iree.compiler as ic
import numpy as np
from _iree import compile_onnx, first_error, run, version
from _verdict import verdict
from onnx import TensorProto, helper, numpy_helper


def model(attrs: dict, out: int, group: int = 1, bias: bool = False):
    """x 1xCx4x4 -> ConvTranspose (W of ones: C x 2 x 3 x 3, so M = 2 * group) -> y 1xMx(out)x(out)."""
    c = 2 * group
    inits = [numpy_helper.from_array(np.ones((c, 2, 3, 3), np.float32), "w")]
    inputs = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(np.ones(2 * group, np.float32), "b"))
        inputs.append("b")
    node = helper.make_node("ConvTranspose", inputs, ["y"], strides=[2, 2], group=group, **attrs)
    g = helper.make_graph(
        [node],
        "main_graph",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2 * group, out, out])],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def expected(x: np.ndarray, pads, group: int = 1) -> np.ndarray:
    """The spec's scatter definition with W of ones, cropped by pads (begin h, begin w, end h, end w)."""
    c = x.shape[1]
    full = np.zeros((1, 2 * group, 9, 9), np.float32)  # (4 - 1) * 2 + 3
    for ci in range(c):
        g = ci // (c // group)
        for m in range(2 * g, 2 * g + 2):
            for i in range(4):
                for j in range(4):
                    full[0, m, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3] += x[0, ci, i, j]
    return full[:, :, pads[0] : 9 - pads[2], pads[1] : 9 - pads[3]]


def outcome(attrs: dict, out: int, group: int = 1, bias: bool = False) -> str:
    try:
        compile_onnx(model(attrs, out, group, bias))
    except ic.CompilerToolError as e:
        return f"refused ({first_error(e)[:90]})"
    return "compiles"


x2 = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
x4 = np.arange(64, dtype=np.float32).reshape(1, 4, 4, 4)
right = np.allclose(run(compile_onnx(model({"pads": [1, 1, 1, 1]}, 7)), x2), expected(x2, [1, 1, 1, 1]))
grouped = np.allclose(run(compile_onnx(model({"pads": [1, 1, 1, 1]}, 7, group=2)), x4), expected(x4, [1, 1, 1, 1], 2))
cases = {
    "asymmetric pads [0, 0, 1, 1]": outcome({"pads": [0, 0, 1, 1]}, 8),
    "auto_pad SAME_UPPER": outcome({"auto_pad": "SAME_UPPER"}, 8),
    "output_shape [8, 8]": outcome({"output_shape": [8, 8]}, 8),
}
grouped = grouped and outcome({"pads": [1, 1, 1, 1]}, 7, group=2, bias=True) == "compiles"
refused = all(v.startswith("refused") for v in cases.values())
verdict(
    refused and right and grouped,
    f"iree {version()}: symmetric pads {'right' if right else 'WRONG'}, group 2 (with a bias) "
    f"{'right' if grouped else 'WRONG'}; " + "; ".join(f"{k}: {v}" for k, v in cases.items()),
)
