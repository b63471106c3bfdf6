"""Does the precision rule (the default suite's timing: until the median's 95% CI is within ±2%, at least 10
calls and 0.2 s, at most 2 s) measure what the fixed protocol (at least 1 s of calls) measures? One process,
one ONNX Runtime session per model, the two protocols alternately (F P P F, eight times), the ratio of their
medians per pair; beside it the fixed protocol against itself and the precision rule against itself, which
say how much two windows of the same protocol differ on this machine.

    python benchmarks/timing_protocols.py MODEL.onnx [MODEL.onnx ...] [--threads 2] [--rounds 8]

Measured on AMD EPYC Zen 5 (2 vCPUs), 2026-12-07, cae@256 (phase lowering and native): precision / fixed
0.999 and 1.005 (median of 16 pairs; range 0.974-1.012), fixed / fixed 0.989-1.016, precision / precision
0.972-1.016 — no bias; a window's median moves with the machine's slow stretches, whichever the protocol.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import onnxruntime as ort

from harness.core.config import TimingConfig
from harness.measure.timing import measure

FIXED = TimingConfig(warmup=3, min_repeats=10, min_time_s=1.0, max_time_s=10.0)
PRECISION = TimingConfig(warmup=3, min_repeats=10, min_time_s=0.2, max_time_s=2.0, rel_ci=0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    for path in args.models:
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feeds = {
            i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
            for i in s.get_inputs()
        }

        def fn(s=s, feeds=feeds):
            return s.run(None, feeds)

        cross, ff, pp = [], [], []
        for _ in range(args.rounds):
            f1 = statistics.median(measure(fn, FIXED))
            p1 = statistics.median(measure(fn, PRECISION))
            p2 = statistics.median(measure(fn, PRECISION))
            f2 = statistics.median(measure(fn, FIXED))
            cross += [p1 / f1, p2 / f2]
            ff.append(f2 / f1)
            pp.append(p2 / p1)
        print(
            f"{Path(path).name}: precision / fixed {statistics.median(cross):.3f} "
            f"(range {min(cross):.3f}-{max(cross):.3f}); fixed / fixed {min(ff):.3f}-{max(ff):.3f}; "
            f"precision / precision {min(pp):.3f}-{max(pp):.3f}"
        )


if __name__ == "__main__":
    main()
