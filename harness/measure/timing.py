"""Timing: explicit warm-up, repetitions until a count AND a time budget — or, with `TimingConfig.rel_ci`,
until the median is known to a stated precision — raw samples kept.

The precision rule is the distribution-free confidence interval of the median (order statistics of the
binomial, no assumption on the shape of the distribution: latency samples are skewed and often bimodal on a
shared machine), checked after each call once the minimum count and time are reached: a case whose calls agree
stops after a few, a noisy one runs until its budget. Each record says which rule stopped it and the precision
reached (`latency_ms.ci95`, `latency_ms.stop`), as Google Benchmark and pytest-benchmark bound their runs.

`measure_interleaved` also times a fixed reference kernel between the case's calls, so that every case's
latency can be expressed as a ratio to work that is the same on every machine and in every run (the
performance gate, harness/perfgate/compare.py, compares those ratios when the machines differ).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from harness.core.config import TimingConfig
from harness.core.records import Latency, ReferenceTiming

Z95 = 1.959964  # the normal quantile of a two-sided 95% interval


def median_ci(sorted_samples) -> tuple[float, float]:
    """The distribution-free 95% confidence interval of the median of `sorted_samples` (ascending): the order
    statistics of ranks n/2 ∓ 1.96·√n/2 (the normal approximation of Binomial(n, 1/2)), clipped to the sample
    range; with fewer than 6 samples no interval is that narrow, and (min, max) is returned."""
    n = len(sorted_samples)
    if n < 6:
        return float(sorted_samples[0]), float(sorted_samples[-1])
    half = Z95 * n**0.5 / 2
    lo = max(0, int(np.floor(n / 2 - half)) - 1)  # 0-based ranks
    hi = min(n - 1, int(np.ceil(n / 2 + half)))
    return float(sorted_samples[lo]), float(sorted_samples[hi])


def rel_halfwidth(sorted_samples) -> float:
    """Half the width of `median_ci` relative to the median."""
    lo, hi = median_ci(sorted_samples)
    med = float(np.median(sorted_samples))
    return (hi - lo) / 2 / med if med > 0 else float("inf")


def stop_of(samples_ms, cfg: TimingConfig) -> dict:
    """Which rule ended the timing of these samples under `cfg`, and the precision reached: the record's
    `latency_ms.stop`."""
    s = sorted(samples_ms)
    n, total_s = len(s), sum(s) / 1e3
    rel = rel_halfwidth(s)
    if cfg.rel_ci is not None and n >= cfg.min_repeats and total_s >= cfg.min_time_s and rel <= cfg.rel_ci:
        by = "precision"
    elif n >= cfg.max_repeats:
        by = "count cap"
    elif total_s >= cfg.max_time_s:
        by = "time budget"
    else:
        by = "count and time" if cfg.rel_ci is None else "time budget"
    return {
        "rule": cfg.rule(),
        "by": by,
        "ci95_rel": round(rel, 5),
        "target_rel": cfg.rel_ci,
        "timed_s": round(total_s, 4),
    }


def _precise(samples: list[float], rel_ci: float) -> bool:
    """The precision check, run after a call: every call while there are few samples, then every ~1/16th more
    (sorting thousands of samples after each short call would cost more than the calls)."""
    n = len(samples)
    if n >= 64 and n % max(1, n // 16):
        return False
    return rel_halfwidth(sorted(samples)) <= rel_ci


def latency_of(samples_ms, reference_ms=None, cfg: TimingConfig | None = None) -> Latency:
    """The statistics of raw per-call samples (ms) as a record's `latency_ms` (median, mean, stdev, min,
    p10/p90/p99, IQR, n, the samples themselves). `reference_ms`, the samples of REFERENCE_KERNEL timed between
    the calls (none for a remote device), gives the ratio the performance gate compares across machines."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no samples")
    q10, q25, q50, q75, q90, q99 = np.percentile(a, [10, 25, 50, 75, 90, 99])
    ref = None
    if reference_ms is not None and len(reference_ms):
        r = np.asarray(reference_ms, dtype=np.float64)
        ref = ReferenceTiming(REFERENCE_KERNEL, float(np.percentile(r, 50)), int(r.size), tuple(float(v) for v in r))
    return Latency(
        samples=tuple(float(v) for v in a),
        median=float(q50),
        mean=float(a.mean()),
        stdev=float(a.std(ddof=1)) if a.size > 1 else 0.0,
        min=float(a.min()),
        p10=float(q10),
        p90=float(q90),
        p99=float(q99),
        iqr=float(q75 - q25),
        n=int(a.size),
        reference=ref,
        ratio_to_reference=float(q50) / ref.median if ref is not None else None,
        ci95=median_ci(np.sort(a)),
        stop=stop_of(a.tolist(), cfg) if cfg is not None else None,
    )


def measure(
    fn: Callable[[], object],
    cfg: TimingConfig,
    clock: Callable[[], int] = time.perf_counter_ns,
    after: Callable[[int], object] | None = None,
) -> list[float]:
    """Call `fn` (which must block until its work is done) and return per-call times in ms.

    Stops once both `min_repeats` samples and `min_time_s` of timed work are reached — with `cfg.rel_ci`, only
    once the median's 95% CI is also within ±rel_ci (or the budget is spent); stops earlier at `max_time_s`
    (keeping at least 3 samples, so one very slow case cannot eat the whole budget), or at `max_repeats`. Warm-up is `warmup` untimed calls, cut short (after the first) once it has taken
    `min_time_s`: a case that takes seconds per call is warm after one. `after(ns)`, when given, is called
    after each timed call with its duration, outside the timed region.
    """
    t_warm = clock()
    for _ in range(cfg.warmup):
        fn()
        if clock() - t_warm >= cfg.min_time_s * 1e9:
            break
    samples: list[float] = []
    total_ns = 0
    min_ns, max_ns = cfg.min_time_s * 1e9, cfg.max_time_s * 1e9
    while len(samples) < cfg.max_repeats:
        t0 = clock()
        fn()
        dt = clock() - t0
        samples.append(dt / 1e6)
        total_ns += dt
        if after is not None:
            after(dt)
        enough = len(samples) >= cfg.min_repeats and total_ns >= min_ns
        if enough and cfg.rel_ci is not None:
            enough = _precise(samples, cfg.rel_ci)
        over = total_ns >= max_ns and len(samples) >= 3
        if enough or over:
            break
    return samples


# The reference kernel: fixed, single-threaded work that needs nothing but numpy — float32 multiply and add
# over three 32 KiB arrays, 32 passes (about 70 µs here). No thread pool (an engine's pool would compete with
# it), no BLAS (whose kernel choice depends on the environment). Measured here in 8 fresh processes, its
# median varied by ±2% from process to process (an L2-sized variant, 3 × 256 KiB: ±3.5%). Its id changes
# whenever its work does.
REFERENCE_KERNEL = "numpy-f32-muladd-8k-x32-1t"
# The reference takes at most about this fraction of the case's timed work (it always follows the first
# REFERENCE_MIN samples, so a slow case still gets that many reference samples).
REFERENCE_SHARE = 0.2
REFERENCE_MIN = 5
REFERENCE_BURST = 16  # at most this many reference calls after one case call (a slow case gets a burst)


class ReferenceKernel:
    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.a = rng.random(1 << 13, dtype=np.float32)
        self.b = rng.random(1 << 13, dtype=np.float32)
        self.c = np.empty_like(self.a)

    def __call__(self) -> None:
        a, b, c = self.a, self.b, self.c
        for _ in range(32):
            np.multiply(a, b, out=c)
            np.add(c, a, out=c)


def measure_interleaved(
    fn: Callable[[], object],
    cfg: TimingConfig,
    reference: Callable[[], object],
    clock: Callable[[], int] = time.perf_counter_ns,
) -> tuple[list[float], list[float]]:
    """`measure(fn, cfg)` with `reference` timed between the case's calls (outside the case's timed
    region): after each of the first REFERENCE_MIN samples, then as often as keeps the reference's share of the
    time near REFERENCE_SHARE (up to REFERENCE_BURST calls after one slow case call). Returns
    (case samples, reference samples), both in ms; the stopping rule counts the case's time only."""
    reference()
    reference()
    ref: list[float] = []
    since_ref = 0
    last_ref = 0
    ratio = 1 / REFERENCE_SHARE - 1

    def after(dt_ns: int) -> None:
        nonlocal since_ref, last_ref
        since_ref += dt_ns
        burst = 0
        while burst < REFERENCE_BURST and (burst == 0 and len(ref) < REFERENCE_MIN or since_ref >= ratio * last_ref):
            t0 = clock()
            reference()
            last_ref = clock() - t0
            ref.append(last_ref / 1e6)
            since_ref = max(0, since_ref - ratio * last_ref)
            burst += 1
        if burst == REFERENCE_BURST:
            since_ref = 0

    return measure(fn, cfg, clock, after=after), ref


def slowed(
    fn: Callable[[], object],
    pct: float,
    calls: int = 7,
    steps: int = 4,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Callable[[], object]:
    """For measuring the performance gate's power only (`bench --inject-slowdown`): `fn` followed, inside
    the same call, by a busy-wait that makes the call about `pct`% slower. The wait spins on the clock, so it
    occupies a core the way extra work would. It is calibrated here: a wait of pct% of fn's median is not
    pct% slower for engines whose idle pool threads go to sleep during a long wait and must be woken by the
    next call (PyTorch, ONNX Runtime: up to 3x the intended slowdown, measured), so the wait is rescaled
    from the measured slowdown for up to `steps` rounds of `calls` calls and the closest is kept; the
    slowdown it measured is `call.measured_pct`."""

    def med(f) -> float:
        d = []
        for _ in range(calls):
            t0 = clock()
            f()
            d.append(clock() - t0)
        return float(np.median(d))

    def with_wait(extra: int):
        def call():
            out = fn()
            end = clock() + extra
            while clock() < end:
                pass
            return out

        return call

    base = med(fn)
    target = pct / 100
    extra = int(base * target)
    best = (float("inf"), extra, 0.0)
    for _ in range(steps):
        got = med(with_wait(extra)) / base - 1
        if abs(got - target) < best[0]:
            best = (abs(got - target), extra, got)
        if abs(got - target) <= 0.1 * target:
            break
        extra = int(min(2 * base * target, max(0.05 * base * target, extra * target / max(got, 0.01 * target))))
    call = with_wait(best[1])
    call.extra_ns = best[1]
    call.measured_pct = 100 * best[2]
    return call
