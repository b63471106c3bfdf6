"""Coverage-driven tuning (`convtx tune --coverage`, `make tune`): tune tasks, not workloads, until no model
that can win has more than `max_untuned` of its latency in untuned tasks.

1. **Survey.** Every model of the suite under every lowering TVM runs is lowered (and rewritten where TVM
   needs it), split into MetaSchedule tasks, and each task's latency under what `tvm-llvm` would run — the
   default CPU schedule where it is used, else the loop nest (harness/backends/tvm/defaults.py, the same
   per-machine decisions the builds use) — and, where the database has a record, its tuned latency are
   read (`python -m harness.backends.tvm survey`, one child per workload).
2. **Plan** (`plan`, a pure function). A workload's latency is Σ calls × (tuned, else default) ms. For each
   model, the lowerings that can win are those within `within` × its fastest; a task is identified by
   MetaSchedule's structural hash, so one tuned task serves every model and lowering that contains it.
   Greedily, the untuned task with the largest Σ over candidate workloads of its share of that workload's
   latency is next, until every candidate is at or under `max_untuned`.
3. **Tune** the next tasks of the plan (a few at a time, `trials_per_task` each) in MetaSchedule's child
   process, into the committed database; survey again the workloads that hold a task just tuned (the database is re-read), plan
   again, until the plan is empty or the budget is spent. Everything MetaSchedule measures is appended to
   the database at once, so a stop loses at most the batch in flight and running it again resumes.

The coverage of the last survey is written to the database's `coverage.json` (per model × lowering:
latency with the database, the share of it in tuned tasks, untuned tasks left), which `convtx list`,
the report and the closing notes read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from harness.core import safefs
from harness.core.errors import ConvtxError


@dataclass(frozen=True)
class TaskRow:
    """One task of one workload, as the survey measured it."""

    task: str  # MetaSchedule's task name (fused function)
    workload: str  # MetaSchedule's structural hash of the task's TIR: the identity across models
    calls: int
    default_ms: float  # per call, what tvm-llvm runs (default schedule, else the loop nest)
    tuned_ms: float | None  # per call, the database's best record; None: untuned


@dataclass(frozen=True)
class Workload:
    model: str  # label, e.g. unet@256
    lowering: str
    tasks: tuple[TaskRow, ...]

    @property
    def key(self) -> str:
        return f"{self.model}/{self.lowering}"

    def latency_ms(self) -> float:
        """Σ calls × ms with the database (tuned where it has a record, else what tvm-llvm runs)."""
        return sum(t.calls * (t.tuned_ms if t.tuned_ms is not None else t.default_ms) for t in self.tasks)

    def untuned_ms(self, tuned: frozenset[str] = frozenset()) -> float:
        return sum(t.calls * t.default_ms for t in self.tasks if t.tuned_ms is None and t.workload not in tuned)

    def untuned_share(self, tuned: frozenset[str] = frozenset()) -> float:
        total = self.latency_ms()
        return self.untuned_ms(tuned) / total if total > 0 else 0.0


@dataclass(frozen=True)
class Step:
    """One task to tune: its identity, a workload that contains it (to extract it from), its score."""

    workload: str
    task: str
    source: str  # Workload.key it is tuned through
    score: float  # Σ over candidate workloads of its share of their latency
    serves: tuple[str, ...]  # the candidate workloads it is in


@dataclass
class Plan:
    candidates: dict[str, list[str]] = field(default_factory=dict)  # model -> lowerings that can win
    steps: list[Step] = field(default_factory=list)
    before: dict[str, float] = field(default_factory=dict)  # candidate workload -> untuned share now
    after: dict[str, float] = field(default_factory=dict)  # ... once the steps are tuned


def plan(workloads: list[Workload], max_untuned: float = 0.02, within: float = 2.0) -> Plan:
    """The greedy plan (see the module docstring). Workloads with no tasks are ignored."""
    p = Plan()
    by_model: dict[str, list[Workload]] = {}
    for w in workloads:
        if w.tasks:
            by_model.setdefault(w.model, []).append(w)
    cands: list[Workload] = []
    for model, ws in by_model.items():
        best = min(w.latency_ms() for w in ws)
        chosen = [w for w in ws if w.latency_ms() <= within * best]
        p.candidates[model] = [w.lowering for w in chosen]
        cands.extend(chosen)
    tuned: set[str] = set()
    p.before = {w.key: w.untuned_share() for w in cands}
    while True:
        open_ = [w for w in cands if w.untuned_share(frozenset(tuned)) > max_untuned]
        if not open_:
            break
        scores: dict[str, float] = {}
        where: dict[str, tuple[Workload, TaskRow]] = {}
        serves: dict[str, list[str]] = {}
        for w in open_:
            total = w.latency_ms()
            for t in w.tasks:
                if t.tuned_ms is not None or t.workload in tuned or total <= 0:
                    continue
                scores[t.workload] = scores.get(t.workload, 0.0) + t.calls * t.default_ms / total
                serves.setdefault(t.workload, []).append(w.key)
                if (
                    t.workload not in where
                    or t.calls * t.default_ms > where[t.workload][1].calls * where[t.workload][1].default_ms
                ):
                    where[t.workload] = (w, t)
        if not scores:
            break
        h = max(scores, key=lambda k: (scores[k], k))
        w, t = where[h]
        p.steps.append(Step(h, t.task, w.key, round(scores[h], 6), tuple(sorted(set(serves[h])))))
        tuned.add(h)
    p.after = {w.key: w.untuned_share(frozenset(tuned)) for w in cands}
    return p


def coverage_table(workloads: list[Workload], p: Plan) -> list[dict]:
    """Per workload: latency with the database, tuned share, untuned share, whether it can win."""
    rows = []
    for w in workloads:
        total = w.latency_ms()
        tuned_ms = sum(t.calls * t.tuned_ms for t in w.tasks if t.tuned_ms is not None)
        rows.append(
            {
                "model": w.model,
                "lowering": w.lowering,
                "candidate": w.lowering in p.candidates.get(w.model, []),
                "tasks": len(w.tasks),
                "tasks_tuned": sum(t.tuned_ms is not None for t in w.tasks),
                "latency_ms": round(total, 4),
                "default_latency_ms": round(sum(t.calls * t.default_ms for t in w.tasks), 4),
                "tuned_share": round(tuned_ms / total, 4) if total else None,
                "untuned_share": round(w.untuned_share(), 4),
            }
        )
    return rows


def group_by_source(steps: list[Step], workloads: list[Workload]) -> dict[str, list[Step]]:
    """The steps of one round, grouped so that as few tuning processes as possible tune them: each process
    extracts its tasks from one workload (and pays MetaSchedule's start-up once), so the workload holding most
    of the round's tasks takes all it holds (under its own names for them), and so on."""
    tasks_of = {w.key: {t.workload: t.task for t in w.tasks} for w in workloads}
    left = list(steps)
    out: dict[str, list[Step]] = {}
    while left:
        key = max(tasks_of, key=lambda k: (sum(s.workload in tasks_of[k] for s in left), k == left[0].source, k))
        mine = [s for s in left if s.workload in tasks_of[key]]
        if not mine:  # a step whose workload was not surveyed: its own source
            key, mine = left[0].source, left[:1]
        out[key] = [replace(s, task=tasks_of.get(key, {}).get(s.workload, s.task), source=key) for s in mine]
        left = [s for s in left if s not in mine]
    return out


# ------------------------------------------------------------------------------------------------------
# the driver


@dataclass(frozen=True)
class Coverage:
    table: list[dict]
    steps_done: int
    steps_left: int
    seconds: float
    db: str | None
    failed: tuple[str, ...]


def _child(args: list[str], threads: int, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    env = {**os.environ, "TVM_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-m", "harness.backends.tvm", *args], env=env, stdout=stdout, text=True)


def survey(label: str, lowering: str, path: str, prep, target: dict | None, threads: int, build: Path) -> Workload:
    from harness.pipeline.tune import workload_spec

    p = _child(["survey", json.dumps(workload_spec(label, lowering, path, prep, target, threads, build))], threads)
    if p.returncode != 0:
        raise ConvtxError(f"{label}/{lowering}: the survey failed (exit {p.returncode}; see the lines above)")
    rows = json.loads(p.stdout.strip().splitlines()[-1])
    return Workload(label, lowering, tuple(TaskRow(**r) for r in rows))


def tune_coverage(
    models: list[str],
    lowerings: list[str],
    target: dict | None,
    trials_per_task: int,
    budget_s: float | None,
    threads: int,
    seed: int,
    build: Path,
    max_untuned: float = 0.02,
    within: float = 2.0,
    batch: int = 8,
    say: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    rpc: dict | None = None,
) -> Coverage:
    from harness.backends.tvm.tuning import TvmLlvmTuned
    from harness.pipeline.case import lowered_path, rewritten_path
    from harness.pipeline.sweep import model_ref
    from harness.pipeline.tune import prepare_isolated, workload_spec

    t0 = time.monotonic()
    left = (lambda: None) if budget_s is None else (lambda: budget_s - (time.monotonic() - t0))
    sources: dict[str, tuple[str, object]] = {}
    failed: list[str] = []
    for m in models:
        ref = model_ref(m, {})
        prep = prepare_isolated(ref, 1, seed, build)
        for lw in lowerings:
            if lw == "gemm_col2im":
                continue  # TVM has no Col2Im
            path, _ = lowered_path(prep, lw, build)
            path, _ = rewritten_path(path, TvmLlvmTuned.needs_rewrites, build)
            sources[f"{ref.label}/{lw}"] = (path, prep)
    done = 0
    db = None
    surveyed: dict[str, Workload] = {}
    stale = set(sources)  # workloads to survey (again): all at first, then those holding a task just tuned
    while True:
        for key, (path, prep) in sources.items():
            if key not in stale:
                continue
            label, lw = key.rsplit("/", 1)
            try:
                surveyed[key] = survey(label, lw, path, prep, target, threads, build)
            except ConvtxError as e:
                failed.append(str(e))
                surveyed.pop(key, None)
                say(f"[tune] {key}: survey FAILED — {e}")
        sources = {k: v for k, v in sources.items() if k in surveyed}
        workloads = [surveyed[k] for k in sources]
        p = plan(workloads, max_untuned, within)
        table = coverage_table(workloads, p)
        db = _write_coverage(table, p, target, threads)
        worst = max(p.before.values(), default=0.0)
        say(
            f"[tune] coverage: {len(workloads)} workloads, {len(p.steps)} tasks to tune for <= {max_untuned:.0%} "
            f"untuned (worst candidate now {worst:.1%}); {done} tuned this run"
        )
        if not p.steps:
            break
        remaining = left()
        if remaining is not None and remaining <= 60:
            say("[tune] the budget is spent; the coverage above is what the database holds (run again to resume)")
            break
        by_source = group_by_source(p.steps[:batch], workloads)
        tuned_now = {s.workload for s in p.steps[:batch]}
        stale = {w.key for w in workloads if any(t.workload in tuned_now for t in w.tasks)}
        for src, steps in by_source.items():
            path, prep = sources[src]
            label, lw = src.rsplit("/", 1)
            say(
                f"[tune] tuning {len(steps)} task(s) through {src}: "
                + ", ".join(f"{s.task} ({s.score:.1%})" for s in steps)
            )
            spec = {
                **workload_spec(label, lw, path, prep, target, threads, build, rpc),
                "tasks": [s.task for s in steps],
                "trials_per_task": trials_per_task,
                "budget_s": left(),
            }
            r = _child(["tune-tasks", json.dumps(spec)], threads)
            if r.returncode == 0:  # counted at once: a run stopped mid-round keeps the time it spent
                _add_tuning_seconds(Path(db), json.loads(r.stdout.strip().splitlines()[-1])["seconds"])
            else:
                failed.append(f"{src}: tuning {[s.task for s in steps]} failed (exit {r.returncode})")
                say(f"[tune] {src}: tuning FAILED (exit {r.returncode})")
                sources.pop(src, None)
                continue
            done += len(steps)
    return Coverage(table, done, len(p.steps), round(time.monotonic() - t0, 1), db, tuple(failed))


def _add_tuning_seconds(d: Path, seconds: float) -> None:
    """coverage.json's `tuning_seconds_total` += seconds (after each tuning child, so that no stop loses it)."""
    path = d / "coverage.json"
    try:
        cov = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    cov["tuning_seconds_total"] = round(float(cov.get("tuning_seconds_total", 0.0)) + seconds, 1)
    safefs.write_atomic(path, json.dumps(cov, indent=1, sort_keys=True))


def _write_coverage(table: list[dict], p: Plan, target: dict | None, threads: int) -> str:
    """coverage.json beside the database: the last survey's table, the plan left, and the tuning time spent
    on this database in all (`tuning_seconds_total`, summed over runs and rounds)."""
    import tvm

    from harness.backends.tvm.common import host_target
    from harness.backends.tvm.tuning import db_dir

    t = target or host_target(threads)
    d = db_dir(t, tvm.__version__)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "coverage.json"
    total = 0.0
    if path.exists():
        try:
            total = float(json.loads(path.read_text()).get("tuning_seconds_total", 0.0))
        except (ValueError, TypeError):
            total = 0.0
    out = {
        "target": t,
        "candidates": p.candidates,
        "workloads": table,
        "plan_left": [asdict(s) for s in p.steps],
        "tuning_seconds_total": round(total, 1),
    }
    safefs.write_atomic(path, json.dumps(out, indent=1, sort_keys=True))
    return str(d)
