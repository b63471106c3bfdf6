"""Timing: explicit warm-up, repetitions until a count AND a time budget, raw samples kept."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from harness.config import TimingConfig


@dataclass(frozen=True)
class Stats:
    """Statistics of raw samples, all in milliseconds."""

    samples: tuple[float, ...]
    median: float
    mean: float
    stdev: float
    min: float
    p10: float
    p90: float
    p99: float
    iqr: float
    n: int

    @staticmethod
    def of(samples_ms) -> "Stats":
        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0:
            raise ValueError("no samples")
        q10, q25, q50, q75, q90, q99 = np.percentile(a, [10, 25, 50, 75, 90, 99])
        return Stats(tuple(float(v) for v in a), float(q50), float(a.mean()),
                     float(a.std(ddof=1)) if a.size > 1 else 0.0, float(a.min()),
                     float(q10), float(q90), float(q99), float(q75 - q25), int(a.size))

    def to_json(self) -> dict:
        d = asdict(self)
        d["samples"] = list(self.samples)
        return d


def measure(fn: Callable[[], object], cfg: TimingConfig,
            clock: Callable[[], int] = time.perf_counter_ns) -> list[float]:
    """Call `fn` (which must block until its work is done) and return per-call times in ms.

    Stops once both `min_repeats` samples and `min_time_s` of timed work are reached; stops earlier at
    `max_time_s` (keeping at least 3 samples, so one very slow case cannot eat the whole budget), or at
    `max_repeats`. Warm-up is `warmup` untimed calls, cut short (after the first) once it has taken
    `min_time_s`: a case that takes seconds per call is warm after one.
    """
    t_warm = clock()
    for i in range(cfg.warmup):
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
        enough = len(samples) >= cfg.min_repeats and total_ns >= min_ns
        over = total_ns >= max_ns and len(samples) >= 3
        if enough or over:
            break
    return samples
