import numpy as np

from harness.checking.numerics import POLICY, compare


def test_identical_outputs_pass_with_zero_error():
    # values a float32 holds exactly (k/8, with zeros), so the float32 output equals its float64 reference
    ref = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 12) / 8
    assert np.array_equal(ref.astype(np.float32).astype(np.float64), ref)
    c = compare([ref.astype(np.float32), ref[0].astype(np.float32)], [ref, ref[0].copy()])
    assert c and c.passed and len(c.outputs) == 2
    assert (c.max_abs, c.max_rel, c.rel_l2) == (0.0, 0.0, 0.0)
    for o in c.outputs:
        assert o.passed and (o.max_abs, o.max_rel, o.rel_l2) == (0.0, 0.0, 0.0)
        assert o.mismatches == 0 and o.nonfinite == 0 and o.shape == o.ref_shape and o.reason == ""
    assert (c.atol, c.rtol, c.rel_l2_tol) == (POLICY["float32"].atol, POLICY["float32"].rtol, POLICY["float32"].rel_l2)


def test_one_bad_element_is_located():
    ref = np.ones((2, 3, 4))
    out = ref.copy()
    out[1, 2, 3] = 1.5
    c = compare([out], [ref])
    assert not c
    o = c.outputs[0]
    assert o.worst_index == (1, 2, 3) and o.mismatches == 1
    assert abs(o.max_abs - 0.5) < 1e-12
    assert "worst at [1, 2, 3]" in c.reason


def test_shape_mismatch_fails():
    c = compare([np.zeros((1, 3, 8, 8))], [np.zeros((1, 3, 9, 9))])
    assert not c and "shape [1, 3, 8, 8] != reference [1, 3, 9, 9]" in c.reason


def test_nan_where_reference_is_finite_never_passes():
    ref = np.ones(10)
    out = ref.copy()
    out[3] = np.nan
    c = compare([out], [ref])
    assert not c and c.outputs[0].nonfinite == 1 and c.rel_l2 == float("inf")


def test_nan_and_inf_where_the_reference_has_the_same_are_agreement():
    """A model whose weights hold NaN computes NaN: the same NaN (and the same +-Inf) in the output is agreement,
    not 'mismatch: 64/578 outside tolerance (worst 7.96 vs 7.96)'."""
    ref = np.array([[1.0, np.nan, 3.0], [np.inf, -np.inf, 6.0]])
    c = compare([ref.astype(np.float32)], [ref])
    assert c, c.reason
    o = c.outputs[0]
    assert o.mismatches == 0 and o.special_mismatches == 0 and o.max_abs == 0.0 and c.rel_l2 == 0.0


def test_nan_where_the_reference_is_finite_and_a_finite_value_where_it_is_nan_say_how_many_and_where():
    ref = np.array([[1.0, np.nan, 3.0], [np.inf, -np.inf, 6.0]])
    out = ref.copy()
    out[0, 1] = 2.0  # finite where the reference is NaN
    out[1, 0] = -np.inf  # the wrong infinity
    out[1, 2] = np.nan  # NaN where the reference is finite
    c = compare([out], [ref])
    o = c.outputs[0]
    assert not c and o.nonfinite == 1 and o.special_mismatches == 2 and o.mismatches == 3, o
    assert "1 NaN/Inf where the reference is finite (first at [1, 2]: nan vs 6)" in c.reason, c.reason
    assert "2 elements differ where the reference is NaN/Inf (first at [0, 1]: 2 vs nan)" in c.reason, c.reason
    assert "outside atol" not in c.reason  # the finite elements agree: no made-up 'worst x vs x'


def test_a_finite_error_beside_agreeing_nans_names_the_finite_worst():
    ref = np.array([np.nan, 1.0, 2.0, np.nan])
    out = np.array([np.nan, 1.0, 2.5, np.nan])
    c = compare([out], [ref])
    o = c.outputs[0]
    assert not c and o.mismatches == 1 and o.worst_index == (2,) and "(worst at [2]: 2.5 vs 2)" in c.reason
    assert o.max_abs == 0.5


def test_small_relative_error_within_policy_passes_and_larger_fails():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000)
    assert compare([ref * (1 + 1e-7)], [ref])
    assert not compare([ref * (1 + 1e-4)], [ref])  # rel_l2 1e-4 > 1e-5


def test_output_count_mismatch_fails():
    assert not compare([np.zeros(3)], [np.zeros(3), np.zeros(3)])


def test_worst_output_sets_the_scalar_metrics():
    a = np.ones(4)
    c = compare([a, a + 1e-3], [a, a])
    assert c.outputs[0] and not c.outputs[1] and abs(c.max_abs - 1e-3) < 1e-12


def test_a_model_with_nan_weights_agrees_natively_and_zero_insertion_spreads_the_nan():
    """End to end on ORT: NaN in one weight of a stride-2 ConvTranspose. Natively ORT computes NaN exactly where
    the float64 reference does (agreement); under zero_insert every inserted zero meets the NaN weight
    (0 * NaN = NaN), so NaN reaches outputs whose reference is finite, and the verdict says how many and where."""
    import onnx
    import onnxruntime as ort

    from harness.checking.reference import onnx_reference
    from harness.lowerings import get_lowering

    from ..helpers import convtranspose_model

    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 3, 3, 3))
    w[0, 1, 1, 1] = np.nan
    m = convtranspose_model((1, 2, 5, 5), w, strides=[2, 2])
    feeds = {"X": rng.standard_normal((1, 2, 5, 5)).astype(np.float32)}
    ref = onnx_reference(m, feeds)
    assert np.isnan(ref[0]).any() and np.isfinite(ref[0]).any()

    def run(model):
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)

    native = compare(run(m), ref)
    assert native, native.reason
    lowered = compare(run(get_lowering("zero_insert").apply(onnx.load_from_string(m.SerializeToString())).model), ref)
    o = lowered.outputs[0]
    assert not lowered and o.nonfinite > 0 and "NaN/Inf where the reference is finite (first at" in lowered.reason
