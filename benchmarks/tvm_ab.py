"""Side-by-side TVM builds in one process: ONNX files built by tvm-llvm's pipeline (harness/backends/tvm/defaults.py,
default-schedule decisions measured afresh), optionally also without fast math, then timed in alternation —
rounds of 20 calls each, the median of the rounds per build — so that a slow stretch of the machine hits every
build alike. For A/B questions such as `phase` against `phase_split`, or exp/tanh/sigmoid with and without
fastmath.py; the numbers in docs/tuning.md come from it.

    python benchmarks/tvm_ab.py A.onnx [B.onnx ...] [--exact-math] [--rounds 30] [--threads 2]

`convtx export --out DIR name@size` and `convtx lower --lowering L -o OUT.onnx IN.onnx` make the inputs.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("onnx", nargs="+")
    p.add_argument("--exact-math", action="store_true", help="also build each file without fastmath.py")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(a.threads)

    import numpy as np
    import onnx
    import tvm
    from tvm import relax

    from harness.backends.tvm import defaults
    from harness.backends.tvm.common import host_target, relax_module
    from harness.core.onnx_io import graph_inputs

    target = host_target(a.threads)
    builds = {}
    for path in a.onnx:
        specs = graph_inputs(onnx.load(path, load_external_data=False))
        shapes = {s.name: tuple(s.shape) for s in specs}
        dtypes = {s.name: s.dtype for s in specs}
        rng = np.random.default_rng(0)
        args = [tvm.runtime.tensor(rng.standard_normal(s).astype(np.float32)) for s in shapes.values()]
        for fast in (True, False) if a.exact_math else (True,):
            ex, _ = defaults.build(relax_module(path, shapes, dtypes, fast_math=fast), target, None)
            builds[f"{path}{'' if fast else ' (exact math)'}"] = (relax.VirtualMachine(ex, tvm.cpu()), args)
    times: dict[str, list[float]] = {k: [] for k in builds}
    for _ in range(a.rounds):
        for k, (vm, args) in builds.items():
            vm["main"](*args)
            t0 = time.perf_counter()
            for _ in range(20):
                vm["main"](*args)
            times[k].append((time.perf_counter() - t0) / 20 * 1e3)
    first = float(np.median(times[next(iter(times))]))
    for k, v in times.items():
        print(f"{k}: median {np.median(v):.4f} ms, ratio to the first {np.median(v) / first:.3f}")


if __name__ == "__main__":
    main()
