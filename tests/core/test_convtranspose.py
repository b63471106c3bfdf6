"""harness.core.convtranspose: the spec's resolution of pads and the float64 scatter reference."""

import numpy as np
import pytest
import torch

from harness.audit.invalid import EXAMPLES, examples
from harness.core.convtranspose import RULES, InvalidConvTranspose, conv_transpose, resolve, rule_broken

_TORCH = {
    1: torch.nn.functional.conv_transpose1d,
    2: torch.nn.functional.conv_transpose2d,
    3: torch.nn.functional.conv_transpose3d,
}


def test_golden_onnx_doc_example():
    # test_convtranspose (ONNX operator docs): x = arange(9) as 3x3, W = ones(1, 2, 3, 3)
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    w = np.ones((1, 2, 3, 3))
    expected = np.array(
        [[0, 1, 3, 3, 2], [3, 8, 15, 12, 7], [9, 21, 36, 27, 15], [9, 20, 33, 24, 13], [6, 13, 21, 15, 8]],
        dtype=np.float64,
    )
    y = conv_transpose(x, w, None, resolve({}, x.shape, w.shape))
    assert y.shape == (1, 2, 5, 5)
    np.testing.assert_array_equal(y[0, 0], expected)
    np.testing.assert_array_equal(y[0, 1], expected)


def test_golden_pads_and_strides():
    # test_convtranspose_pads (ONNX docs): strides 3x2, pads [1,2,1,2] -> 1x2x7x3
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    w = np.ones((1, 2, 3, 3))
    p = resolve({"strides": [3, 2], "pads": [1, 2, 1, 2]}, x.shape, w.shape)
    assert p.output_spatial == (7, 3)
    y = conv_transpose(x, w, None, p)
    expected = np.array([[1, 1, 3], [1, 1, 3], [7, 4, 9], [7, 4, 9], [7, 4, 9], [13, 7, 15], [13, 7, 15]])
    np.testing.assert_array_equal(y[0, 0], expected)


@pytest.mark.parametrize("auto_pad,begin,end", [("SAME_UPPER", (1,), (2,)), ("SAME_LOWER", (2,), (1,))])
def test_same_padding_odd_total_goes_to_the_spec_side(auto_pad, begin, end):
    # in 4, stride 2, kernel 4: full = 2*3 + 4 = 10, target 8, total 2 -> even; use kernel 5: total 3
    p = resolve({"auto_pad": auto_pad, "strides": [2]}, (1, 1, 4), (1, 1, 5))
    assert p.output_spatial == (8,)
    assert (p.pads_begin, p.pads_end) == (begin, end)


def test_negative_total_padding_is_kept_spec_exact():
    # kernel 1, stride 3, in 4: full = 3*3 + 1 = 10, SAME target 12 -> total -2: the output grows to 12
    p = resolve({"auto_pad": "SAME_UPPER", "strides": [3]}, (1, 1, 4), (1, 1, 1))
    assert p.pads_begin == (-1,) and p.pads_end == (-1,) and p.output_spatial == (12,)
    y = conv_transpose(np.arange(1, 5, dtype=np.float64).reshape(1, 1, 4), np.ones((1, 1, 1)), None, p)
    # o = 3i + 1: values land at 1, 4, 7, 10; zeros elsewhere
    np.testing.assert_array_equal(y[0, 0], [0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0])


def test_output_shape_notset_uses_the_else_branch():
    # full = 2*(3-1) + 3 = 7, output_shape 6 -> total 1, NOTSET puts the odd unit at the beginning
    p = resolve({"strides": [2], "output_shape": [6]}, (1, 1, 3), (1, 1, 3))
    assert p.output_spatial == (6,) and p.pads_begin == (1,) and p.pads_end == (0,)


def test_output_shape_with_batch_and_channels_is_tolerated():
    p = resolve({"strides": [2, 2], "output_shape": [1, 1, 10, 8]}, (1, 1, 5, 4), (1, 1, 2, 2))
    assert p.output_spatial == (10, 8)


@pytest.mark.parametrize("rule,cfg", examples(), ids=[f"{r}-{c.name}" for r, c in examples()])
def test_every_spec_rule_is_checked_by_the_one_validation(rule, cfg):
    """Each minimal invalid node breaks its rule and no earlier one: resolve() names it, rule_broken() agrees."""
    with pytest.raises(InvalidConvTranspose, match=f"rule {rule}:") as e:
        resolve(cfg.attrs, cfg.x_shape, cfg.w_shape, cfg.b_shape)
    assert e.value.rule == rule == rule_broken(cfg.attrs, cfg.x_shape, cfg.w_shape, cfg.b_shape)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_every_rule_has_an_example_and_valid_nodes_pass():
    assert set(EXAMPLES) == set(RULES) and all(EXAMPLES[r] for r in RULES)
    ok = resolve({"strides": [2], "output_padding": [1], "output_shape": [1, 1, 8]}, (0, 2, 4), (2, 3, 2), (3,))
    assert ok.output_spatial == (8,)  # an empty batch and ORT's rank+2 output_shape are valid
    assert rule_broken({"group": 2}, ("N", 4, 3), (4, 1, 3), (2,)) is None  # symbolic batch; M = 1 x 2


def test_random_attributes_match_torch_float64():
    """Seeded sweep over the attribute space PyTorch can express (1-3 D, groups, dilations, pads,
    output_padding, bias); PyTorch in float64 is an independent implementation."""
    rng = np.random.default_rng(0)
    checked = refused_both = 0
    for _ in range(300):
        nd = int(rng.integers(1, 4))
        g = int(rng.choice([1, 2, 3]))
        c, m = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 4, nd))
        s = tuple(int(v) for v in rng.integers(1, 4, nd))
        d = tuple(int(v) for v in rng.integers(1, 3, nd))
        op = tuple(int(rng.integers(0, max(si, di))) for si, di in zip(s, d))
        pads = tuple(int(v) for v in rng.integers(0, 3, nd))
        insp = tuple(int(v) for v in rng.integers(1, 6, nd))
        x = rng.standard_normal((2, c, *insp))
        w = rng.standard_normal((c, m // g, *k))
        b = rng.standard_normal(m)
        attrs = {"strides": s, "dilations": d, "output_padding": op, "pads": pads + pads, "group": g}
        try:
            p = resolve(attrs, x.shape, w.shape, b.shape)
        except InvalidConvTranspose as e:
            p, refused = None, e.rule
        try:
            ref = _TORCH[nd](
                torch.tensor(x),
                torch.tensor(w),
                torch.tensor(b),
                stride=s,
                padding=pads,
                output_padding=op,
                groups=g,
                dilation=d,
            ).numpy()
        except RuntimeError as e:
            # the oracle refuses it too, and both for the spec's one rule these attributes can break: the output
            # size must be positive (resolve: rule output_size; torch: "Output size is too small")
            assert p is None, f"{attrs} on x {x.shape}, w {w.shape}: torch refuses ({e}) what resolve accepts"
            assert refused == "output_size" and "too small" in str(e), (refused, e)
            refused_both += 1
            continue
        assert p is not None, f"{attrs} on x {x.shape}, w {w.shape}: resolve refuses ({refused}), torch accepts"
        y = conv_transpose(x, w, b, p)
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-10)
        checked += 1
    assert checked > 150 and refused_both > 0  # both branches exercised
