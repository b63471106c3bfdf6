"""OpenVINO 2026.4 gets ConvTranspose auto_pad SAME_UPPER/SAME_LOWER wrong when the batch is dynamic.

1-D: x Nx1x4 with N symbolic, w 1x1x2, stride 1, SAME_UPPER: the spec's output length is input x stride = 4
(total padding (4-1)*1 + 2 - 4 = 1). With a static batch OpenVINO agrees; with a symbolic one it does not.
Prints REPRODUCED and exits 0 while the bug is present, FIXED and exit 1 once the engine agrees with the
spec (docs/upstream/_verdict.py); any other error propagates (a broken reproducer).
"""
import numpy as np
import openvino as ov
from _verdict import verdict
from onnx import helper, numpy_helper

x = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 4)
w = np.array([[[1.0, 10.0]]], np.float32)
results = {}
for label, batch in (("static batch", 1), ("symbolic batch", "N")):
    node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], auto_pad="SAME_UPPER")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", 1, [batch, 1, 4])],
                              [helper.make_tensor_value_info("Y", 1, [batch, 1, 4])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    results[label] = compiled({0: x})[compiled.output(0)]
full = np.convolve(x[0, 0], w[0, 0])              # length 5: the full ConvTranspose result
expected = full[0:4]                                # SAME_UPPER: the odd padding unit at the end
for label, y in results.items():
    print(f"openvino {ov.__version__}, {label}: expected {expected.tolist()}, got shape {list(y.shape)} "
          f"{y.ravel().tolist()}")
ok = all(y.shape == (1, 1, 4) and np.allclose(y.ravel(), expected) for y in results.values())
verdict(not ok, f"openvino {ov.__version__}: SAME_UPPER output shapes "
        f"{ {label: list(y.shape) for label, y in results.items()} }, spec [1, 1, 4]")
