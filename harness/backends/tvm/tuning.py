"""TVM MetaSchedule tuning with a database committed to the repository.

Layout: `tuning/tvm-<version>/<kind>-<mcpu>-<cores>c/` holds MetaSchedule's own JSON database
(`database_workload.json`, `database_tuning_record.json`) and `index.json` (which model × lowering was tuned,
the tasks, their measured weight, trials and seconds spent). The directory is the key for the TVM version
and the target; inside it MetaSchedule keys every record by the structural hash of the task's TIR, so a
record is only ever applied to the same workload on the same target with the same TVM.

Tuning time goes where the latency is: each task (a fused TIR function) of the untuned model is built and
timed alone, its share of the model's latency (time per call × calls) is recorded, tasks under `MIN_SHARE`
are left out, and MetaSchedule's gradient scheduler, whose objective is Σ calls × measured latency over the
tuned tasks, spends the trials on whichever task currently costs the model most.

Tuning runs in a child process (`python -m harness.backends.tvm worker SPEC.json`): a budget is a wall-clock
limit on it, and because MetaSchedule appends each measured record to the JSON files at once, killing it
loses at most the batch in flight — `convtx tune` again resumes from the records already there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.backends.base import ModelArtifact, UnsupportedModel
from harness.backends.tvm.common import (
    ROOT,
    TvmBackend,
    cache_path,
    db_dir,
    engine_info,
    export_cached,
    host_target,
    relax_module,
    target_slug,
)
from harness.core import cache, safefs
from harness.core.config import RunConfig
from harness.core.errors import ConvtxError

MIN_SHARE = 0.01  # tasks below 1% of the untuned latency are not tuned
TRIALS_PER_ITER = 16  # small rounds: a workload's trials reach more of its tasks


def databases(root: Path | None = None) -> list[dict]:
    """The committed databases (no TVM import): per `tvm-<version>/<target slug>/`, how many records, and from
    its coverage.json (harness/pipeline/coverage.py) the candidates' worst untuned share and the tuning time."""
    out = []
    for d in sorted(Path(root or ROOT).glob("tvm-*/*/")):
        rec = d / "database_tuning_record.json"
        if not rec.exists():
            continue
        entry = {
            "tvm": d.parent.name.removeprefix("tvm-"),
            "target": d.name,
            "records": sum(1 for line in rec.read_text().splitlines() if line.strip()),
        }
        try:
            cov = json.loads((d / "coverage.json").read_text())
            cands = [w for w in cov.get("workloads", []) if w.get("candidate")]
            entry["workloads"] = len(cands)
            entry["worst_untuned_share"] = max((w["untuned_share"] for w in cands), default=None)
            entry["tuning_seconds_total"] = cov.get("tuning_seconds_total")
        except (OSError, ValueError, KeyError):
            pass
        out.append(entry)
    return out


def open_db(d: Path):
    from tvm.s_tir import meta_schedule as ms

    d.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(
        str(d / "database_workload.json"), str(d / "database_tuning_record.json"), allow_missing=True
    )


_OPEN: dict[tuple, object] = {}  # one JSONDatabase per process and database state (open_db_cached)


def _db_state(d: Path) -> tuple:
    files = (d / "database_workload.json", d / "database_tuning_record.json")
    return (str(d), *((f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.exists()))


def open_db_cached(d: Path):
    """`open_db`, once per process while the files are unchanged: parsing the database takes 4.4 s here (every
    workload's IRModule is deserialised), which a worker serving many tuned cases paid for each of them."""
    key = _db_state(d)
    if key not in _OPEN:
        _OPEN.clear()
        _OPEN[key] = open_db(d)
    return _OPEN[key]


@functools.lru_cache(maxsize=4)
def _record_hashes(state: tuple) -> frozenset[str]:
    """The structural hashes of the workloads that have at least one tuning record, read from the JSON lines
    (no IRModule deserialised): each workload line starts with its hash, each record line with its workload's
    index."""
    d = Path(state[0])
    workloads = [json.loads(ln)[0] for ln in (d / "database_workload.json").read_text().splitlines() if ln.strip()]
    used = {json.loads(ln)[0] for ln in (d / "database_tuning_record.json").read_text().splitlines() if ln.strip()}
    return frozenset(str(workloads[i]) for i in used if 0 <= i < len(workloads))


def task_hashes(mod, target: dict) -> dict[str, str]:
    """task name -> the structural hash MetaSchedule keys the task's workload by (the hash of the module the
    task dispatches, as the database stores it)."""
    import tvm_ffi

    return {t.task_name: str(tvm_ffi.structural_hash(t.dispatched[0])) for t in extract(mod, target)}


def state_by_hashes(mod, target: dict, d: Path) -> dict:
    """`tuning_state` without opening the database: a task is tuned when its workload's hash has a record. The
    same answer (a record is found by the workload's structural hash, then its structure compared; structurally
    equal modules hash alike, and the database's workloads are distinct), in about a second instead of the 4.4 s
    that parsing the database takes."""
    hashes = task_hashes(mod, target)
    with_record = _record_hashes(_db_state(d))
    by_hash: dict[str, str] = {}
    for name, h in hashes.items():  # one task per distinct workload, as extraction makes them
        by_hash.setdefault(h, name)
    hit = [name for h, name in by_hash.items() if h in with_record]
    n = len(by_hash)
    state = "tuned" if n and len(hit) == n else ("partly tuned" if hit else "untuned")
    return {
        "state": state,
        "tasks": n,
        "tasks_tuned": len(hit),
        "untuned_tasks": sorted(set(by_hash.values()) - set(hit))[:20],
    }


def _zero(mod, target: dict):
    """Legalised and fused: the same passes `compile_relax` runs before applying the database, so keys match."""
    import tvm
    from tvm import relax

    with tvm.target.Target(target):
        return relax.get_pipeline("zero")(mod)


def extract(mod, target: dict):
    """MetaSchedule tasks: the fused TIR functions after legalisation and fusion."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    return ms.relax_integration.extract_tasks(_zero(mod, target), tvm.target.Target(target))


def extract_with_kernels(mod, target: dict) -> tuple[list, dict]:
    """(tasks, task name -> the task's kernel as tvm-llvm decides it: its constant parameters marked
    layout-free, harness/backends/tvm/defaults.py, so a weight the default schedule packs is packed at build
    time here too), from one run of the passes."""
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from harness.backends.tvm import defaults

    fused = _zero(mod, target)
    tasks = ms.relax_integration.extract_tasks(fused, tvm.target.Target(target))
    free = defaults.layout_free(fused)
    kernels = {t.task_name: defaults.with_layout_free(t.dispatched[0]["main"], free.get(t.task_name)) for t in tasks}
    return tasks, kernels


@dataclass(frozen=True)
class TaskInfo:
    name: str
    calls: int
    ms_per_call: float | None  # untuned, measured alone
    share: float | None  # of the sum over tasks
    tuned: bool  # the database has a valid record for it


def _time_task(task, target: dict, repeat_ms: int = 100) -> float:
    """Build the task's TIR alone (untuned) and time one call on random inputs, in ms."""
    import numpy as np
    import tvm
    from tvm.s_tir import meta_schedule as ms

    mod = task.dispatched[0]
    lib = tvm.compile(mod, target=tvm.target.Target(target))
    dev = tvm.cpu(0)
    rng = np.random.default_rng(0)
    args = []
    for info in ms.arg_info.ArgInfo.from_prim_func(mod["main"]):
        shape = [int(s) for s in info.shape]
        dtype = str(info.dtype)
        data = rng.standard_normal(shape).astype(dtype) if "float" in dtype else np.zeros(shape, dtype)
        args.append(tvm.runtime.tensor(data, dev))
    rt = lib.jit() if hasattr(lib, "jit") else lib  # tvm.compile gives an Executable in 0.27
    f = rt.time_evaluator("main", dev, number=1, repeat=3, min_repeat_ms=repeat_ms)
    return float(np.median(f(*args).results)) * 1e3


def has_record(db, task, target: dict) -> bool:
    import tvm

    return db.query_tuning_record(task.dispatched[0], tvm.target.Target(target), "main") is not None


def _task_ms(task, target: dict, decisions, kernel=None) -> float:
    """Per call, what tvm-llvm runs for the task: the default schedule where it was measured faster, else the
    loop nest (harness/backends/tvm/defaults.py, the per-machine decisions the builds use); with no
    decisions at hand, the loop nest timed alone."""
    if decisions is not None:
        from harness.backends.tvm import defaults

        func = task.dispatched[0]["main"] if kernel is None else kernel
        ms = defaults.decision(task.task_name, func, target, decisions).default_ms
        if ms is not None:
            return ms
    return _time_task(task, target)


def task_table(tasks, target: dict, db=None, timed: bool = True, decisions=None, kernels=None) -> list[TaskInfo]:
    kernels = kernels or {}
    costs = [(_task_ms(t, target, decisions, kernels.get(t.task_name)) if timed else None) for t in tasks]
    total = sum(c * t.weight for c, t in zip(costs, tasks)) if timed else None
    return [
        TaskInfo(
            t.task_name,
            int(t.weight),
            c,
            (c * t.weight / total) if timed and total else None,
            db is not None and has_record(db, t, target),
        )
        for t, c in zip(tasks, costs)
    ]


def tuning_state(mod, target: dict, db) -> dict:
    """How much of a model the database covers: tuned (every task), partly tuned, or untuned."""
    tasks = extract(mod, target)
    hit = [t.task_name for t in tasks if has_record(db, t, target)]
    state = "tuned" if tasks and len(hit) == len(tasks) else ("partly tuned" if hit else "untuned")
    return {
        "state": state,
        "tasks": len(tasks),
        "tasks_tuned": len(hit),
        "untuned_tasks": sorted({t.task_name for t in tasks} - set(hit))[:20],
    }


# ------------------------------------------------------------------------------------------------------
# the tuning child process


def _builder_initializer() -> None:
    """Imported once per builder worker: `tvm.s_tir.tensor_intrin` alone takes 20-40 s here, more than the
    builder's per-build timeout."""
    import tvm.s_tir.tensor_intrin  # noqa: F401


def worker(spec: dict) -> int:
    """Tune the selected tasks of one workload into the database (runs in the child)."""
    from tvm.s_tir import meta_schedule as ms

    target = spec["target"]
    mod = relax_module(spec["onnx"], spec["shapes"], spec["dtypes"])
    db = open_db(Path(spec["db"]))
    tasks = extract(mod, target)
    chosen = spec["weights"]
    picked = [t for t in tasks if t.task_name in chosen]
    contexts, _ = ms.relax_integration.extracted_tasks_to_tune_contexts(
        picked, work_dir=spec["work_dir"], seed=spec.get("seed", 0), num_threads=spec["threads"]
    )
    weights = [chosen[t.task_name] for t in picked]
    print(
        f"[tune] {len(picked)} tasks, {spec['trials']} trials in all, weights "
        + ", ".join(f"{t.task_name}={w:.2f}" for t, w in zip(picked, weights)),
        flush=True,
    )
    ms.tune.tune_tasks(
        tasks=contexts,
        task_weights=weights,
        work_dir=spec["work_dir"],
        max_trials_global=spec["trials"],
        max_trials_per_task=spec.get("trials_per_task") or spec["trials"],
        num_trials_per_iter=TRIALS_PER_ITER,
        builder=ms.builder.LocalBuilder(timeout_sec=90, initializer=_builder_initializer, max_workers=spec["threads"]),
        runner=_runner(spec.get("rpc")),
        database=db,
    )
    return 0


def _runner(rpc: dict | None):
    """Where candidates are measured: here (LocalRunner), or on the devices of a TVM RPC tracker's key through
    MetaSchedule's own RPCRunner, one candidate in flight per server (`convtx tune --rpc-tracker`)."""
    from tvm.s_tir import meta_schedule as ms

    if not rpc:
        return ms.runner.LocalRunner(timeout_sec=60)
    host, _, port = rpc["tracker"].rpartition(":")
    print(
        f"[tune] measuring on the {rpc['servers']} server(s) under key {rpc['key']!r} of {rpc['tracker']}", flush=True
    )
    return ms.runner.RPCRunner(
        rpc_config=ms.runner.RPCConfig(
            tracker_host=host, tracker_port=int(port), tracker_key=rpc["key"], session_timeout_sec=60
        ),
        max_workers=max(1, int(rpc["servers"])),
    )


@dataclass(frozen=True)
class TuneResult:
    model: str
    lowering: str
    target: dict
    db: str
    trials: int
    seconds: float
    stopped_by_budget: bool
    tasks: list
    before: dict
    after: dict


def _run_worker(
    spec_path: Path, budget_s: float | None, threads: int, work: Path, label: str, say
) -> tuple[float, bool]:
    """MetaSchedule in a child process, killed (its whole process group) when `budget_s` runs out; what it
    measured is already in the database. Returns (seconds, stopped by the budget)."""
    t0 = time.monotonic()
    env = {**os.environ, "TVM_NUM_THREADS": str(threads)}
    # the tuner's progress (its per-round task table) goes to stderr: stdout carries this process's result
    p = subprocess.Popen(
        [sys.executable, "-m", "harness.backends.tvm", "worker", str(spec_path)],
        env=env,
        start_new_session=True,
        stdout=sys.stderr,
    )
    stopped = False
    try:
        p.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        stopped = True
        say(f"[tune] budget of {budget_s / 60:.1f} min reached: stopping (records so far are kept)")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # the tuner and its builder/runner pool workers
            p.wait()
    if p.returncode not in (0, -signal.SIGKILL) or (p.returncode != 0 and not stopped):
        raise ConvtxError(f"{label}: the tuning process exited {p.returncode} (logs: {work}/logs)")
    return time.monotonic() - t0, stopped


def tune_workload(
    label: str,
    lowering: str,
    onnx_path: str,
    shapes: dict,
    dtypes: dict,
    target: dict,
    trials: int,
    budget_s: float | None,
    threads: int,
    db_root: Path | None,
    work_root: Path,
    say=print,
    decisions_dir: Path | None = None,
    rpc: dict | None = None,
) -> TuneResult:
    import tvm

    from harness.backends.tvm import defaults

    d = db_dir(target, tvm.__version__, db_root)
    db = open_db(d)
    mod = relax_module(onnx_path, shapes, dtypes)
    tasks, kernels = extract_with_kernels(mod, target)
    decisions = defaults.Decisions(defaults.decisions_file(decisions_dir, target)) if decisions_dir else None
    say(f"[tune] {label} / {lowering}: {len(tasks)} tasks; weighing each by what tvm-llvm runs untuned ...")
    table = task_table(tasks, target, db, decisions=decisions, kernels=kernels)
    for t in sorted(table, key=lambda t: -(t.share or 0)):
        say(
            f"[tune]   {t.share * 100:5.1f}%  {t.ms_per_call:9.3f} ms x{t.calls}  {t.name}"
            f"{'  (already in the database)' if t.tuned else ''}"
        )
    before = tuning_state(mod, target, db)
    # which tasks: those holding >= MIN_SHARE of the untuned latency; their MetaSchedule weight is their call
    # count, so that the gradient scheduler's objective, sum(weight x latency), is the model's latency
    weights = {t.name: float(t.calls) for t in table if (t.share or 0) >= MIN_SHARE}
    if not weights:
        raise ConvtxError(f"{label}: no task takes {MIN_SHARE:.0%} of the latency; nothing to tune")
    work = work_root / target_slug(target) / f"{label.replace('@', '-')}-{lowering}"
    work.mkdir(parents=True, exist_ok=True)
    spec = {
        "target": target,
        "onnx": onnx_path,
        "shapes": {k: list(v) for k, v in shapes.items()},
        "dtypes": dtypes,
        "db": str(d),
        "work_dir": str(work),
        "weights": weights,
        "trials": trials,
        "threads": threads,
        "rpc": rpc,
    }
    spec_path = work / "spec.json"
    safefs.write_atomic(spec_path, json.dumps(spec, indent=2))
    seconds, stopped = _run_worker(spec_path, budget_s, threads, work, label, say)
    db = open_db(d)  # re-read what the child appended
    after = tuning_state(mod, target, db)
    res = TuneResult(
        label, lowering, target, str(d), trials, round(seconds, 1), stopped, [asdict(t) for t in table], before, after
    )
    _update_index(d, res)
    return res


def _update_index(d: Path, res: TuneResult) -> None:
    """index.json: the latest tuning of each model x lowering; `seconds_total` adds up resumed sessions."""
    path = d / "index.json"
    index = json.loads(path.read_text()) if path.exists() else {"workloads": []}
    key = (res.model, res.lowering)
    prev = next((w for w in index["workloads"] if (w["model"], w["lowering"]) == key), None)
    entry = {k: v for k, v in asdict(res).items() if k not in ("db", "target")}
    entry["seconds_total"] = round((prev.get("seconds_total", prev["seconds"]) if prev else 0.0) + res.seconds, 1)
    entry["sessions"] = (prev.get("sessions", 1) if prev else 0) + 1
    index["target"] = res.target
    index["workloads"] = [w for w in index["workloads"] if (w["model"], w["lowering"]) != key] + [entry]
    index["total_seconds"] = round(sum(w.get("seconds_total", w["seconds"]) for w in index["workloads"]), 1)
    safefs.write_atomic(path, json.dumps(index, indent=1, sort_keys=True))


def survey(spec: dict) -> list[dict]:
    """Every task of one workload: calls, MetaSchedule's structural hash, its latency under what tvm-llvm runs
    (the per-machine default-schedule decisions, measured here where missing) and the database's best record.
    The coverage planner's input (harness/pipeline/coverage.py)."""
    import numpy as np
    import tvm
    import tvm_ffi

    from harness.backends.tvm import defaults

    target = spec["target"] or host_target(spec["threads"])
    mod = relax_module(spec["onnx"], spec["shapes"], spec["dtypes"])
    d = db_dir(target, tvm.__version__)
    db = open_db(d) if (d / "database_tuning_record.json").exists() else None
    decisions = defaults.Decisions(defaults.decisions_file(Path(spec["decisions_dir"]), target))
    t = tvm.target.Target(target)
    rows = []
    tasks, kernels = extract_with_kernels(mod, target)
    for task in tasks:
        dec = defaults.decision(task.task_name, kernels[task.task_name], target, decisions)
        rec = db.query_tuning_record(task.dispatched[0], t, "main") if db is not None else None
        secs = [float(x) for x in (rec.run_secs or [])] if rec is not None else []
        rows.append(
            {
                "task": task.task_name,
                "workload": str(tvm_ffi.structural_hash(task.dispatched[0])),
                "calls": int(task.weight),
                "default_ms": dec.default_ms,
                "tuned_ms": float(np.median(secs)) * 1e3 if secs and max(secs) < 1e9 else None,
            }
        )
    return rows


def tune_tasks(spec: dict) -> dict:
    """Tune the named tasks of one workload, `trials_per_task` each, within `budget_s` (the coverage driver's
    step; the tasks' MetaSchedule weights are their call counts)."""
    import tvm

    target = spec["target"] or host_target(spec["threads"])
    d = db_dir(target, tvm.__version__)
    mod = relax_module(spec["onnx"], spec["shapes"], spec["dtypes"])
    tasks = {t.task_name: t for t in extract(mod, target)}
    missing = [n for n in spec["tasks"] if n not in tasks]
    if missing:
        raise ConvtxError(f"{spec['label']}/{spec['lowering']}: no task {missing} in this workload")
    work = Path(spec["work_root"]) / target_slug(target) / f"{spec['label'].replace('@', '-')}-{spec['lowering']}"
    work.mkdir(parents=True, exist_ok=True)
    n = len(spec["tasks"])
    worker_spec = {
        "target": target,
        "onnx": spec["onnx"],
        "shapes": spec["shapes"],
        "dtypes": spec["dtypes"],
        "db": str(d),
        "work_dir": str(work),
        "weights": {name: float(tasks[name].weight) for name in spec["tasks"]},
        "trials": spec["trials_per_task"] * n,
        "trials_per_task": spec["trials_per_task"],
        "threads": spec["threads"],
        "rpc": spec.get("rpc"),
    }
    path = work / "spec-tasks.json"
    safefs.write_atomic(path, json.dumps(worker_spec, indent=2))
    say = lambda m: print(m, file=sys.stderr, flush=True)
    seconds, stopped = _run_worker(path, spec.get("budget_s"), spec["threads"], work, spec["label"], say)
    return {"tasks": spec["tasks"], "seconds": round(seconds, 1), "stopped_by_budget": stopped, "db": str(d)}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 2 and argv[0] == "worker":
        return worker(json.loads(Path(argv[1]).read_text()))
    if len(argv) == 2 and argv[0] in ("survey", "tune-tasks"):  # the coverage driver's children
        try:
            out = (survey if argv[0] == "survey" else tune_tasks)(json.loads(argv[1]))
        except ConvtxError as e:
            print(f"convtx: error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(out))
        return 0
    if len(argv) == 2 and argv[0] == "drive":  # `convtx tune`'s child: weigh, tune, report JSON
        spec = json.loads(argv[1])
        target = spec["target"] or host_target(spec["threads"])
        try:
            res = tune_workload(
                spec["label"],
                spec["lowering"],
                spec["onnx"],
                spec["shapes"],
                spec["dtypes"],
                target,
                spec["trials"],
                spec["budget_s"],
                spec["threads"],
                None,
                Path(spec["work_root"]),
                say=lambda m: print(m, file=sys.stderr, flush=True),
                decisions_dir=Path(spec["decisions_dir"]) if spec.get("decisions_dir") else None,
                rpc=spec.get("rpc"),
            )
        except ConvtxError as e:
            print(f"convtx: error: {e}", file=sys.stderr)
            return 2
        except Exception as e:  # noqa: BLE001 — TVM refusing a model: say which, one line, and go on
            text = (str(e).strip().splitlines() or [""])[-1]
            print(
                f"convtx: error: TVM could not take {spec['label']}/{spec['lowering']}: "
                f"{type(e).__name__}: {text[:300]}",
                file=sys.stderr,
            )
            return 1
        print(json.dumps(asdict(res)))
        return 0
    print("usage: python -m harness.backends.tvm worker SPEC.json (internal; use `convtx tune`)", file=sys.stderr)
    return 2


def _cached_state(path: Path | None) -> dict | None:
    """A kept `tuning_state`, when its cache entry is whole."""
    if path is None or not cache.is_valid(path):
        return None
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return None
    return state if isinstance(state, dict) and state.get("state") in ("tuned", "partly tuned", "untuned") else None


class TvmLlvmTuned(TvmBackend):
    """TVM with the committed MetaSchedule database (`tuning/`) applied: the tuned schedule for every task the
    database has a record for, the default CPU schedule (harness/backends/tvm/defaults.py) for the rest. A workload with no record at all is skipped
    (it would only repeat `tvm-llvm`); the record says whether the case was tuned or partly tuned, and which
    tasks were not."""

    id = "tvm-llvm-tuned"
    file_default = False

    def _build(self, art: ModelArtifact, cfg: RunConfig, target_d: dict):
        import tvm

        from harness.backends.tvm import defaults

        d = db_dir(target_d, tvm.__version__)
        if not (d / "database_tuning_record.json").exists():
            raise UnsupportedModel(
                f"no tuning database for TVM {tvm.__version__} on {target_slug(target_d)} "
                f"(expected {d}); run `convtx tune`"
            )
        digest = hashlib.sha256(
            (d / "database_tuning_record.json").read_bytes() + (d / "database_workload.json").read_bytes()
        ).hexdigest()[:16]
        lib = cache_path(art, {**target_d, "db": digest}, tvm.__version__)
        # which of the workload's tasks the database covers: found once per (model, shapes, target, database) and
        # kept beside the library (5 s of import and task extraction, for a case that is then skipped or a hit)
        state_file = lib.with_name(lib.name + ".tuning-state.json") if lib is not None else None
        state = _cached_state(state_file)
        mod = None
        if state is None:
            mod = relax_module(art.onnx_path, art.input_shapes, art.input_dtypes)
            state = state_by_hashes(mod, target_d, d)
            if state_file is not None:
                tmp = cache.tmp_path(state_file)
                tmp.write_text(json.dumps(state, sort_keys=True))
                cache.commit(tmp, state_file)
        if state["state"] == "untuned":
            raise UnsupportedModel(
                f"untuned: none of the workload's {state['tasks']} tasks has a record in {d} "
                f"(tune it: convtx tune MODEL --lowerings LOWERING)"
            )
        info = {
            **engine_info(target_d, "hit" if lib is not None and cache.is_valid(lib) else "miss"),
            "tuned": state["state"],
            "tuning": {
                **state,
                "database": str(d.relative_to(ROOT.parent)) if d.is_relative_to(ROOT.parent) else str(d),
                "records_digest": digest,
            },
            "pipeline": "MetaSchedule database applied after FuseTIR; the default CPU schedule for the rest",
        }
        if lib is not None and cache.is_valid(lib):
            return lib, None, {**info, **defaults.cached_summary(lib)}
        if mod is None:
            mod = relax_module(art.onnx_path, art.input_shapes, art.input_dtypes)
        ex, summary = defaults.build(
            mod, target_d, defaults.decisions_path(art, target_d), database=open_db_cached(d),
            defer=cfg.defer_measurement,
        )  # fmt: skip
        export_cached(ex, lib)
        defaults.keep_summary(lib, summary)
        return lib, ex, {**info, **defaults.info(summary)}


if __name__ == "__main__":
    sys.exit(main())
