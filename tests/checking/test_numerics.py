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
