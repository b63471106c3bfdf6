"""OpenVINO 2026.4 gets ConvTranspose `output_shape` wrong when the batch is dynamic, group 1 included.

1-D: x Nx1x3, w 1x1x1 (a single tap), stride 1, output_shape [2]: the full result has length 3, the total padding
is 1 and the spec (auto_pad NOTSET) puts the odd unit at the beginning: y = full[1:3]. With a static batch
OpenVINO agrees; with a symbolic one it returns full[0:2]. (The same family as openvino_same_dynamic_batch.py:
with a dynamic batch the padding that output_shape or SAME_* implies is not placed as with a static one.)
Prints REPRODUCED and exits 0 while the bug is present, FIXED and exit 1 once the engine agrees with the
spec (docs/upstream/_verdict.py); any other error propagates (a broken reproducer).
"""
import numpy as np
import openvino as ov
from _verdict import verdict
from onnx import helper, numpy_helper

x = np.array([[[1.0, 2.0, 3.0]]], np.float32)
w = np.array([[[10.0]]], np.float32)
expected = (x * 10.0)[:, :, 1:3]  # full = 10 x; output_shape 2: begin 1, end 0
results = {}
for label, batch in (("static batch", 1), ("symbolic batch", "N")):
    node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], output_shape=[2])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", 1, [batch, 1, 3])],
                              [helper.make_tensor_value_info("Y", 1, [batch, 1, 2])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    results[label] = compiled({0: x})[compiled.output(0)]
for label, y in results.items():
    print(f"openvino {ov.__version__}, {label}: expected {expected.ravel().tolist()}, got {y.ravel().tolist()}")
right = {label: y.shape == expected.shape and np.allclose(y, expected) for label, y in results.items()}
verdict(not right["symbolic batch"],
        f"openvino {ov.__version__}: output_shape with a static batch {'right' if right['static batch'] else 'WRONG'}, "
        f"with a symbolic batch {'right' if right['symbolic batch'] else 'wrong'}")
