"""The `convtx` command: parsing only; the work lives in the modules it calls.

Exit status: 0 success, 1 a verdict failed (mismatch or error in `validate`), 2 bad usage or bad input
(one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from harness.core.errors import ConvtxError


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _default_memory_cap() -> float:
    """Three quarters of this machine's memory, in GiB, per worker."""
    import psutil
    return round(0.75 * psutil.virtual_memory().total / 2**30, 1)


def _writable_dir(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConvtxError(f"{path}: cannot create {what}: {e.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ConvtxError(f"{path}: {what} is not writable")
    return path


def _names_arg(text: str | None, registry: dict, check, default: list[str]) -> list[str]:
    """`a,b` -> checked names (unknown ones raise, listing the known); `all` -> the whole registry."""
    names = _csv(text)
    if not names:
        return default
    if names == ["all"]:
        return list(registry)
    for n in names:
        check(n)
    return names


def _backends_arg(text: str | None, default: list[str]) -> list[str]:
    from harness.backends import BACKENDS, get_backend
    return _names_arg(text, BACKENDS, get_backend, default)


def _lowerings_arg(text: str | None, default: list[str]) -> list[str]:
    from harness.lowerings import LOWERINGS, get_lowering
    return _names_arg(text, LOWERINGS, get_lowering, default)


def _batches_arg(text: str | None) -> list[int] | None:
    names = _csv(text)
    if not names:
        return None
    try:
        out = [int(b) for b in names]
    except ValueError:
        raise ConvtxError(f"--batches {text!r}: expected comma-separated positive integers") from None
    if any(b < 1 for b in out):
        raise ConvtxError(f"--batches {text!r}: expected comma-separated positive integers")
    return out


# ---------------------------------------------------------------------------------------------- commands

def cmd_list(args) -> int:
    from harness.backends import BACKENDS
    from harness.core.config import SUITES
    from harness.lowerings import LOWERINGS
    from models import MODELS

    data = {
        "models": [{"name": s.name, "family": s.family, "dims": s.dims, "sizes": list(s.sizes),
                    "description": s.description} for s in MODELS.values()],
        "lowerings": [{"name": lw.name, "description": lw.description} for lw in LOWERINGS.values()],
        "backends": [{"id": b.id, "engine": b.engine, "device": b.device, "zoo_only": b.zoo_only,
                      **(lambda a: {"available": a.available, "reason": a.reason})(b.availability())}
                     for b in BACKENDS.values()],
        "suites": [{"name": s.name, "models": list(s.models), "backends": list(s.backends),
                    "lowerings": list(s.lowerings), "batches": list(s.batches)} for s in SUITES.values()],
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print("models:")
    for m in data["models"]:
        print(f"  {m['name']:<13} {m['family']:<13} {m['dims']}-D  sizes {','.join(map(str, m['sizes'])):<16} {m['description']}")
    print("lowerings:")
    for lw in data["lowerings"]:
        print(f"  {lw['name']:<10} {lw['description']}")
    print("backends:")
    for b in data["backends"]:
        state = (f"available ({b['reason']})" if b["reason"] else "available") if b["available"] \
            else f"unavailable: {b['reason']}"
        print(f"  {b['id']:<15} {state}")
    print("suites:")
    for s in data["suites"]:
        print(f"  {s['name']:<10} {' '.join(s['models'])} × {','.join(s['backends'])}")
    return 0


def cmd_export(args) -> int:
    from harness.pipeline.export import export_zoo
    from harness.core.records import fmt_metric
    from harness.pipeline.sweep import zoo_ref
    from models import MODELS, get_model

    refs = [zoo_ref(m) for m in (args.models or list(MODELS))]
    out = _writable_dir(Path(args.out), "output directory")
    for ref in refs:
        for batch in _batches_arg(args.batches) or [1]:
            exp = export_zoo(get_model(ref.name), ref.size, batch, args.seed, Path(args.build_dir) / "onnx")
            dest = out / f"{ref.name}-{ref.size}-b{batch}.onnx"
            tmp = dest.with_name(dest.name + ".tmp")
            tmp.write_bytes(Path(exp.path).read_bytes())
            tmp.replace(dest)
            print(f"{dest}  [kept: {exp.exporter}, opset {exp.opset}]")
            for name, r in exp.exporters.items():
                err = f" rel_l2 {fmt_metric(r['rel_l2'], '.1e')} vs PyTorch float64" if "rel_l2" in r else ""
                why = f" — {r['reason']}" if r.get("reason") else ""
                print(f"    {name:<12} {r['status']}{err}{why}")
    return 0


def _run_config(args, timing):
    """The RunConfig of validate/bench from their flags."""
    from harness.core.config import RunConfig

    threads = args.threads or _usable_cpus()
    if threads < 1:
        raise ConvtxError(f"--threads {threads}: expected a positive integer")
    if args.memory_cap is not None and args.memory_cap <= 0:
        raise ConvtxError(f"--memory-cap {args.memory_cap}: expected a positive number of GiB")
    arch = getattr(args, "cuda_arch", None)
    if arch is not None and not re.fullmatch(r"sm_\d{2,3}[a-z]?", arch):
        raise ConvtxError(f"--cuda-arch {arch!r}: expected sm_XX (e.g. sm_80, sm_90a)")
    tracker, key = getattr(args, "rpc_tracker", None), getattr(args, "rpc_key", None)
    if key and not tracker:
        raise ConvtxError("--rpc-key needs --rpc-tracker HOST:PORT")
    if tracker:
        from harness.backends.tvm.remote import parse_tracker
        parse_tracker(tracker)
        if not key:
            raise ConvtxError("--rpc-tracker needs --rpc-key KEY (the device key the servers registered under)")
        if getattr(args, "compile_only", False):
            raise ConvtxError("--rpc-tracker: `convtx build` only compiles; run remotely with bench or validate")
        if getattr(args, "counts", False):
            raise ConvtxError("--counts: callgrind counts work on this machine; it cannot count a remote device")
    return RunConfig(threads=threads, timing=timing, case_timeout_s=args.case_timeout, seed=args.seed,
                     memory_cap_gib=args.memory_cap if args.memory_cap is not None else _default_memory_cap(),
                     inject_slowdown=_slowdown_arg(getattr(args, "inject_slowdown", None)), cuda_arch=arch,
                     tf32=not getattr(args, "no_tf32", False), compile_only=getattr(args, "compile_only", False),
                     rpc_tracker=tracker, rpc_key=key, counter="callgrind" if getattr(args, "counts", False) else None)


def _counter_check(cfg, build: Path) -> dict | None:
    """bench --counts: valgrind, its header and gcc are here and valgrind runs Python, or a one-line error now;
    the identity of the counts (run.json config.counter)."""
    if not cfg.counter:
        return None
    from harness.measure.counting import CountingUnavailable, identity
    try:
        ident = identity(build)
    except CountingUnavailable as e:
        raise ConvtxError(f"--counts: {e}") from None
    print(f"convtx bench: counting with callgrind (valgrind {ident['valgrind']}; the CPU it presents: "
          f"{ident['cpu']['brand']}; metric: {ident['metric_text']}; {ident['calls']} counted calls per case)",
          file=sys.stderr)
    return ident


def _rpc_check(cfg) -> dict | None:
    """A remote run: the tracker answers and has servers under the key, or a one-line error now."""
    if not cfg.rpc_tracker:
        return None
    from harness.backends.tvm.remote import check_tracker
    info = check_tracker(cfg.rpc_tracker, cfg.rpc_key)
    print(f"convtx: RPC tracker {info['tracker']}, key {info['key']!r}: {len(info['servers'])} server(s) "
          f"{', '.join(info['servers'])}", file=sys.stderr)
    return info


def _slowdown_arg(values) -> tuple[tuple[str, float], ...]:
    """`--inject-slowdown PCT[@CASE_GLOB]` (repeatable; default glob: every case)."""
    out = []
    for v in values or ():
        pct, _, glob = v.partition("@")
        try:
            p = float(pct)
        except ValueError:
            p = -1.0
        if not 0 < p <= 1000:
            raise ConvtxError(f"--inject-slowdown {v!r}: expected PCT[@CASE_GLOB] with 0 < PCT <= 1000")
        out.append((glob or "*", p))
    return tuple(out)


def _localise(rec, ref, cfg, build: Path):
    """Find the first divergent node of a mismatching case; the record gains details.localisation."""
    from dataclasses import replace

    from harness.pipeline.case import lowered_path
    from harness.audit.localise import localise
    from harness.pipeline.prepare import prepare

    print(f"localising {rec.case_id} ...", file=sys.stderr)
    try:
        prep = prepare(ref, rec.batch, cfg.seed, build)
        path, _ = lowered_path(prep, rec.lowering, build)
        feeds, _ = prep.load_data()
        loc = localise(path, rec.backend, feeds, build / "localise" / rec.case_id.replace("/", "_"), build)
        info = {"node": loc.node, "op": loc.op, "position": loc.position, "detail": loc.detail,
                "reproducer": loc.reproducer, "reproduces": loc.reproduces, "summary": loc.line()}
    except Exception as e:  # noqa: BLE001 — localisation is a diagnosis; its failure must not hide the verdict
        info = {"node": None, "summary": f"localisation failed: {type(e).__name__}: {e}"}
    return replace(rec, details={**rec.details, "localisation": info})


def cmd_validate(args) -> int:
    from harness.backends import BACKENDS
    from harness.measure.machine import new_run_id
    from harness.core.onnx_io import parse_shape_overrides
    from harness.core.records import fmt_metric
    from harness.pipeline.sweep import Plan, model_ref, run_plan

    overrides = parse_shape_overrides(args.shape)
    ref = model_ref(args.model, overrides)
    plan = Plan((ref,), tuple(_lowerings_arg(args.lowerings, ["native"])),
                tuple(_backends_arg(args.backends, [b for b in BACKENDS if BACKENDS[b].file_default])),
                tuple(_batches_arg(args.batches) or [1]))
    if args.json:
        json_path = Path(args.json)
        _writable_dir(json_path.parent if str(json_path.parent) else Path("."), "output directory")
    cfg = _run_config(args, timing=None)
    _rpc_check(cfg)
    run_id = "validate-" + new_run_id(Path.cwd())
    build = Path(args.build_dir)
    records = run_plan(plan, cfg, run_id, build, build / "logs" / run_id, sink=lambda r: None)
    records = [_localise(r, ref, cfg, build) if r.status == "mismatch" and not args.no_localise else r
               for r in records]
    if args.json:
        tmp = json_path.with_name(json_path.name + ".tmp")
        tmp.write_text(json.dumps([r.to_json() for r in records], indent=2) + "\n")
        tmp.replace(json_path)
    print(f"{'case':<44} {'status':<9} {'rel_l2':>9} {'max_abs':>9}  reason")
    for r in records:
        n = r.numerics or {}
        print(f"{r.case_id:<44} {r.status:<9} {fmt_metric(n.get('rel_l2')):>9} "
              f"{fmt_metric(n.get('max_abs')):>9}  {r.reason}")
        if "localisation" in r.details:
            print(f"    localised: {r.details['localisation']['summary']}")
    failed = [r for r in records if r.status in ("mismatch", "error")]
    return 1 if failed else 0


def _plan_from_args(args):
    from harness.core.config import get_suite
    from harness.core.onnx_io import parse_shape_overrides
    from harness.pipeline.sweep import Plan, model_ref

    suite = get_suite(args.suite)
    overrides = parse_shape_overrides(args.shape)
    refs = tuple(model_ref(m, overrides) for m in (_csv(args.models) or list(suite.models)))
    plan = Plan(refs, tuple(_lowerings_arg(args.lowerings, list(suite.lowerings))),
                tuple(_backends_arg(args.backends, list(suite.backends))),
                tuple(_batches_arg(args.batches) or suite.batches))
    return suite, plan, _run_config(args, timing=suite.timing)


def _plan_from_meta(meta: dict, run_dir: Path):
    """The plan and configuration a run was started with (for --resume)."""
    from harness.core.config import RunConfig, TimingConfig
    from harness.pipeline.prepare import ModelRef
    from harness.pipeline.sweep import Plan

    try:
        p, c = meta["plan"], meta["config"]
        refs = tuple(ModelRef(r["name"], r["size"], r["path"], tuple((n, tuple(sh)) for n, sh in r["shapes"]))
                     for r in p["refs"])
        plan = Plan(refs, tuple(p["lowerings"]), tuple(p["backends"]), tuple(p["batches"]))
        cfg = RunConfig(threads=c["threads"], seed=c["seed"], case_timeout_s=c["case_timeout_s"],
                        memory_cap_gib=c.get("memory_cap_gib"), timing=TimingConfig(**c["timing"]),
                        inject_slowdown=tuple((g, float(v)) for g, v in c.get("inject_slowdown", [])),
                        cuda_arch=c.get("cuda_arch"), tf32=c.get("tf32", True),
                        rpc_tracker=(c.get("rpc") or {}).get("tracker"), rpc_key=(c.get("rpc") or {}).get("key"),
                        counter=(c.get("counter") or {}).get("tool"))
    except (KeyError, TypeError) as e:
        raise ConvtxError(f"{run_dir / 'run.json'}: incomplete plan or config ({e}); cannot resume") from None
    return plan, cfg


def cmd_bench(args) -> int:
    """A run directory; with --rounds R, R complete runs of the same plan, one after another, each with fresh
    worker processes, under OUT/round-01 … (what the performance gate compares: harness/perfgate/compare.py)."""
    from harness.measure.machine import new_run_id

    if args.rounds < 1:
        raise ConvtxError(f"--rounds {args.rounds}: expected a positive integer")
    if args.require_gpu:
        from harness.measure.cuda import probe
        if not probe().runnable:
            raise ConvtxError(f"--require-gpu: no CUDA GPU to run on here ({probe().reason}); "
                              f"`make bench-cuda` is for a GPU machine")
    if args.rounds == 1:
        return _bench_once(args, None, None)
    if args.resume:
        raise ConvtxError("--resume takes one run directory; with --rounds, resume an unfinished "
                          "OUT/round-NN directory itself (or run the rounds again)")
    out = Path(args.out) if args.out else Path("reports/runs") / new_run_id(Path.cwd())
    if out.exists() and any(out.glob("round-*")):
        raise ConvtxError(f"{out}: already holds rounds; choose another --out")
    _writable_dir(out, "run directory")
    status = 0
    for i in range(1, args.rounds + 1):
        print(f"convtx bench: round {i} of {args.rounds}", file=sys.stderr)
        status = max(status, _bench_once(args, out / f"round-{i:02d}", (i, args.rounds)))
    print(out)
    return status


def _bench_once(args, out: Path | None, round_: tuple[int, int] | None) -> int:
    from harness.measure.machine import cpu_info, git_commit, new_run_id, utc_now, versions
    from harness.report import write_report
    from harness.core.records import ResultsWriter, write_json_atomic
    from harness.core.rundir import RunDir
    from harness.pipeline.sweep import run_plan

    repo = Path.cwd()
    if args.resume:
        clash = [f for f in ("models", "backends", "lowerings", "batches", "shape", "out", "threads",
                             "inject_slowdown", "cuda_arch", "no_tf32", "rpc_tracker", "rpc_key") if getattr(args, f)]
        if clash or args.suite != "default":
            raise ConvtxError(f"--resume takes the plan from {args.resume}/run.json; drop "
                              f"{', '.join('--' + f.replace('_', '-') for f in clash or ['suite'])}")
        rd = RunDir(Path(args.resume))
        meta = rd.read_meta()
        rd.lock()
        plan, cfg = _plan_from_meta(meta, rd.path)
        _rpc_check(cfg)
        done_records = rd.repair_and_read()
        meta["resumed"] = meta.get("resumed", 0) + 1
    else:
        suite, plan, cfg = _plan_from_args(args)
        rpc = _rpc_check(cfg)                     # before anything is written: no tracker is a one-line error
        counter = _counter_check(cfg, Path(args.build_dir))
        run_id = new_run_id(repo)
        if round_:
            run_id = f"{run_id}-r{round_[0]:02d}"
        out = out or (Path(args.out) if args.out else Path("reports/runs") / run_id)
        rd = RunDir(out)
        if rd.results_path.exists():
            raise ConvtxError(f"{rd.path}: already holds a run (results.jsonl); choose another --out, or "
                              f"--resume {rd.path}")
        _writable_dir(rd.path, "run directory")
        rd.lock()
        done_records = []
        meta = {"schema": 1, "run_id": run_id, "suite": suite.name, "date": utc_now(), "machine": cpu_info(),
                "versions": versions(), **git_commit(repo), "n_cases": plan.n_cases(),
                "plan": {"models": [r.label for r in plan.refs], "refs": [asdict(r) for r in plan.refs],
                         "lowerings": list(plan.lowerings), "backends": list(plan.backends),
                         "batches": list(plan.batches)},
                "config": {"threads": cfg.threads, "seed": cfg.seed, "case_timeout_s": cfg.case_timeout_s,
                           "memory_cap_gib": cfg.memory_cap_gib, "timing": asdict(cfg.timing),
                           "inject_slowdown": [list(x) for x in cfg.inject_slowdown],
                           "cuda_arch": cfg.cuda_arch, "tf32": cfg.tf32, "rpc": rpc, "counter": counter}}
        if round_:
            meta["round"] = {"index": round_[0], "of": round_[1]}
    build = _writable_dir(Path(args.build_dir), "build directory")
    done = frozenset(r.case_id for r in done_records)
    meta.update(status="running")
    write_json_atomic(rd.meta_path, meta)      # resumable from here on, calibration included
    if "calibration" not in meta and (args.no_calibrate or cfg.counter):
        # counts need no fp32 peak or bandwidth: the roofline is a timing view
        meta["calibration"] = {"error": "not measured (--no-calibrate)", "threads": cfg.threads}
    if "calibration" not in meta:
        from harness.measure.calibrate import calibrate
        print(f"convtx bench: measuring this machine's fp32 peak and memory bandwidth ({cfg.threads} threads)",
              file=sys.stderr)
        meta["calibration"] = cal = calibrate(cfg.threads)
        print("convtx bench: " + (f"fp32 peak {cal['fp32_peak_gflops']:.1f} GFLOP/s, memory "
                                  f"{cal['mem_bandwidth_gbs']:.1f} GB/s" if "error" not in cal
                                  else f"calibration failed: {cal['error']}"), file=sys.stderr)
    meta.update(status="running")
    write_json_atomic(rd.meta_path, meta)
    t0 = time.monotonic()
    print(f"convtx bench: suite {meta['suite']}, {plan.n_cases()} cases ({len(done)} already recorded), "
          f"{cfg.threads} threads -> {rd.path}", file=sys.stderr)
    if cfg.inject_slowdown:
        print(f"convtx bench: TEST-ONLY injected slowdown {cfg.inject_slowdown} (recorded in each record)",
              file=sys.stderr)
    with ResultsWriter(rd.results_path) as w:
        records = run_plan(plan, cfg, meta["run_id"], build, rd.path / "logs", sink=w.append, done=done)
    meta.update(status="complete", wall_s=round(meta.get("wall_s", 0) + time.monotonic() - t0, 1),
                finished=utc_now())
    write_json_atomic(rd.meta_path, meta)
    if args.require_gpu:
        off = [r for r in records if r.backend.endswith("-cuda") and r.status != "error"
               and "device_check" not in (r.details or {})]
        if off:
            rd.unlock()
            print(f"convtx bench: refusing to report timings: {len(off)} CUDA case(s) did not run on the GPU "
                  f"(first: {off[0].case_id}: {off[0].status} {off[0].reason}); results kept in {rd.path}",
                  file=sys.stderr)
            return 1
    report = None if args.no_report else write_report(rd.path)
    rd.unlock()
    bad = sum(1 for r in records if r.status in ("mismatch", "error"))
    print(f"convtx bench: {len(records)} cases in {time.monotonic() - t0:.0f} s "
          f"({bad} mismatching or failed)" + (f"; report: {report}" if report else f" -> {rd.path}"),
          file=sys.stderr)
    if round_ is None:
        print(report or rd.path)
    return 0


def _prepare_isolated(ref, batch: int, seed: int, build: Path):
    """Export + inputs + reference in a worker process (keeps torch out of a process that loads TVM)."""
    from harness.pipeline.prepare import Prepared
    from harness.pipeline.worker import WorkerClient, WorkerDied

    w = WorkerClient("prepare", {}, build / "logs" / "worker-prepare.log")
    try:
        ans = w.request({"op": "prepare", "ref": asdict(ref), "batch": batch, "seed": seed,
                         "build_dir": str(build)}, 900.0)
    except WorkerDied as e:
        raise ConvtxError(f"{ref.label}: preparing the model failed: {e}") from None
    finally:
        w.close()
    if not ans.get("ok"):
        raise ConvtxError(f"{ref.label}: preparing the model failed: {ans['error']}")
    return Prepared.from_json(ans["prepared"])


def cmd_tune(args) -> int:
    from harness.pipeline.case import lowered_path
    from harness.core.config import get_suite
    from harness.pipeline.sweep import model_ref

    if args.trials < 1:
        raise ConvtxError(f"--trials {args.trials}: expected a positive number of trials")
    threads = args.threads or _usable_cpus()
    target = None
    if args.target:
        try:
            target = json.loads(args.target)
        except json.JSONDecodeError as e:
            raise ConvtxError(f"--target {args.target!r}: not a JSON target dict ({e.msg}); e.g. "
                              f'\'{{"kind": "llvm", "mcpu": "znver4", "num-cores": 2}}\'') from None
        if not isinstance(target, dict) or target.get("kind") != "llvm":
            raise ConvtxError(f"--target {args.target!r}: expected a dict with \"kind\": \"llvm\"")
    models = [m for a in args.models for m in _csv(a)] or list(get_suite(args.suite).models)
    lowerings = _lowerings_arg(args.lowerings, ["native"])
    build = _writable_dir(Path(args.build_dir), "build directory")
    budget = args.budget_minutes * 60 if args.budget_minutes else None
    t_all = time.monotonic()
    results, failed = [], []
    for m in models:
        ref = model_ref(m, {})
        prep = _prepare_isolated(ref, 1, args.seed, build)
        for lw in lowerings:
            if lw == "gemm_col2im":
                print(f"[tune] {ref.label} / {lw}: skipped (TVM has no Col2Im)", file=sys.stderr)
                continue
            if budget is not None and time.monotonic() - t_all >= budget:
                print(f"[tune] {ref.label} / {lw}: skipped, the budget is spent", file=sys.stderr)
                continue
            path, _ = lowered_path(prep, lw, build)
            try:
                res = _tune_in_child(ref.label, lw, path, prep, target, args.trials,
                                     None if budget is None else budget - (time.monotonic() - t_all), threads,
                                     build)
            except ConvtxError as e:       # one workload TVM cannot take must not stop the others
                failed.append(f"{ref.label}/{lw}: {e}")
                print(f"[tune] {ref.label} / {lw}: FAILED — {e}", file=sys.stderr)
                continue
            results.append(res)
            print(f"[tune] {ref.label} / {lw}: {res['before']['tasks_tuned']}/{res['before']['tasks']} -> "
                  f"{res['after']['tasks_tuned']}/{res['after']['tasks']} tasks in the database "
                  f"({res['after']['state']}), {res['seconds']:.0f} s"
                  f"{', stopped by the budget' if res['stopped_by_budget'] else ''}", file=sys.stderr)
    print(f"[tune] {len(results)} workloads in {time.monotonic() - t_all:.0f} s; database: "
          f"{results[0]['db'] if results else '-'}" + (f"; {len(failed)} failed:" if failed else ""),
          file=sys.stderr)
    for f in failed:
        print(f"[tune]   {f}", file=sys.stderr)
    return 1 if failed else 0


def _tune_in_child(label, lowering, path, prep, target, trials, budget_s, threads, build) -> dict:
    """Task timing and tuning import TVM: done in a fresh interpreter, which reports a JSON result."""
    spec = {"label": label, "lowering": lowering, "onnx": path, "shapes": {k: list(v) for k, v in
                                                                           prep.input_shapes.items()},
            "dtypes": prep.input_dtypes, "target": target, "trials": trials, "budget_s": budget_s,
            "threads": threads, "work_root": str(build / "tuning")}
    env = {**os.environ, "TVM_NUM_THREADS": str(threads)}
    p = subprocess.run([sys.executable, "-m", "harness.backends.tvm.tuning", "drive", json.dumps(spec)], env=env,
                       stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise ConvtxError(f"tuning failed (exit {p.returncode}; see the lines above)")
    return json.loads(p.stdout.strip().splitlines()[-1])


def cmd_optimize(args) -> int:
    import shutil

    from harness.core.config import RunConfig, get_suite
    from harness.pipeline.optimize import optimize
    from harness.backends import get_backend
    from harness.pipeline.sweep import model_ref

    get_backend(args.backend)
    out = Path(args.output)
    if out.suffix != ".onnx":
        raise ConvtxError(f"-o {out}: expected a path ending in .onnx")
    _writable_dir(out.parent if str(out.parent) else Path("."), "output directory")
    from harness.core.onnx_io import parse_shape_overrides
    ref = model_ref(args.model, parse_shape_overrides(args.shape))
    lowerings = _lowerings_arg(args.lowerings, list(get_suite("default").lowerings))
    threads = args.threads or _usable_cpus()
    cfg = RunConfig(threads=threads, timing=get_suite("quick").timing, seed=args.seed)
    build = _writable_dir(Path(args.build_dir), "build directory")
    prep = _prepare_isolated(ref, 1, args.seed, build)
    path, side = optimize(ref, args.backend, cfg, build, lowerings, prep,
                          say=lambda m: print(m, file=sys.stderr, flush=True))
    tmp = out.with_name(out.name + ".tmp")
    shutil.copyfile(path, tmp)
    tmp.replace(out)
    side_path = out.with_suffix(".json")
    side_path.write_text(json.dumps(side, indent=2))
    print(f"{out}: {side['final']} — {side['baseline_ms']:.3f} ms -> {side['final_ms']:.3f} ms "
          f"({side['speedup']:.2f}x) on {args.backend}; {side['decision']}")
    for n in side["nodes"]:
        print(f"  {n['node']}: {n['why']}")
    print(f"  sidecar: {side_path}")
    return 0


def cmd_lower(args) -> int:
    import onnx

    from harness.lowerings import get_lowering
    from harness.core.onnx_io import load_model

    lowering = get_lowering(args.lowering)
    model = load_model(args.model)
    out = Path(args.output)
    _writable_dir(out.parent if str(out.parent) else Path("."), "output directory")
    try:
        result = lowering.apply(model)
        onnx.checker.check_model(result.model)
    except Exception as e:  # a lowering bug must not pass as a usable model
        print(f"convtx: lowering {lowering.name} failed on {args.model}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    tmp = out.with_name(out.name + ".tmp")
    onnx.save_model(result.model, str(tmp))
    tmp.replace(out)
    s = result.summary()
    print(f"{out}: {lowering.name}: {s['lowered']} of {s['convtranspose_nodes']} ConvTranspose nodes lowered"
          + ("" if s["convtranspose_nodes"] else " (the model has no ConvTranspose: unchanged)"))
    for d in s["declined"]:
        print(f"  declined {d['node']}: {d['reason']} (left native)")
    return 0


def cmd_conformance(args) -> int:
    from harness.audit import conformance
    from harness.backends import BACKENDS
    from harness.lowerings import LOWERINGS

    file_backends = [b for b in BACKENDS if not BACKENDS[b].zoo_only and BACKENDS[b].file_default]
    backends = _backends_arg(args.backends, file_backends)
    lowerings = _lowerings_arg(args.lowerings, list(LOWERINGS))
    out = _writable_dir(Path(args.out), "output directory")
    if args.json:
        _writable_dir(Path(args.json).parent if str(Path(args.json).parent) else Path("."), "output directory")
    build = _writable_dir(Path(args.build_dir), "build directory")
    outcomes = conformance.run(backends, out, build, tuple(lowerings), threads=args.threads or 1)
    summary = conformance.summarise(outcomes, ratchet=set(lowerings) == set(LOWERINGS))
    conformance.write(summary, Path(args.json) if args.json else None, out / "conformance.md")
    print(conformance.render(summary))
    return 0 if summary["ok"] else 1


def cmd_fuzz(args) -> int:
    from harness.backends import BACKENDS
    from harness.audit.fuzz import render, run_fuzz

    backends = _backends_arg(args.backends, [b for b in BACKENDS
                                             if not BACKENDS[b].zoo_only and BACKENDS[b].file_default])
    zoo_only = [b for b in backends if BACKENDS[b].zoo_only]
    if zoo_only:
        raise ConvtxError(f"--backends {','.join(zoo_only)}: runs zoo models only; fuzz needs ONNX backends")
    unavailable = [f"{b} ({BACKENDS[b].availability().reason})" for b in backends if not BACKENDS[b].availability()]
    if unavailable:
        raise ConvtxError(f"--backends: unavailable here: {'; '.join(unavailable)}")
    lowerings = _lowerings_arg(args.lowerings, ["native", "explicit_pads"])
    if args.cases < 1:
        raise ConvtxError(f"--cases {args.cases}: expected a positive integer")
    out = _writable_dir(Path(args.out), "output directory")
    summary = run_fuzz(args.cases, args.seed, backends, lowerings, out, _writable_dir(Path(args.build_dir),
                       "build directory"), args.shrink_budget)
    print(render(summary))
    return 1 if summary["unexplained"] else 0


BUILDABLE = ("tvm-cuda", "tvm-llvm")


def cmd_build(args) -> int:
    """Compile only (e.g. CUDA on a machine without a GPU) and keep the artefacts: per case the exported
    library, the generated kernel source and, where nvcc is found, the kernels compiled to a cubin for the
    target architecture (proof that the source compiles; ptxas' register and spill report kept)."""
    import shutil

    from harness.backends import BACKENDS
    from harness.measure.cuda import nvcc_path
    from harness.measure.machine import new_run_id
    from harness.core.onnx_io import parse_shape_overrides
    from harness.core.records import write_json_atomic
    from harness.pipeline.sweep import Plan, model_ref, run_plan

    backends = _backends_arg(args.backends, ["tvm-cuda"])
    other = [b for b in backends if b not in BUILDABLE]
    if other:
        raise ConvtxError(f"--backends {','.join(other)}: `build` compiles ahead of time for "
                          f"{', '.join(BUILDABLE)} (the other engines compile when a session is created)")
    overrides = parse_shape_overrides(args.shape)
    refs = tuple(model_ref(m, overrides) for m in args.models)
    plan = Plan(refs, tuple(_lowerings_arg(args.lowerings, ["native"])), tuple(backends),
                tuple(_batches_arg(args.batches) or [1]))
    cfg = _run_config(args, timing=None)
    out = _writable_dir(Path(args.out), "output directory")
    build = Path(args.build_dir)
    run_id = "build-" + new_run_id(Path.cwd())
    records = run_plan(plan, cfg, run_id, build, out / "logs", sink=lambda r: None)
    nvcc = nvcc_path()
    cases, failed = [], 0
    for r in records:
        d = r.details or {}
        entry = {"case_id": r.case_id, "status": r.status, "reason": r.reason, "compile_s": r.compile_s,
                 "target": d.get("target"), "arch_from": d.get("arch_from"), "kernels": d.get("kernels")}
        if r.status == "ok" and d.get("library"):
            slug = out / r.case_id.replace("/", "_").replace("@", "-")
            slug.mkdir(parents=True, exist_ok=True)
            shutil.copy2(d["library"], slug / "model.so")
            entry["library"] = str(slug / "model.so")
            if d.get("cuda_source"):
                shutil.copy2(d["cuda_source"], slug / "kernels.cu")
                entry["cuda_source"] = str(slug / "kernels.cu")
                entry["nvcc"] = _nvcc_cubin(nvcc, slug / "kernels.cu", d["target"]["arch"])
                if entry["nvcc"]["status"] == "failed":
                    from harness.checking.known import match_cuda_build
                    known = match_cuda_build(r.case_id, entry["nvcc"].get("error", ""))
                    if known:
                        entry["nvcc"]["known"] = {"id": known[0], "why": known[1], "reproducer": known[2]}
                    else:
                        failed += 1
        failed += r.status in ("error", "mismatch")
        cases.append(entry)
    write_json_atomic(out / "build.json", {"run_id": run_id, "nvcc": nvcc, "cases": cases})
    print(f"{'case':<44} {'status':<8} {'kernels':>7} {'compile s':>9}  nvcc / reason")
    for c in cases:
        nv = c.get("nvcc") or {}
        tail = (f"{nv['status']}" + (f" ({nv['seconds']:.1f} s, {nv.get('registers_max', '?')} registers max, "
                                     f"{nv.get('spills', 0)} spill stores)" if nv.get("status") == "ok" else
                                     f": {nv.get('error', '')}") if nv else c["reason"])
        if nv.get("known"):
            tail = f"known ({nv['known']['id']}, {nv['known']['reproducer']}): {tail}"
        cs = f"{c['compile_s']:.1f}" if c["compile_s"] is not None else "—"
        print(f"{c['case_id']:<44} {c['status']:<8} {c['kernels'] if c['kernels'] is not None else '—':>7} "
              f"{cs:>9}  {tail}")
    known = sum(1 for c in cases if (c.get("nvcc") or {}).get("known"))
    print(f"artefacts and build.json in {out}" + (f"; {known} known nvcc failure(s) (harness/checking/known.py "
                                                  f"CUDA_BUILD_LEDGER), {failed} unexplained" if known else ""))
    return 1 if failed else 0


def _nvcc_cubin(nvcc: str | None, src: Path, arch: str) -> dict:
    """Compile TVM's generated CUDA C to a cubin for `arch` with nvcc (no GPU needed)."""
    if nvcc is None:
        return {"status": "not run", "error": "nvcc not found (the kernel source is kept)"}
    cmd = [nvcc, "--cubin", f"-arch={arch}", "-O3", "-Xptxas", "-v", "-o", str(src.with_suffix(".cubin")), str(src)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": "nvcc timed out after 600 s", "command": " ".join(cmd)}
    info = {"command": " ".join(cmd), "seconds": round(time.monotonic() - t0, 2)}
    (src.with_name("ptxas.log")).write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        err = [ln for ln in (p.stderr or p.stdout).splitlines() if "error" in ln.lower()] or \
            (p.stderr or p.stdout).splitlines()[-1:]
        return {**info, "status": "failed", "error": (err[0] if err else f"exit {p.returncode}")[:300]}
    regs = [int(m) for m in re.findall(r"Used (\d+) registers", p.stdout + p.stderr)]
    spills = sum(int(m) for m in re.findall(r"(\d+) bytes spill stores", p.stdout + p.stderr))
    return {**info, "status": "ok", "cubin": str(src.with_suffix(".cubin")), "registers_max": max(regs, default=0),
            "spills": spills}


def cmd_compare(args) -> int:
    from dataclasses import replace

    from harness.perfgate.compare import (DEFAULT_THRESHOLD_PCT, Thresholds, compare, load_confirm, load_side,
                                 load_thresholds, pick_baseline, render_markdown)

    if args.threshold is not None and not 0 < args.threshold < 1000:
        raise ConvtxError(f"--threshold {args.threshold}: expected a percentage in (0, 1000)")
    cur = load_side(args.current)
    base, picked = pick_baseline(args.baseline, cur)
    per_case = args.per_case
    if per_case is None and (base.path / "thresholds.json").is_file():
        per_case = base.path / "thresholds.json"        # a baseline's own thresholds travel with it
    thresholds = load_thresholds(per_case, DEFAULT_THRESHOLD_PCT)
    if args.threshold is not None:          # the command line's default beats the file's; its globs still apply
        thresholds = replace(thresholds, default_pct=args.threshold)
        if thresholds.ratio is not None:
            thresholds = replace(thresholds, ratio=replace(thresholds.ratio, default_pct=args.threshold))
        thresholds = replace(thresholds, counts=replace(thresholds.counts, default_pct=args.threshold)
                             if thresholds.counts is not None else Thresholds(args.threshold, ()))
    comp = compare(base, cur, thresholds, args.mode, confirm=load_confirm(args.confirm) if args.confirm else None)
    if args.confirm:
        comp.context.append(f"confirmation run: a regression counts only if {args.confirm} (the first set of "
                            f"rounds) found it too")
    if picked:
        comp.context.insert(0, picked)
    text = render_markdown(comp)
    for path, content in ((args.summary, text + "\n"), (args.json, json.dumps(comp.to_json(), indent=1) + "\n")):
        if path:
            out = Path(path)
            _writable_dir(out.parent if str(out.parent) else Path("."), "output directory")
            out.write_text(content)
    print(text)
    return 1 if comp.failed else 0


def cmd_report(args) -> int:
    from harness.report import write_report

    print(write_report(Path(args.run_dir)))
    return 0


# ----------------------------------------------------------------------------------------------- parsing

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convtx", description="Which compiler and which lowering of "
                                "ConvTranspose is correct and fastest on this machine.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common_run(sp):
        sp.add_argument("--backends", help="comma-separated backend ids, or 'all'")
        sp.add_argument("--lowerings", help="comma-separated lowering names, or 'all'")
        sp.add_argument("--batches", help="comma-separated batch sizes (zoo models)")
        sp.add_argument("--shape", action="append", metavar="NAME=D1xD2x…",
                        help="concrete shape for an ONNX file's input (repeatable)")
        sp.add_argument("--threads", type=int, default=None, help="threads per engine (default: usable CPUs)")
        sp.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default 0)")
        sp.add_argument("--case-timeout", type=float, default=900.0, help="seconds per case (default 900)")
        sp.add_argument("--memory-cap", type=float, default=None, metavar="GIB",
                        help="kill a worker whose resident memory exceeds this (default: 75%% of RAM)")
        sp.add_argument("--cuda-arch", metavar="sm_XX", help="CUDA architecture to build for (default: device 0's, "
                        "else sm_80)")
        sp.add_argument("--no-tf32", action="store_true", help="ort-cuda: disable TF32 (then judged as float32)")
        sp.add_argument("--rpc-tracker", metavar="HOST:PORT",
                        help="run TVM cases on remote devices handed out by this TVM RPC tracker (docs/rpc.md)")
        sp.add_argument("--rpc-key", metavar="KEY", help="the device key the RPC servers registered under")
        sp.add_argument("--build-dir", default="build", help="content-addressed cache (default build/)")

    sp = sub.add_parser("list", help="models, lowerings, backends (available? why not?)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_list)

    sp = sub.add_parser("export", help="export zoo models to ONNX")
    sp.add_argument("models", nargs="*", metavar="MODEL", help="zoo name or name@size (default: all)")
    sp.add_argument("--out", default="build/export")
    sp.add_argument("--batches")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--build-dir", default="build")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("validate", help="check one model on every backend against the float64 reference")
    sp.add_argument("model", metavar="MODEL", help="zoo name (name@size) or path to an .onnx file")
    sp.add_argument("--json", metavar="FILE", help="write the records as a JSON array")
    sp.add_argument("--no-localise", action="store_true",
                    help="do not search for the first divergent node of a mismatching case")
    common_run(sp)
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("build", help="compile only and keep the artefacts (CUDA on a machine without a GPU)")
    sp.add_argument("models", nargs="+", metavar="MODEL", help="zoo names (name@size) or .onnx paths")
    sp.add_argument("--out", default="build/artifacts", metavar="DIR",
                    help="where libraries, kernel sources, cubins and build.json go (default build/artifacts)")
    common_run(sp)
    sp.set_defaults(func=cmd_build, compile_only=True)

    sp = sub.add_parser("compare", help="the performance-regression gate: exit 1 when CURRENT regressed against "
                        "BASELINE (slower beyond the threshold and significantly, or numerically broken)")
    sp.add_argument("baseline", metavar="BASELINE_RUN", help="run directory, a directory of round-* runs, or a "
                    "directory of per-machine baselines (<machine-slug>/round-*; the current machine's is taken)")
    sp.add_argument("current", metavar="CURRENT_RUN", help="run directory, or a directory of round-* runs")
    sp.add_argument("--threshold", type=float, default=None, metavar="PCT",
                    help="slowdown (percent) a case must exceed to regress (default: the per-case file's "
                         "default_pct, else 10; for counts, its 'counts' section's, else 5)")
    sp.add_argument("--per-case", metavar="FILE",
                    help='JSON {"default_pct": PCT, "cases": {"<case-id glob>": PCT}, "ratio": {…}}: per-case '
                         'thresholds (default: the baseline\'s thresholds.json, when it has one)')
    sp.add_argument("--mode", choices=("auto", "absolute", "ratio", "counts"), default="auto",
                    help="compare latencies (absolute) or latencies over the interleaved reference kernel (ratio); "
                         "auto: absolute on the same kind of machine, ratio otherwise; count runs (bench --counts) "
                         "are always compared as counts")
    sp.add_argument("--confirm", metavar="COMPARE_JSON",
                    help="the --json of an earlier comparison with an independent set of rounds: a regression "
                         "fails the gate only if that one found it too (make perf-check's confirmation run)")
    sp.add_argument("--summary", metavar="FILE", help="also write the Markdown summary here (a PR comment)")
    sp.add_argument("--json", metavar="FILE", help="also write every case's numbers and verdict as JSON")
    sp.set_defaults(func=cmd_compare)

    sp = sub.add_parser("bench", help="run a suite: validate and time every case, write a run directory")
    sp.add_argument("--suite", default="default", help="quick | default | full | layers")
    sp.add_argument("--models", help="comma-separated zoo refs (name@size) or .onnx paths")
    sp.add_argument("--out", metavar="RUN_DIR", help="run directory (default reports/runs/<run-id>)")
    sp.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run: only cases with no record")
    sp.add_argument("--no-calibrate", action="store_true",
                    help="skip measuring the machine's fp32 peak and bandwidth (reports then give no %% of peak)")
    sp.add_argument("--no-report", action="store_true", help="write results only (no report.md/html, plots)")
    sp.add_argument("--require-gpu", action="store_true",
                    help="refuse to run without a CUDA GPU, and to report timings unless every CUDA case ran on it")
    sp.add_argument("--rounds", type=int, default=1, metavar="R",
                    help="R complete runs, each with fresh worker processes, in OUT/round-01 … (default 1); "
                         "what `convtx compare` and `make perf-check` use")
    sp.add_argument("--inject-slowdown", action="append", metavar="PCT[@CASE_GLOB]",
                    help="TEST ONLY, to measure the performance gate's power: matching cases busy-wait PCT%% of "
                         "their own duration in every timed call (with --counts: a fixed loop adding PCT%% of "
                         "the case's estimated cycles; recorded in each record)")
    sp.add_argument("--counts", action="store_true",
                    help="count each CPU case's calls with valgrind's callgrind (estimated cycles, instructions) "
                         "instead of timing them: the same on a busy machine; what `make perf-check` gates on "
                         "(docs/perf-gate.md)")
    common_run(sp)
    sp.set_defaults(func=cmd_bench)

    sp = sub.add_parser("tune", help="MetaSchedule-tune models for TVM into the committed database (tuning/)")
    sp.add_argument("models", nargs="*", help="zoo refs (name@size) or .onnx paths (default: the suite's)")
    sp.add_argument("--suite", default="default", help="whose models to tune when none are named")
    sp.add_argument("--lowerings", help="comma-separated lowerings to tune (default native)")
    sp.add_argument("--target", help='TVM target as JSON (default: this host, e.g. {"kind": "llvm", "mcpu": '
                                     '"znver4", "num-cores": 2})')
    sp.add_argument("--trials", type=int, default=200, help="MetaSchedule trials per workload (default 200)")
    sp.add_argument("--budget-minutes", type=float, default=None, help="wall-clock budget for everything")
    sp.add_argument("--threads", type=int, default=None, help="threads (default: usable CPUs)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--build-dir", default="build")
    sp.set_defaults(func=cmd_tune)

    sp = sub.add_parser("optimize", help="per ConvTranspose node, the fastest lowering that passes on a backend")
    sp.add_argument("model", help="zoo ref (name@size) or .onnx path")
    sp.add_argument("--backend", required=True, help="backend id, e.g. tvm-llvm or ort-cpu")
    sp.add_argument("-o", "--output", required=True, help="the optimised model (.onnx); OUT.json explains it")
    sp.add_argument("--lowerings", help="candidates (default: all)")
    sp.add_argument("--shape", action="append", metavar="NAME=D1xD2x…")
    sp.add_argument("--threads", type=int, default=None)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--build-dir", default="build")
    sp.set_defaults(func=cmd_optimize)

    sp = sub.add_parser("lower", help="rewrite every ConvTranspose of an ONNX file with one lowering")
    sp.add_argument("model", metavar="MODEL.onnx")
    sp.add_argument("--lowering", required=True, help="lowering name (see `convtx list`)")
    sp.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    sp.set_defaults(func=cmd_lower)

    sp = sub.add_parser("conformance", help="ONNX node tests of ConvTranspose and upsampling ops, every engine")
    sp.add_argument("--backends", help="comma-separated backend ids, or 'all' (default: every ONNX backend)")
    sp.add_argument("--lowerings", help="lowerings for the ConvTranspose tests (default: all)")
    sp.add_argument("--json", metavar="FILE", help="write the summary and every outcome as JSON")
    sp.add_argument("--out", default="build/conformance", help="test models, logs, conformance.md")
    sp.add_argument("--threads", type=int, default=None)
    sp.add_argument("--build-dir", default="build")
    sp.set_defaults(func=cmd_conformance)

    sp = sub.add_parser("fuzz", help="random ConvTranspose models vs the spec: divergence classes + reproducers")
    sp.add_argument("--cases", type=int, default=2000, help="engine cases: models x backends x lowerings")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--backends", help="comma-separated ONNX backend ids (default: all of them)")
    sp.add_argument("--lowerings", help="comma-separated lowerings (default: native,explicit_pads)")
    sp.add_argument("--out", default="build/fuzz", help="summary.json, summary.md, reproducers")
    sp.add_argument("--shrink-budget", type=int, default=40, help="engine runs to shrink each new class")
    sp.add_argument("--build-dir", default="build")
    sp.set_defaults(func=cmd_fuzz)

    sp = sub.add_parser("report", help="(re)generate report.md from a run directory")
    sp.add_argument("run_dir", metavar="RUN_DIR")
    sp.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConvtxError as e:
        print(f"convtx: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convtx: interrupted", file=sys.stderr)
        return 130
