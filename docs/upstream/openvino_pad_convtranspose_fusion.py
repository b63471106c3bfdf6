"""OpenVINO 2026.4 fuses a zero Pad in front of a strided ConvTranspose into the node's pads as it would for a
Conv, which is wrong when the stride is above 1.

1-D: x 1x1x3, Pad 1 zero at each end (length 5), ConvTranspose w 1x1x2, stride 2, pads [1, 1]. The spec's
output length is (5 - 1)·2 + 2 - 1 - 1 = 8. OpenVINO returns length 6 = (3 - 1)·2 + 2 - 0 - 0: it subtracted the
input padding (1) from the node's pads (1) although each padded input element moves the output by a stride.
With stride 1 the fusion is exact (and OpenVINO is right). Seen first in an exporter-shaped codec decoder
(tests/pipeline/test_sanitize.py), where a causal Pad computed from Shape precedes ConvTranspose1d stride 4.
Prints REPRODUCED and exits 0 while the bug is present, FIXED and exit 1 once the engine agrees with the
spec (docs/upstream/_verdict.py); any other error propagates (a broken reproducer).
"""
import numpy as np
import openvino as ov
from _verdict import verdict
from onnx import helper, numpy_helper

x = np.array([[[1.0, 2.0, 3.0]]], np.float32)
w = np.array([[[1.0, 10.0]]], np.float32)
nodes = [
    helper.make_node("Pad", ["X", "pads"], ["P"], mode="constant"),
    helper.make_node("ConvTranspose", ["P", "W"], ["Y"], strides=[2], pads=[1, 1]),
]
inits = [numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 1], np.int64), "pads"), numpy_helper.from_array(w, "W")]
graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", 1, [1, 1, 3])],
                          [helper.make_tensor_value_info("Y", 1, [1, 1, 8])], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
p = np.pad(x, ((0, 0), (0, 0), (1, 1)))  # the spec: Pad, then the scatter definition of ConvTranspose
full = np.zeros((1, 1, (p.shape[2] - 1) * 2 + 2), np.float32)
for i in range(p.shape[2]):
    for k in range(2):
        full[0, 0, 2 * i + k] += p[0, 0, i] * w[0, 0, k]
expected = full[:, :, 1:-1]
core = ov.Core()
compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                              {"INFERENCE_PRECISION_HINT": "f32"})
got = compiled({0: x})[compiled.output(0)]
verdict(not (got.shape == expected.shape and np.allclose(got, expected)),
        f"openvino {ov.__version__}: expected shape {list(expected.shape)} {expected.ravel().tolist()}, "
        f"got shape {list(got.shape)} {got.ravel().tolist()}")
