"""`convtx tune`, `optimize` and `build`: make compiled models better (tuning database, per-node lowerings)
and keep compiled artefacts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.cli.args import (
    add_run_options,
    backends_arg,
    batches_arg,
    csv_list,
    lowerings_arg,
    run_config,
    writable_dir,
    writable_parent,
)
from harness.core import safefs
from harness.core.errors import ConvtxError
from harness.measure.machine import usable_cpus


def add_build(sub) -> None:
    sp = sub.add_parser("build", help="compile only and keep the artefacts (CUDA on a machine without a GPU)")
    sp.add_argument("models", nargs="+", metavar="MODEL", help="zoo names (name@size) or .onnx paths")
    sp.add_argument(
        "--out",
        default="build/artifacts",
        metavar="DIR",
        help="where libraries, kernel sources, cubins and build.json go (default build/artifacts)",
    )
    add_run_options(sp)
    sp.set_defaults(func=cmd_build, compile_only=True)


def add_tune(sub) -> None:
    sp = sub.add_parser("tune", help="MetaSchedule-tune models for TVM into the committed database (tuning/)")
    sp.add_argument("models", nargs="*", help="zoo refs (name@size) or .onnx paths (default: the suite's)")
    sp.add_argument("--suite", default="default", help="whose models to tune when none are named")
    sp.add_argument("--lowerings", help="comma-separated lowerings to tune (default native)")
    sp.add_argument(
        "--target",
        help='TVM target as JSON (default: this host, e.g. {"kind": "llvm", "mcpu": "znver4", "num-cores": 2})',
    )
    sp.add_argument("--trials", type=int, default=200, help="MetaSchedule trials per workload (default 200)")
    sp.add_argument(
        "--coverage",
        action="store_true",
        help="tune tasks across the models and lowerings until no candidate has more than --max-untuned of its "
        "latency untuned (docs/tuning.md); default lowerings: every one TVM runs",
    )
    sp.add_argument("--trials-per-task", type=int, default=64, help="with --coverage: trials per task (default 64)")
    sp.add_argument(
        "--max-untuned", type=float, default=0.02, help="with --coverage: the goal, a share of latency (default 0.02)"
    )
    sp.add_argument(
        "--within",
        type=float,
        default=2.0,
        help="with --coverage: a lowering can win when within this factor of the model's fastest (default 2)",
    )
    sp.add_argument(
        "--budget-minutes",
        type=float,
        default=90.0,
        help="wall-clock budget for everything, survey included (default 90; 0: none)",
    )
    sp.add_argument("--threads", type=int, default=None, help="threads (default: usable CPUs)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--build-dir", default="build")
    sp.add_argument(
        "--rpc-tracker",
        metavar="HOST:PORT",
        help="measure candidates on the devices of this TVM RPC tracker, one per server at once (docs/rpc.md)",
    )
    sp.add_argument("--rpc-key", metavar="KEY", help="the device key the RPC servers registered under")
    sp.set_defaults(func=cmd_tune)


def add_optimize(sub) -> None:
    sp = sub.add_parser("optimize", help="per ConvTranspose node, the fastest lowering that passes on a backend")
    sp.add_argument("model", help="zoo ref (name@size) or .onnx path")
    sp.add_argument(
        "--backend",
        required=True,
        help="backend id, e.g. tvm-llvm or ort-cpu; several (an engine's option sets, e.g. iree-cpu,iree-cpu-cl): "
        "each optimised, the fastest final model kept (lowering x option set)",
    )
    sp.add_argument("-o", "--output", required=True, help="the optimised model (.onnx); OUT.json explains it")
    sp.add_argument("--lowerings", help="candidates (default: all)")
    sp.add_argument("--shape", action="append", metavar="NAME=D1xD2x…")
    sp.add_argument("--threads", type=int, default=None)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--build-dir", default="build")
    sp.set_defaults(func=cmd_optimize)


def cmd_tune(args) -> int:
    import json

    from harness.core.config import get_suite
    from harness.pipeline.tune import tune

    if args.trials < 1:
        raise ConvtxError(f"--trials {args.trials}: expected a positive number of trials")
    threads = args.threads or usable_cpus()
    target = None
    if args.target:
        try:
            target = json.loads(args.target)
        except json.JSONDecodeError as e:
            raise ConvtxError(
                f"--target {args.target!r}: not a JSON target dict ({e.msg}); e.g. "
                f'\'{{"kind": "llvm", "mcpu": "znver4", "num-cores": 2}}\''
            ) from None
        if not isinstance(target, dict) or target.get("kind") != "llvm":
            raise ConvtxError(f'--target {args.target!r}: expected a dict with "kind": "llvm"')
        for k in ("mcpu", "num-cores"):  # both name the database's folder (tuning/tvm-V/llvm-MCPU-Nc)
            if k in target:
                safefs.component(str(target[k]), k, "--target")
    models = [m for a in args.models for m in csv_list(a)] or list(get_suite(args.suite).models)
    build = writable_dir(Path(args.build_dir), "build directory")
    if args.budget_minutes < 0:
        raise ConvtxError(f"--budget-minutes {args.budget_minutes:g}: expected minutes >= 0 (0: no budget)")
    budget = args.budget_minutes * 60 if args.budget_minutes else None
    rpc = None
    if args.rpc_tracker or args.rpc_key:
        rpc, target = _tune_farm(args.rpc_tracker, args.rpc_key, target, threads)
    if args.coverage:
        return _tune_coverage(args, models, target, threads, budget, build, rpc)
    lowerings = lowerings_arg(args.lowerings, ["native"])
    res = tune(models, lowerings, target, args.trials, budget, threads, args.seed, build, rpc=rpc)
    print(
        f"[tune] {len(res.workloads)} workloads in {res.seconds:.0f} s; database: {res.db or '-'}"
        + (f"; {len(res.failed)} failed:" if res.failed else ""),
        file=sys.stderr,
    )
    for f in res.failed:
        print(f"[tune]   {f}", file=sys.stderr)
    return 1 if res.failed else 0


def _tune_farm(tracker: str | None, key: str | None, target: dict | None, threads: int) -> tuple[dict, dict]:
    """`tune --rpc-tracker/--rpc-key`: every server under the key is asked what it is; they must be alike (a
    database is for one kind of device), and the target is theirs unless --target names one. Returns (the
    runner's farm, the target)."""
    from harness.backends.tvm.common import host_target, llvm_target
    from harness.backends.tvm.remote import check_tracker, probe_servers

    if not tracker or not key:
        raise ConvtxError("--rpc-tracker HOST:PORT and --rpc-key KEY go together")
    info = check_tracker(tracker, key)
    machines = probe_servers(tracker, key, len(info["servers"]))
    if not machines:
        raise ConvtxError(f"--rpc-tracker {tracker}: no server under key {key!r} could be reached")
    kinds = {json.dumps(d, sort_keys=True) for d in machines.values()}
    if len(kinds) > 1:
        listed = "; ".join(f"{s}: {d}" for s, d in sorted(machines.items()))
        raise ConvtxError(
            f"--rpc-key {key}: the servers are not alike ({listed}); a database is for one kind of device: "
            "register each kind under its own key and tune each"
        )
    desc = next(iter(machines.values()))
    if target is None:
        target, why = llvm_target(desc, host_target(threads))
        print(f"[tune] target {json.dumps(target)} ({why})", file=sys.stderr)
    print(f"[tune] {len(machines)} server(s) under key {key!r}: {', '.join(sorted(machines))}", file=sys.stderr)
    return {"tracker": tracker, "key": key, "servers": len(machines)}, target


def _tune_coverage(args, models, target, threads, budget, build, rpc=None) -> int:
    from harness.pipeline.coverage import tune_coverage

    if args.trials_per_task < 1:
        raise ConvtxError(f"--trials-per-task {args.trials_per_task}: expected a positive number of trials")
    if not 0 <= args.max_untuned < 1:
        raise ConvtxError(f"--max-untuned {args.max_untuned}: expected a share in [0, 1)")
    lowerings = lowerings_arg(args.lowerings, ["native", "explicit_pads", "zero_insert", "phase", "gemm_overlap_add"])
    res = tune_coverage(
        models,
        lowerings,
        target,
        args.trials_per_task,
        budget,
        threads,
        args.seed,
        build,
        args.max_untuned,
        args.within,
        rpc=rpc,
    )
    print(
        f"[tune] coverage: {res.steps_done} tasks tuned in {res.seconds:.0f} s, {res.steps_left} left; "
        f"database: {res.db or '-'}" + (f"; {len(res.failed)} failed:" if res.failed else ""),
        file=sys.stderr,
    )
    for f in res.failed:
        print(f"[tune]   {f}", file=sys.stderr)
    for row in res.table:
        if row["candidate"]:
            print(
                f"[tune]   {row['model']:18s} {row['lowering']:16s} {row['latency_ms']:9.3f} ms  tuned "
                f"{(row['tuned_share'] or 0) * 100:5.1f}%  untuned {row['untuned_share'] * 100:5.1f}%  "
                f"({row['tasks_tuned']}/{row['tasks']} tasks)",
                file=sys.stderr,
            )
    return 1 if res.failed else 0


def cmd_optimize(args) -> int:
    import json

    from harness.backends import get_backend
    from harness.core.config import RunConfig, get_suite
    from harness.core.onnx_io import parse_shape_overrides
    from harness.pipeline.optimize import choose_option_set, optimize
    from harness.pipeline.sweep import model_ref
    from harness.pipeline.tune import prepare_isolated

    backends = [b for b in args.backend.split(",") if b]
    for b in backends:
        get_backend(b)
    if not backends:
        raise ConvtxError("--backend: expected a backend id (or several, e.g. iree-cpu,iree-cpu-cl)")
    out = Path(args.output)
    if out.suffix != ".onnx":
        raise ConvtxError(f"-o {out}: expected a path ending in .onnx")
    writable_parent(out)
    ref = model_ref(args.model, parse_shape_overrides(args.shape))
    lowerings = lowerings_arg(args.lowerings, list(get_suite("default").lowerings))
    threads = args.threads or usable_cpus()
    cfg = RunConfig(threads=threads, timing=get_suite("quick").timing, seed=args.seed)
    build = writable_dir(Path(args.build_dir), "build directory")
    prep = prepare_isolated(ref, 1, args.seed, build)
    say = lambda m: print(m, file=sys.stderr, flush=True)
    # several backends (an engine's option sets): each optimised in turn, the fastest final model kept
    results = {b: optimize(ref, b, cfg, build, lowerings, prep, say=say) for b in backends}
    backend, path, side = (backends[0], *results[backends[0]]) if len(backends) == 1 else choose_option_set(results)
    safefs.write_atomic(out, Path(path).read_bytes())
    side_path = safefs.write_atomic(out.with_suffix(".json"), json.dumps(side, indent=2))
    print(
        f"{out}: {side['final']} — {side['baseline_ms']:.3f} ms -> {side['final_ms']:.3f} ms "
        f"({side['speedup']:.2f}x) on {backend}; {side['decision']}"
    )
    if len(backends) > 1:
        print(f"  option set: {side['option_set_decision']}")
    for n in side["nodes"]:
        print(f"  {n['node']}: {n['why']}")
    print(f"  sidecar: {side_path}")
    return 0


def cmd_build(args) -> int:
    """Compile only and keep the artefacts (harness/pipeline/build.py); a table of what was built."""
    from harness.core.onnx_io import parse_shape_overrides
    from harness.pipeline.build import BUILDABLE, build_artifacts
    from harness.pipeline.sweep import Plan, model_ref

    backends = backends_arg(args.backends, ["tvm-cuda"])
    other = [b for b in backends if b not in BUILDABLE]
    if other:
        raise ConvtxError(
            f"--backends {','.join(other)}: `build` compiles ahead of time for "
            f"{', '.join(BUILDABLE)} (the other engines compile when a session is created)"
        )
    overrides = parse_shape_overrides(args.shape)
    refs = tuple(model_ref(m, overrides) for m in args.models)
    plan = Plan(
        refs, tuple(lowerings_arg(args.lowerings, ["native"])), tuple(backends), tuple(batches_arg(args.batches) or [1])
    )
    cfg = run_config(args, timing=None)
    out = writable_dir(Path(args.out), "output directory")
    built = build_artifacts(plan, cfg, out, Path(args.build_dir))
    print(f"{'case':<44} {'status':<8} {'kernels':>7} {'compile s':>9}  nvcc / reason")
    for c in built.cases:
        nv = c.get("nvcc") or {}
        tail = (
            f"{nv['status']}"
            + (
                f" ({nv['seconds']:.1f} s, {nv.get('registers_max', '?')} registers max, "
                f"{nv.get('spills', 0)} spill stores)"
                if nv.get("status") == "ok"
                else f": {nv.get('error', '')}"
            )
            if nv
            else c["reason"]
        )
        if nv.get("known"):
            tail = f"known ({nv['known']['id']}, {nv['known']['reproducer']}): {tail}"
        cs = f"{c['compile_s']:.1f}" if c["compile_s"] is not None else "—"
        print(
            f"{c['case_id']:<44} {c['status']:<8} {c['kernels'] if c['kernels'] is not None else '—':>7} "
            f"{cs:>9}  {tail}"
        )
    print(
        f"artefacts and build.json in {out}"
        + (
            f"; {built.known} known failure(s) (harness/checking/known.py: CUDA_BUILD_LEDGER, GRAPH_LEDGER), "
            f"{built.failed} unexplained"
            if built.known
            else ""
        )
    )
    return 1 if built.failed else 0
