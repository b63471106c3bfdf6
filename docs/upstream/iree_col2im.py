"""IREE 3.13 cannot compile ONNX Col2Im: the ONNX importer's torch conversion leaves the op's sizes as torch
constants that iree-compile cannot legalise ("failed to legalize operation 'torch.constant.int'").

One node: Col2Im of a 1x4x9 column matrix (block 2x2) into a 4x4 image, as convtx's `gemm_col2im` lowering emits it
(every one of its cases fails to compile on IREE). ONNX Runtime runs the same node. Prints REPRODUCED and exits 0
while iree-compile refuses it, FIXED and exit 1 once it compiles (docs/upstream/_verdict.py); any other error
propagates.
"""

import iree.compiler as ic
import numpy as np
from _iree import compile_onnx, first_error, version
from _verdict import verdict
from onnx import TensorProto, helper, numpy_helper

node = helper.make_node("Col2Im", ["cols", "image_shape", "block_shape"], ["y"], strides=[1, 1])
g = helper.make_graph(
    [node],
    "main_graph",
    [helper.make_tensor_value_info("cols", TensorProto.FLOAT, [1, 4, 9])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
    [
        numpy_helper.from_array(np.array([4, 4], np.int64), "image_shape"),
        numpy_helper.from_array(np.array([2, 2], np.int64), "block_shape"),
    ],
)
model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
try:
    compile_onnx(model)
    verdict(False, f"iree {version()}: Col2Im 1x4x9 -> 1x1x4x4 compiles")
except ic.CompilerToolError as e:
    verdict(True, f"iree {version()}: Col2Im 1x4x9 -> 1x1x4x4 fails to compile: {first_error(e)}")
