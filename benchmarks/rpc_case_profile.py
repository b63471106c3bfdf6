"""Where one remote case spends this host's time: a loopback server (pinned, one engine thread), one TVM case run
in-process through the sweep's own `run_case` a few times after a warm-up, profiled by cProfile on process (CPU)
time — what a sweep's host pays per case, beside the wall time per case. docs/rpc.md's per-case numbers and
scaling estimate come from it.

    python benchmarks/rpc_case_profile.py unet@64 [--lowering phase] [--cases 3] [--suite quick] [--top 20]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="zoo ref, e.g. unet@64")
    p.add_argument("--lowering", default="phase")
    p.add_argument("--cases", type=int, default=3)
    p.add_argument("--suite", default="quick", help="whose timing configuration (default quick)")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--build-dir", default="build")
    a = p.parse_args()

    from harness.backends import get_backend
    from harness.backends.tvm.rpc_local import LoopbackCluster
    from harness.core.config import RunConfig, get_suite
    from harness.pipeline.case import run_case
    from harness.pipeline.sweep import zoo_ref
    from harness.pipeline.tune import prepare_isolated

    build = Path(a.build_dir)
    prep = prepare_isolated(zoo_ref(a.model), 1, 0, build)
    with LoopbackCluster(servers=1, key="loopback", threads=1, pin=True) as cl:
        cfg = RunConfig(threads=1, timing=get_suite(a.suite).timing, rpc_tracker=cl.tracker, rpc_key="loopback")
        get_backend("tvm-llvm").load()
        run_case(prep, a.lowering, "tvm-llvm", cfg, "profile", build)  # compiles (cached) and warms up
        gc.collect()
        gc.freeze()  # as the sweep's workers do after each request
        prof = cProfile.Profile(time.process_time)
        t0, c0 = time.perf_counter(), time.process_time()
        prof.enable()
        for _ in range(a.cases):
            rec = run_case(prep, a.lowering, "tvm-llvm", cfg, "profile", build)
        prof.disable()
        wall, cpu = (time.perf_counter() - t0) / a.cases, (time.process_time() - c0) / a.cases
    print(f"{a.model}/{a.lowering}: {rec.status}; per case {wall:.3f} s wall, {cpu:.3f} s of this host's CPU")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(a.top)


if __name__ == "__main__":
    main()
