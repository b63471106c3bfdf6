"""ConvTranspose with a negative total padding: onnxruntime (and TVM) clamp it to 0, unlike the ONNX spec.

Input length 4, kernel 1, stride 3, auto_pad SAME_UPPER. The spec: output = input * stride = 12, total
padding = stride*(in-1) + k - out = 10 - 12 = -2, pads = (-1, -1): the values land at 1, 4, 7, 10 of 12.
onnxruntime returns 10 elements (total padding clamped to 0); asked for `output_shape=[12]` (same window,
NOTSET branch: pads (-1, -1)) it puts all the zero fill at the end, and for other sizes it refuses the
model ("Explicit output_shape is inconsistent"). Exit status 1 while onnxruntime differs from the spec.
"""
import numpy as np
import onnxruntime as ort
from onnx import helper, numpy_helper


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
    except Exception as e:  # noqa: BLE001
        return f"error: {str(e).splitlines()[0][:160]}"


expected = [0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0]
same, shape = run(auto_pad="SAME_UPPER"), run(output_shape=[12])
print(f"onnxruntime {ort.__version__}\nspec                 {expected}\nSAME_UPPER           {same}\n"
      f"output_shape=[12]    {shape}")
raise SystemExit(0 if same == expected and shape == expected else 1)
