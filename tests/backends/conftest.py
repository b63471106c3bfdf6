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
