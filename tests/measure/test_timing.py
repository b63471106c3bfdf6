import pytest

from harness.core.config import TimingConfig
from harness.measure.timing import latency_of, measure


class FakeClock:
    """Each fn() call advances time by `step_ns`; lets tests check the stopping rules exactly."""

    def __init__(self, step_ns: int):
        self.t, self.step = 0, step_ns

    def __call__(self) -> int:
        return self.t

    def fn(self):
        self.t += self.step


def test_stops_when_both_count_and_time_are_reached():
    clk = FakeClock(10_000_000)  # 10 ms per call
    calls = []
    cfg = TimingConfig(warmup=2, min_repeats=5, min_time_s=0.1, max_time_s=10)
    samples = measure(lambda: (calls.append(1), clk.fn()), cfg, clock=clk)
    assert len(samples) == 10  # 0.1 s needs 10 samples of 10 ms; count alone needs 5
    assert len(calls) == 12  # plus 2 warm-up calls, not timed
    assert all(s == pytest.approx(10.0) for s in samples)


def test_min_repeats_dominates_for_slow_calls():
    clk = FakeClock(500_000_000)
    samples = measure(clk.fn, TimingConfig(warmup=0, min_repeats=4, min_time_s=0.1, max_time_s=10), clock=clk)
    assert len(samples) == 4


def test_time_cap_keeps_at_least_three_samples():
    clk = FakeClock(5_000_000_000)  # 5 s per call, cap 1 s
    samples = measure(clk.fn, TimingConfig(warmup=0, min_repeats=10, min_time_s=1, max_time_s=1), clock=clk)
    assert len(samples) == 3


def test_warm_up_is_cut_short_for_slow_calls():
    clk = FakeClock(2_000_000_000)  # 2 s per call: one warm-up call already exceeds min_time_s
    calls = []
    cfg = TimingConfig(warmup=3, min_repeats=3, min_time_s=1, max_time_s=30)
    samples = measure(lambda: (calls.append(1), clk.fn()), cfg, clock=clk)
    assert len(samples) == 3 and len(calls) == 4


def test_stats_of_known_samples():
    st = latency_of([float(v) for v in range(1, 101)])
    assert st.median == pytest.approx(50.5)
    assert st.p10 == pytest.approx(10.9) and st.p90 == pytest.approx(90.1)
    assert st.iqr == pytest.approx(49.5) and st.n == 100 and st.min == 1.0
    assert st.to_json()["samples"][:3] == [1.0, 2.0, 3.0]


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError):
        TimingConfig(min_repeats=0)
    with pytest.raises(ValueError):
        TimingConfig(min_time_s=5, max_time_s=1)


def test_reference_is_interleaved_outside_the_timed_region_at_about_a_fifth_of_the_time():
    from harness.measure.timing import REFERENCE_MIN, measure_interleaved

    clk = FakeClock(100_000)  # case: 0.1 ms per call
    ref_step = 250_000  # reference: 0.25 ms per call

    def reference():
        clk.t += ref_step

    cfg = TimingConfig(warmup=1, min_repeats=5, min_time_s=0.2, max_time_s=10, max_repeats=10_000)
    samples, ref = measure_interleaved(clk.fn, cfg, reference, clock=clk)
    assert len(samples) == 2000 and all(s == pytest.approx(0.1) for s in samples)  # no reference inside
    assert all(r == pytest.approx(0.25) for r in ref)
    # after the first REFERENCE_MIN samples, one reference call per 1 ms (4 x its duration) of case time:
    # 20% of all the timed work
    assert len(ref) == pytest.approx(REFERENCE_MIN + (2000 - REFERENCE_MIN) / 10, abs=2)


def test_a_slow_case_gets_a_burst_of_reference_calls():
    from harness.measure.timing import REFERENCE_BURST, measure_interleaved

    clk = FakeClock(100_000_000)  # 100 ms per call
    samples, ref = measure_interleaved(
        clk.fn, TimingConfig(warmup=0, min_repeats=5, min_time_s=0.1), lambda: None, clock=clk
    )
    assert len(samples) == 5 and len(ref) == 5 * REFERENCE_BURST


class TickingClock:
    """A clock that advances `tick_ns` on every read (so a busy-wait on it ends) and `step_ns` per fn() call."""

    def __init__(self, step_ns: int, tick_ns: int = 1_000):
        self.t, self.step, self.tick = 0, step_ns, tick_ns

    def __call__(self) -> int:
        self.t += self.tick
        return self.t

    def fn(self):
        self.t += self.step


def test_injected_slowdown_is_calibrated_to_the_requested_share():
    from harness.measure.timing import slowed

    clk = TickingClock(2_000_000)  # a 2 ms call
    f = slowed(clk.fn, 20, clock=clk)
    base = 2_000_000 + clk.tick  # one call as `slowed` times it: the call plus one clock read
    assert f.extra_ns == pytest.approx(0.2 * base, rel=0.02)  # the wait is 20% of a 2 ms call
    assert f.measured_pct == pytest.approx(20, abs=2)
    t0 = clk()
    f()
    assert clk() - t0 >= 2_000_000 + f.extra_ns


def test_injected_slowdown_is_rescaled_when_the_wait_costs_more_than_itself():
    """An engine whose idle threads sleep during the wait pays a wake-up of twice the wait on its next call
    (3x the intended slowdown): the wait is rescaled from the measured slowdown until it is about 20%."""
    from harness.measure.timing import slowed

    clk = TickingClock(2_000_000)
    state = {"last_wait": 0, "t_end": None}

    def engine():
        if state["t_end"] is not None:  # the busy-wait that followed the previous call
            state["last_wait"] = clk.t - state["t_end"]
        clk.t += 2_000_000 + 2 * state["last_wait"]
        state["t_end"] = clk.t

    f = slowed(engine, 20, clock=clk)
    assert f.measured_pct == pytest.approx(20, abs=2)  # not 3 x 20%
    assert f.extra_ns < 0.2 * 2_000_000 / 2  # about a third of the naive wait


def test_precision_rule_stops_a_steady_case_early_and_a_noisy_one_at_its_budget():
    """rel_ci: a case whose calls agree stops at min_repeats (its median's CI is zero wide); one whose calls
    scatter +-30% runs until its time budget; the record's stop says which, and the precision reached."""
    from harness.measure.timing import stop_of

    cfg = TimingConfig(warmup=0, min_repeats=10, min_time_s=0.01, max_time_s=1.0, rel_ci=0.02)
    steady = FakeClock(1_000_000)  # 1 ms every call
    s = measure(steady.fn, cfg, clock=steady)
    assert len(s) == 10
    st = stop_of(s, cfg)
    assert st["by"] == "precision" and st["ci95_rel"] == 0 and "±2%" in st["rule"]

    steps = iter([700_000, 1_300_000] * 10_000)  # alternately 0.7 and 1.3 ms: the CI never narrows to 2%

    class Noisy(FakeClock):
        def fn(self):
            self.t += next(steps)

    noisy = Noisy(0)
    s = measure(noisy.fn, cfg, clock=noisy)
    assert sum(s) == pytest.approx(1000, rel=0.01)  # ran until the 1 s budget
    st = stop_of(s, cfg)
    assert st["by"] == "time budget" and st["ci95_rel"] > 0.02
    lat = latency_of(s, cfg=cfg)
    assert lat.stop["by"] == "time budget" and lat.ci95[0] <= lat.median <= lat.ci95[1]


def test_median_ci_is_the_binomial_order_statistics_interval():
    """n = 100: ranks 40 and 61 (1-based) of 1..100 — the textbook interval; with fewer than 6 samples, the range."""
    from harness.measure.timing import median_ci

    assert median_ci([float(v) for v in range(1, 101)]) == (40.0, 61.0)
    assert median_ci([1.0, 2.0, 3.0]) == (1.0, 3.0)


def test_without_rel_ci_the_fixed_protocol_holds():
    """The performance gate's protocol (no rel_ci): a steady case still runs until min_time_s."""
    clk = FakeClock(1_000_000)
    s = measure(clk.fn, TimingConfig(warmup=0, min_repeats=10, min_time_s=0.1, max_time_s=1.0), clock=clk)
    assert len(s) == 100
