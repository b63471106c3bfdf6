"""ConvTranspose with a negative total padding: onnxruntime (and TVM) clamp it to 0, unlike the ONNX spec.

Input length 4, kernel 1, stride 3, auto_pad SAME_UPPER. The spec: output = input * stride = 12, total
padding = stride*(in-1) + k - out = 10 - 12 = -2, pads = (-1, -1): the values land at 1, 4, 7, 10 of 12.
onnxruntime returns 10 elements (total padding clamped to 0); asked for `output_shape=[12]` (same window,
NOTSET branch: pads (-1, -1)) it puts all the zero fill at the end, and for other sizes it refuses the
model ("Explicit output_shape is inconsistent": that refusal is the bug too, and the only error caught).
Prints REPRODUCED and exits 0 while the bug is present, FIXED and exit 1 once the engine agrees with the
spec (docs/upstream/_verdict.py); any other error propagates (a broken reproducer).
"""
import numpy as np
import onnxruntime as ort
from _verdict import verdict
from onnx import helper, numpy_helper
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument


def run(**attrs):
    node = helper.make_node("ConvTranspose", ["X", "W"], ["Y"], strides=[3], **attrs)
    graph = helper.make_graph([node], "same_negative", [helper.make_tensor_value_info("X", 1, [1, 1, 4])],
                              [helper.make_tensor_value_info("Y", 1, None)],
                              [numpy_helper.from_array(np.ones((1, 1, 1), np.float32), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 4)
    try:
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"X": x})[0].ravel().tolist()
    except InvalidArgument as e:  # only onnxruntime's output_shape refusal is the bug
        if "output_shape is inconsistent" not in str(e):
            raise
        return f"error: {str(e).splitlines()[0][:160]}"


expected = [0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0]
same, shape = run(auto_pad="SAME_UPPER"), run(output_shape=[12])
print(f"onnxruntime {ort.__version__}\nspec                 {expected}\nSAME_UPPER           {same}\n"
      f"output_shape=[12]    {shape}")
verdict(not (same == expected and shape == expected),
        f"onnxruntime {ort.__version__}: SAME_UPPER {same}, output_shape=[12] {shape}, spec {expected}")
