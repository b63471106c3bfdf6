"""The default CPU schedule kernel by kernel: for an ONNX file, each fused TVM kernel's loop nest and every
schedule form (harness/backends/tvm/schedule.py FORMS), optionally with other register-block shapes, built
alone and timed in one alternation per kernel (defaults._timed, as the decisions are; the minimum of 3 rounds).
For working on the schedule; the per-kernel numbers of docs/tuning.md come from it. A constant weight that the schedule packs is packed
beforehand, as tvm-llvm packs it at build time.

    python benchmarks/tvm_kernels.py MODEL.onnx [--kernel SUBSTRING] [--rows 4,8] [--vectors 2,4]
                                     [--rows-outer] [--pack-per-call] [--top 6] [--threads 2]

`convtx lower --lowering phase -o X.onnx Y.onnx` and `convtx export --out DIR name@size` make the inputs.
"""

from __future__ import annotations

import argparse
import os


def fused_kernels(path: str, target_d: dict):
    """(name, PrimFunc, calls) of every fused kernel of the file, as tvm-llvm's build splits it."""
    import onnx
    import tvm
    from tvm import tirx

    from harness.backends.tvm import defaults
    from harness.backends.tvm.common import relax_module
    from harness.core.onnx_io import graph_inputs

    specs = graph_inputs(onnx.load(path, load_external_data=False))
    mod = relax_module(path, {s.name: tuple(s.shape) for s in specs}, {s.name: s.dtype for s in specs})
    fused = defaults.fuse(mod, tvm.target.Target(target_d))
    calls, free = defaults._calls(fused), defaults.layout_free(fused)
    return [
        (gv.name_hint, defaults.with_layout_free(f, free.get(gv.name_hint)), calls.get(gv.name_hint, 1))
        for gv, f in fused.functions_items()
        if isinstance(f, tirx.PrimFunc)
    ]


def time_kernel(func, target_d: dict, args, repeat: int = 15) -> tuple[float, float]:
    """(min, median) ms of the kernel as tvm-llvm runs it: a weight packed at build time is packed beforehand."""
    import numpy as np
    import tvm

    from harness.backends.tvm import defaults

    rt, args, _ = defaults._runnable(func, args, tvm.target.Target(target_d))
    t = [tvm.runtime.tensor(a.copy(), tvm.cpu()) for a in args]
    rt["main"](*t)
    r = np.array(rt.time_evaluator("main", tvm.cpu(), number=3, repeat=repeat, min_repeat_ms=5)(*t).results) * 1e3
    return float(r.min()), float(np.median(r))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--kernel", default="", help="only kernels whose name contains this")
    ap.add_argument("--rows", default="", help="also the spatial form with these register-block rows, e.g. 4,8")
    ap.add_argument("--vectors", default="", help="also the spatial form with these vectors per row, e.g. 2,4")
    ap.add_argument("--rows-outer", action="store_true", help="also spatial and wide with the row blocks outermost")
    ap.add_argument("--pack-per-call", action="store_true", help="also channels with the weight packed in every call")
    ap.add_argument("--top", type=int, default=6, help="the kernels with the most loop-nest time (calls x ms)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.environ.setdefault("TVM_NUM_THREADS", str(a.threads))

    import tvm

    from harness.backends.tvm import defaults, schedule
    from harness.backends.tvm.common import host_target

    target_d = host_target(a.threads)
    target = tvm.target.Target(target_d)
    lanes = schedule.vector_lanes(target_d)
    kernels = [k for k in fused_kernels(a.model, target_d) if a.kernel in k[0]]
    timed = []
    for name, func, calls in kernels:
        args = defaults._random_args(func.with_attr("global_symbol", "main"))
        timed.append((calls * time_kernel(func, target_d, args, repeat=3)[0], name, func, calls, args))
    timed.sort(key=lambda x: -x[0])
    for naive, name, func, calls, args in timed[: a.top]:
        print(f"{name}  x{calls}  loop nest {naive / calls:.3f} ms")
        variants = [(form, {}) for form in schedule.FORMS]
        variants += [("spatial", {"REG_BLOCK": int(r)}) for r in a.rows.split(",") if r]
        rows_v = (a.rows or str(schedule.REG_BLOCK.get(lanes, 4))).split(",")
        variants += [
            ("spatial", {"REG_BLOCK": int(r), "VECTORS": int(v)}) for r in rows_v for v in a.vectors.split(",") if v
        ]
        variants += [(f, {"ROWS_INNERMOST": False}) for f in ("spatial", "wide") if a.rows_outer]
        variants += [("channels", {"PACK_PER_CALL": True})] if a.pack_per_call else []
        built = []
        for form, knobs in variants:
            per_call = knobs.get("PACK_PER_CALL", False)  # the weight not marked constant: packed inside the kernel
            saved = {k: getattr(schedule, k) for k in knobs if k != "PACK_PER_CALL"}
            for k in saved:  # REG_BLOCK / VECTORS are per lanes, ROWS_INNERMOST a flag
                setattr(schedule, k, {**saved[k], lanes: knobs[k]} if isinstance(saved[k], dict) else knobs[k])
            try:
                f = func.with_attr(schedule.LAYOUT_FREE, []) if per_call else func
                sched, outcome = schedule.schedule_func(f, target_d, form)
            finally:
                for k, v in saved.items():
                    setattr(schedule, k, v)
            rule = next((v for v in outcome.blocks.values() if v.startswith(("reduction", "kept ("))), "")
            label = " ".join([form, *(f"{k.lower()}={v}" for k, v in knobs.items())])
            if sched is None:
                print(f"  {label:28s} -          {rule}")
                continue
            rt, run_args, _ = defaults._runnable(sched, args, target)
            built.append((label, rule, rt, run_args))
        # every variant in one alternation (A B C A B C ..., the minimum of each): a load on the machine slows
        # them all alike instead of deciding between them
        best = [float("inf")] * len(built)
        for _ in range(3):
            times, _ = defaults._timed([(rt, run_args) for _, _, rt, run_args in built], tvm.cpu(0))
            best = [min(x, y) for x, y in zip(best, times)]
        for (label, rule, _, _), ms in zip(built, best):
            print(f"  {label:28s} min {ms:8.3f} ms  {rule}")


if __name__ == "__main__":
    main()
