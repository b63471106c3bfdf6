"""OpenVINO 2026.4 computes a grouped ConvTranspose with `output_shape` wrong: it puts the whole total padding at
the end, where the spec splits it (the odd unit at the beginning, auto_pad NOTSET).

1-D: x 1x2x2, w 2x1x2 (group 2, so each channel has its own 1x2 kernel), stride 1, output_shape [2]. The full
result has length 3; output_shape 2 gives total padding 1, which the spec splits (auto_pad NOTSET) as
begin = total - total/2 = 1, end = 0, so y[c] = full[c][1:3]. OpenVINO returns full[c][0:2] for the grouped
node (the same model with group 1 — two separate 1-channel nodes — is right). An even total is wrong too: a kernel of
3 (full length 4) with output_shape [2] has total padding 2, begin 1 and end 1 (y = full[1:3]); OpenVINO returns
full[0:2].
Prints REPRODUCED and exits 0 while the bug is present, FIXED and exit 1 once the engine agrees with the
spec (docs/upstream/_verdict.py); any other error propagates (a broken reproducer).
"""

import numpy as np
import openvino as ov
from _verdict import verdict
from onnx import helper, numpy_helper


def case(w: np.ndarray, out: int):
    """(expected, OpenVINO's output) for x 1x2x2, w 2x1xK, group 2, stride 1, output_shape [out]."""
    x = np.array([[[1.0, 2.0], [3.0, 4.0]]], np.float32)
    k = w.shape[-1]
    node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], group=2, output_shape=[out])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", 1, [1, 2, 2])],
        [helper.make_tensor_value_info("Y", 1, [1, 2, out])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    full = np.zeros((1, 2, 2 + k - 1), np.float32)  # the spec's scatter definition, per group
    for c in range(2):
        for i in range(2):
            for kk in range(k):
                full[0, c, i + kk] += x[0, c, i] * w[c, 0, kk]
    total = full.shape[-1] - out
    begin = total - total // 2
    expected = full[:, :, begin : begin + out]
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(model.SerializeToString(), b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    return expected, compiled({0: x})[compiled.output(0)]


results = [
    case(np.array([[[1.0, 10.0]], [[100.0, 1000.0]]], np.float32), 2),  # total padding 1 (odd)
    case(np.array([[[1.0, 10.0, 5.0]], [[100.0, 1000.0, 50.0]]], np.float32), 2),
]  # total 2 (even)
wrong = [not (got.shape == exp.shape and np.allclose(got, exp)) for exp, got in results]
verdict(
    all(wrong),
    f"openvino {ov.__version__}: "
    + "; ".join(
        f"total padding {t}: expected {exp.tolist()}, got {got.tolist()}" for t, (exp, got) in zip((1, 2), results)
    ),
)
