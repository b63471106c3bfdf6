"""IREE 3.13 computes DepthToSpace in CRD mode wrongly whenever C / blocksize² > 2 — a silent wrong answer, not an
error: the values land in the wrong channels. DCR mode is right, and so is CRD with C / b² <= 2.

One node: x 1x16x8x8 (arange), DepthToSpace blocksize 2, mode CRD (as PyTorch exports PixelShuffle, and as convtx's
`phase` lowering interleaves by default); expected by the ONNX definition (reshape to N, C/b², b, b, H, W,
transpose to N, C/b², H, b, W, b). Seen in the zoo: subpixel@256 (PixelShuffle) comes out with rel L2 0.81.
Prints REPRODUCED and exits 0 while IREE's answer differs, FIXED and exit 1 once it is right
(docs/upstream/_verdict.py); any other error propagates.
"""

import numpy as np
from _iree import compile_onnx, run, version
from _verdict import verdict
from onnx import TensorProto, helper


def model(mode: str, c: int):
    node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode)
    g = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c // 4, 16, 16])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.graph.name = "main_graph"
    return m


def expected(x: np.ndarray, mode: str) -> np.ndarray:
    n, c, h, w = x.shape
    if mode == "CRD":
        t = x.reshape(n, c // 4, 2, 2, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        t = x.reshape(n, 2, 2, c // 4, h, w).transpose(0, 3, 4, 1, 5, 2)
    return t.reshape(n, c // 4, h * 2, w * 2)


seen = {}
for mode, c in (("CRD", 16), ("DCR", 16), ("CRD", 8)):
    x = np.arange(c * 64, dtype=np.float32).reshape(1, c, 8, 8)
    seen[(mode, c)] = np.array_equal(run(compile_onnx(model(mode, c)), x), expected(x, mode))
verdict(
    not seen[("CRD", 16)],
    f"iree {version()}: DepthToSpace b2 CRD on 1x16x8x8 {'right' if seen[('CRD', 16)] else 'WRONG'}; "
    f"DCR on 1x16x8x8 {'right' if seen[('DCR', 16)] else 'WRONG'}; CRD on 1x8x8x8 "
    f"{'right' if seen[('CRD', 8)] else 'WRONG'}",
)
