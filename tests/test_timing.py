import pytest

from harness.config import TimingConfig
from harness.timing import Stats, measure


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
    assert len(samples) == 10                  # 0.1 s needs 10 samples of 10 ms; count alone needs 5
    assert len(calls) == 12                    # plus 2 warm-up calls, not timed
    assert all(s == pytest.approx(10.0) for s in samples)


def test_min_repeats_dominates_for_slow_calls():
    clk = FakeClock(500_000_000)
    samples = measure(clk.fn, TimingConfig(warmup=0, min_repeats=4, min_time_s=0.1, max_time_s=10), clock=clk)
    assert len(samples) == 4


def test_time_cap_keeps_at_least_three_samples():
    clk = FakeClock(5_000_000_000)             # 5 s per call, cap 1 s
    samples = measure(clk.fn, TimingConfig(warmup=0, min_repeats=10, min_time_s=1, max_time_s=1), clock=clk)
    assert len(samples) == 3


def test_warm_up_is_cut_short_for_slow_calls():
    clk = FakeClock(2_000_000_000)             # 2 s per call: one warm-up call already exceeds min_time_s
    calls = []
    cfg = TimingConfig(warmup=3, min_repeats=3, min_time_s=1, max_time_s=30)
    samples = measure(lambda: (calls.append(1), clk.fn()), cfg, clock=clk)
    assert len(samples) == 3 and len(calls) == 4


def test_stats_of_known_samples():
    st = Stats.of([float(v) for v in range(1, 101)])
    assert st.median == pytest.approx(50.5)
    assert st.p10 == pytest.approx(10.9) and st.p90 == pytest.approx(90.1)
    assert st.iqr == pytest.approx(49.5) and st.n == 100 and st.min == 1.0
    assert st.to_json()["samples"][:3] == [1.0, 2.0, 3.0]


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError):
        TimingConfig(min_repeats=0)
    with pytest.raises(ValueError):
        TimingConfig(min_time_s=5, max_time_s=1)
