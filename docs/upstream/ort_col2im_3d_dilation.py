"""onnxruntime 1.32 Col2Im is wrong for many 3-D inputs with dilation > 1 (2-D and undilated 3-D are right).

Minimal case, found by convtx's equivalence sweep and minimised by exhaustive search: image (1, 2, 3),
block (1, 2, 2), dilations (1, 1, 2), strides 1, no pads, one block. The columns 1, 2, 3, 4 must land at
image positions (0,0,0), (0,0,2), (0,1,0), (0,1,2); onnxruntime puts 4 at (0,1,0) and drops 3.
Prints REPRODUCED and exits 0 while the bug is present, FIXED and exit 1 once the engine agrees with the
spec (docs/upstream/_verdict.py); any other error propagates (a broken reproducer).
"""
import numpy as np
import onnxruntime as ort
from _verdict import verdict
from onnx import helper, numpy_helper

node = helper.make_node("Col2Im", ["X", "image_shape", "block_shape"], ["Y"], dilations=[1, 1, 2])
graph = helper.make_graph(
    [node], "col2im_3d_dilation", [helper.make_tensor_value_info("X", 1, [1, 4, 1])],
    [helper.make_tensor_value_info("Y", 1, [1, 1, 1, 2, 3])],
    [numpy_helper.from_array(np.array([1, 2, 3], np.int64), "image_shape"),
     numpy_helper.from_array(np.array([1, 2, 2], np.int64), "block_shape")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
x = np.arange(1, 5, dtype=np.float32).reshape(1, 4, 1)
expected = np.array([1, 0, 2, 3, 0, 4], np.float32).reshape(1, 1, 1, 2, 3)   # by the Col2Im definition
got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": x})[0]
print(f"onnxruntime {ort.__version__}\nexpected {expected.ravel().tolist()}\ngot      {got.ravel().tolist()}")
verdict(not np.array_equal(got, expected), f"onnxruntime {ort.__version__} Col2Im gives {got.ravel().tolist()}, "
        f"the definition {expected.ravel().tolist()}")
