"""The machine's measured ceilings, once per run: fp32 peak (the best of sgemm at three sizes) and memory bandwidth (a large
copy), with the run's thread count. Stored in run.json; reports give each case's GFLOP/s as a share of the
peak and draw the roofline from both.

Run in a child process (`python -m harness.measure.calibrate --threads N`) so that the thread count applies and the
sweep driver never imports torch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

SGEMM_NS = (512, 1024, 2048)  # the peak is the best of these: small products run from cache, large from memory
COPY_BYTES = 128 * 2**20
BUDGET_S = 0.8  # per measurement, after warm-up


def _best_rate(fn, work: float, budget_s: float) -> tuple[float, int]:
    """Highest work/second over repeated calls within the budget (the ceiling, not the typical rate)."""
    fn()  # warm-up: page faults, thread pool start, frequency ramp
    best, n, t_end = 0.0, 0, time.perf_counter() + budget_s
    while n < 3 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = max(best, work / dt)
        n += 1
    return best, n


def measure(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    rates = {}
    for n in SGEMM_NS:
        a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        c = torch.empty(n, n)
        rates[n] = _best_rate(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), 2.0 * n**3, BUDGET_S / len(SGEMM_NS))
    n_best = max(rates, key=lambda n: rates[n][0])
    peak, n_mm = rates[n_best]
    src = torch.ones(COPY_BYTES // 4)
    dst = torch.empty_like(src)
    bw, n_cp = _best_rate(lambda: dst.copy_(src), 2.0 * COPY_BYTES, BUDGET_S)  # read + write
    return {
        "fp32_peak_gflops": round(peak / 1e9, 2),
        "mem_bandwidth_gbs": round(bw / 1e9, 2),
        "threads": threads,
        "sgemm_gflops": {str(n): round(r / 1e9, 1) for n, (r, _) in rates.items()},
        "method": f"best of {n_mm} torch.mm {n_best}x{n_best} fp32 products (of sizes "
        f"{', '.join(map(str, SGEMM_NS))}) and {n_cp} copies of "
        f"{COPY_BYTES // 2**20} MiB (read + write counted), {threads} threads, torch "
        f"{torch.__version__}",
    }


def calibrate(threads: int, timeout_s: float = 120.0) -> dict:
    """Measure in a child process; on failure, say why instead of a number (reports then omit % of peak)."""
    try:
        p = subprocess.run(
            [sys.executable, "-m", "harness.measure.calibrate", "--threads", str(threads)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"calibration took longer than {timeout_s:.0f} s", "threads": threads}
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"calibration exited {p.returncode}: {tail}", "threads": threads}
    return json.loads(p.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.measure.calibrate")
    ap.add_argument("--threads", type=int, required=True)
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
