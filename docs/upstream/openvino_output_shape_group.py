"""OpenVINO 2026.4 computes a grouped ConvTranspose with `output_shape` wrong.

1-D: x 1x2x2, w 2x1x2 (group 2, so each channel has its own 1x2 kernel), stride 1, output_shape [2]. The full
result has length 3; output_shape 2 gives total padding 1, which the spec splits (auto_pad NOTSET) as
begin = total - total/2 = 1, end = 0, so y[c] = full[c][1:3]. OpenVINO returns full[c][0:2] for the grouped
node (the same model with group 1 — two separate 1-channel nodes — is right).
Prints REPRODUCED and exits 0 while the bug is present, FIXED and exit 1 once the engine agrees with the
spec (docs/upstream/_verdict.py); any other error propagates (a broken reproducer).
"""
import numpy as np
import openvino as ov
from _verdict import verdict
from onnx import helper, numpy_helper

x = np.array([[[1.0, 2.0], [3.0, 4.0]]], np.float32)
w = np.array([[[1.0, 10.0]], [[100.0, 1000.0]]], np.float32)
node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], group=2, output_shape=[2])
graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", 1, [1, 2, 2])],
                          [helper.make_tensor_value_info("Y", 1, [1, 2, 2])], [numpy_helper.from_array(w, "W")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
full = np.zeros((1, 2, 3), np.float32)          # the spec's scatter definition, per group
for c in range(2):
    for i in range(2):
        for k in range(2):
            full[0, c, i + k] += x[0, c, i] * w[c, 0, k]
expected = full[:, :, 1:3]
core = ov.Core()
compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                              {"INFERENCE_PRECISION_HINT": "f32"})
got = compiled({0: x})[compiled.output(0)]
verdict(not (got.shape == expected.shape and np.allclose(got, expected)),
        f"openvino {ov.__version__}: expected {expected.tolist()}, got {got.tolist()}")
