import numpy as np
import onnx
import pytest

from harness.backends import ModelArtifact
from harness.checking.reference import onnx_reference
from harness.core.onnx_io import graph_inputs


@pytest.fixture
def hand_artifact(hand_model):
    m = onnx.load(hand_model)
    specs = graph_inputs(m)
    shapes = {s.name: tuple(s.shape) for s in specs}
    feeds = {"X": np.random.default_rng(0).standard_normal(shapes["X"]).astype(np.float32)}
    art = ModelArtifact(str(hand_model), shapes, {s.name: s.dtype for s in specs})
    return art, feeds, onnx_reference(m, feeds)


def make_col2im_model(path):
    """A model with Col2Im (opset 18), an op TVM 0.27's ONNX frontend has no converter for."""
    from onnx import TensorProto, helper, numpy_helper

    consts = [
        numpy_helper.from_array(np.array([4, 4], np.int64), "image_shape"),
        numpy_helper.from_array(np.array([2, 2], np.int64), "block_shape"),
    ]
    node = helper.make_node("Col2Im", ["X", "image_shape", "block_shape"], ["Y"])
    g = helper.make_graph(
        [node],
        "col2im",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4, 9])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 4, 4])],
        consts,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path
