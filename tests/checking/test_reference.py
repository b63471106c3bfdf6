"""The float64 reference for arbitrary ONNX files."""

import numpy as np
import onnx
import pytest
import torch

from harness.checking.reference import onnx_reference, to_float64

from ..helpers import make_convtranspose_model


def test_to_float64_converts_every_float_tensor(hand_model):
    m = to_float64(onnx.load(hand_model))
    assert all(t.data_type == onnx.TensorProto.DOUBLE for t in m.graph.initializer)
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


def test_grouped_convtranspose_file_matches_torch_float64(hand_model):
    # onnx.reference itself is wrong for group > 1; convtx's reference must not be
    m = onnx.load(hand_model)
    x = np.random.default_rng(0).standard_normal((1, 4, 5, 5)).astype(np.float32)
    y = onnx_reference(m, {"X": x})[0]
    w = torch.tensor(onnx.numpy_helper.to_array(m.graph.initializer[0]), dtype=torch.float64)
    b = torch.tensor(onnx.numpy_helper.to_array(m.graph.initializer[1]), dtype=torch.float64)
    # pads [1,0,0,1] (begin h=1, w=0; end h=0, w=1): torch pads symmetrically, so pad 1 on both sides of H
    # and W and crop the end-of-H / begin-of-W row that ONNX does not remove
    full = torch.nn.functional.conv_transpose2d(
        torch.tensor(x, dtype=torch.float64), w, b, stride=2, output_padding=(1, 0), groups=2
    )
    expected = torch.relu(full[:, :, 1:, :-1]).numpy()
    assert y.dtype == np.float64 and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-12)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_auto_pad_file_output_shape(tmp_path, auto_pad):
    path = make_convtranspose_model(
        tmp_path / "m.onnx", x_shape=(1, 2, 3, 4), w_shape=(2, 1, 3, 3), strides=[2, 2], auto_pad=auto_pad
    )
    y = onnx_reference(onnx.load(path), {"X": np.ones((1, 2, 3, 4), np.float32)})[0]
    assert y.shape == (1, 1, 6, 8)
