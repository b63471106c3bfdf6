"""Suites -> cases; each case runs isolated in a worker process; every record goes to a sink at once.

A crash, abort or hang in one case becomes that case's `error` record (with the exit signal and the last
lines of the worker's stderr); the worker is restarted and the sweep goes on.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from harness.backends import BACKENDS, get_backend
from harness.checking import forms
from harness.core import safefs
from harness.core.config import RunConfig
from harness.core.errors import ConvtxError
from harness.core.records import CaseKey, Record, case_id, fmt_metric
from harness.lowerings import get_lowering
from harness.measure.machine import usable_cpus
from harness.pipeline.ahead import AheadCase, compile_local
from harness.pipeline.case import case_key
from harness.pipeline.farm import RemoteCase, run_remote
from harness.pipeline.prepare import ModelRef, Prepared
from harness.pipeline.progress import Eta, case_parts
from harness.pipeline.worker import WorkerClient, WorkerDied


@dataclass(frozen=True)
class Plan:
    refs: tuple[ModelRef, ...]
    lowerings: tuple[str, ...]
    backends: tuple[str, ...]
    batches: tuple[int, ...]

    def __post_init__(self) -> None:
        for lw in self.lowerings:
            get_lowering(lw)
        for b in self.backends:
            get_backend(b)
        for b in self.batches:
            if b < 1:
                raise ConvtxError(f"batch {b}: expected a positive integer")

    def model_batches(self) -> list[tuple[ModelRef, int]]:
        """Zoo models at every batch; a file model once, at the batch its input shapes give."""
        out = []
        for ref in self.refs:
            if ref.is_zoo:
                out.extend((ref, b) for b in self.batches)
            else:
                shapes = dict(ref.shapes)
                out.append((ref, _file_batch(ref, shapes)))
        return out

    def cases(self) -> list[tuple[ModelRef, int, str, str]]:
        """(model, batch, lowering, backend) in run order. The eager baseline runs the PyTorch module, not
        the ONNX file, so it has one case per model (native) rather than one per lowering."""
        return [
            (ref, batch, lw, b)
            for ref, batch in self.model_batches()
            for lw in self.lowerings
            for b in self.backends
            if lw == "native" or not BACKENDS[b].zoo_only
        ]

    def n_cases(self) -> int:
        return len(self.cases())


def _file_batch(ref: ModelRef, shapes: dict) -> int:
    first = next(iter(shapes.values()), None)
    return int(first[0]) if first else 1


def file_ref(path: str, overrides: dict[str, tuple[int, ...]]) -> ModelRef:
    """Check an ONNX file now (one-line errors, exit 2) and return its reference with concrete shapes."""
    from harness.core.convtranspose import invalid_nodes
    from harness.core.errors import BadModelError
    from harness.core.memory import check_inputs
    from harness.core.onnx_io import fix_input_shapes, graph_inputs, load_model, resolve_shapes

    model = load_model(path)
    specs = graph_inputs(model)
    shapes = resolve_shapes(specs, overrides, path)
    dtypes = {s.name: s.dtype for s in specs}
    check_inputs(path, shapes, dtypes)  # before shape inference: a 640 GB input is refused at once
    fixed = fix_input_shapes(model, shapes)
    check_inputs(path, shapes, dtypes, fixed)
    bad = invalid_nodes(fixed)  # bad input, not a finding: which engines accept such nodes is fuzz's question
    if bad:
        (label, e), more = bad[0], f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise BadModelError(f"{path}: ConvTranspose node {label!r}{more}: {e}")
    return ModelRef(name=Path(path).stem, path=str(Path(path).resolve()), shapes=tuple(shapes.items()))


def zoo_ref(text: str) -> ModelRef:
    from models import parse_model_ref

    spec, size = parse_model_ref(text)
    return ModelRef(name=spec.name, size=size)


def model_ref(text: str, overrides: dict[str, tuple[int, ...]]) -> ModelRef:
    """`MODEL` on the command line: a path to an .onnx file, or a zoo name (`name` or `name@size`)."""
    if text.endswith(".onnx") or "/" in text or Path(text).exists():
        return file_ref(text, overrides)
    if overrides:
        raise ConvtxError(f"--shape applies to ONNX files; zoo model {text!r} takes a size as {text}@SIZE")
    return zoo_ref(text)


def run_case_isolated(
    w: WorkerClient,
    prep: Prepared,
    lowering: str,
    backend: str,
    cfg: RunConfig,
    run_id: str,
    build_dir: Path,
    key: CaseKey,
) -> Record:
    """One case in worker `w`; its death, hang or memory blow-up becomes this case's error record."""
    t0 = time.monotonic()
    try:
        ans = w.request(
            {
                "op": "case",
                "case_id": key.case_id,
                "prepared": prep.to_json(),
                "lowering": lowering,
                "backend": backend,
                "cfg": cfg.to_json(),
                "run_id": run_id,
                "build_dir": str(build_dir),
            },
            cfg.case_timeout_s,
        )
    except WorkerDied as e:
        return key.record("error", f"{e} after {time.monotonic() - t0:.1f} s", details={"stderr_tail": e.stderr_tail})
    if ans.get("ok"):
        return Record.from_json(ans["record"])
    return key.record("error", f"worker: {ans['error']}")


def cuda_probe():
    from harness.measure import cuda

    return cuda.probe()


def gpu_here() -> bool:
    return cuda_probe().runnable


def _say_farm(facts: dict, say: Callable[[str], None]) -> None:
    d = facts.get("dispatch") or {}
    per = ", ".join(f"{s} {n}" for s, n in sorted((d.get("cases_per_server") or {}).items())) or "none"
    say(
        f"convtx: remote phase: probe {facts.get('probe_s', 0):.1f} s, compile ahead {facts.get('compile_s', 0):.1f} s, "
        f"dispatch {facts.get('dispatch_s', 0):.1f} s on {d.get('slots', 0)} slot(s); cases per server: {per}"
        + (f"; {d['retried']} case(s) retried after a lost server" if d.get("retried") else "")
    )


def run_plan(
    plan: Plan,
    cfg: RunConfig,
    run_id: str,
    build_dir: Path,
    log_dir: Path,
    sink: Callable[[Record], None],
    say: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
    done: frozenset[str] = frozenset(),
    prepared: dict[tuple[ModelRef, int], Prepared] | None = None,
    past: dict[str, tuple[float, float]] | None = None,
    phases: dict[str, float] | None = None,
) -> list[Record]:
    """Run every case of `plan` whose id is not in `done`; each record is handed to `sink` as soon as it
    exists (the caller makes it durable before the next case starts). `prepared` supplies models whose
    inputs and expected outputs are given (conformance tests) instead of exported and computed here. `past`:
    case id -> (run s, build share s) in earlier runs (harness/pipeline/progress.py), for the progress lines'
    ETA and the builds' longest-first order. `phases`
    gains the seconds spent preparing models, compiling ahead, running cases one at a time and in the remote
    phase (keys prepare, compile_ahead, cases, remote).

    Per model: prepared (exported, float64 reference), its cases on engines that compile when a session is
    created run and are timed one at a time; then the cases of engines that compile ahead (TVM) are built in
    parallel across the cores (harness/pipeline/ahead.py) and afterwards timed one at a time, their builds now
    cache hits."""
    records: list[Record] = []
    cases = [c for c in plan.cases() if case_id(c[0].label, c[2], c[3], c[1]) not in done]
    total = len(cases)
    eta = Eta({case_id(c[0].label, c[2], c[3], c[1]): c[3] for c in cases}, past or {})
    spent: dict[str, float] = phases if phases is not None else {}

    def count(phase: str, t0: float) -> None:
        spent[phase] = spent.get(phase, 0.0) + time.monotonic() - t0

    cap = int(cfg.memory_cap_gib * 2**30) if cfg.memory_cap_gib else None
    avail = {b: BACKENDS[b].availability() for b in plan.backends}
    workers: dict[str, WorkerClient] = {}
    on: Counter = Counter()  # remote server -> cases it ran
    remote_cases: list[RemoteCase] = []  # a remote run's TVM cases: run together on every server at the end

    def elapsed() -> str:
        return eta.text()

    def worker(name: str, env: dict[str, str], prefix: list[str] | None = None) -> WorkerClient:
        if name not in workers:
            workers[name] = WorkerClient(name, env, log_dir / f"worker-{name}.log", cap, prefix)
        return workers[name]

    count_dir = log_dir / "callgrind"

    def counting_worker(b: str) -> WorkerClient:
        """bench --counts: the backend's worker under callgrind (harness/measure/counting.py)."""
        from harness.measure.counting import worker_prefix

        count_dir.mkdir(parents=True, exist_ok=True)
        env = {**BACKENDS[b].worker_env(cfg), "CONVTX_CALLGRIND_OUT": str(count_dir.resolve()), "PYTHONHASHSEED": "0"}
        return worker(f"{b}+callgrind", env, worker_prefix(count_dir.resolve()))

    def run_counted(prep: Prepared, lowering: str, b: str, key: CaseKey) -> Record:
        if BACKENDS[b].compile_before_counting:
            pre = run_case_isolated(
                worker(b, BACKENDS[b].worker_env(cfg)),
                prep,
                lowering,
                b,
                replace(cfg, compile_only=True),
                run_id,
                build_dir,
                key,
            )
            if pre.status != "ok":  # it would fail the same way under valgrind, only slower
                return pre
        return run_case_isolated(counting_worker(b), prep, lowering, b, cfg, run_id, build_dir, key)

    def emit(rec: Record) -> None:
        records.append(rec)
        sink(rec)
        try:
            eta.done(rec.case_id, case_parts(rec.details))
        except (KeyError, TypeError, ValueError):  # a record that never held a worker (a skip): no time
            eta.done(rec.case_id, None)
        lat = f" {rec.latency_ms.median:.3f} ms" if rec.latency_ms else ""
        if rec.counts:
            lat = f" {rec.counts.median / 1e6:.3f} M {rec.counts.metric}"
        num = f" rel_l2 {fmt_metric(rec.numerics.rel_l2, '.2g')}" if rec.numerics else ""
        why = f" — {rec.reason}" if rec.reason and rec.status != "ok" else ""
        remote = rec.details.get("remote") or {}
        if remote.get("server"):
            on[remote["server"]] += 1
            why += f" [on {remote['server']}: {on[remote['server']]} case(s) there]"
        say(f"[{len(records)}/{total} {elapsed()}] {rec.case_id}: {rec.status}{lat}{num}{why}")

    def prepare_one(ref: ModelRef, batch: int) -> tuple[Prepared | None, str, list[str]]:
        if prepared and (ref, batch) in prepared:
            return prepared[(ref, batch)], "", []
        say(
            f"[{len(records)}/{total} {elapsed()}] preparing {ref.label} batch {batch} "
            f"(export, inputs, float64 reference)"
        )
        try:
            ans = worker("prepare", {}).request(
                {"op": "prepare", "ref": asdict(ref), "batch": batch, "seed": cfg.seed, "build_dir": str(build_dir)},
                cfg.prepare_timeout_s,
            )
        except WorkerDied as e:
            return None, str(e), e.stderr_tail
        if ans.get("ok"):
            return Prepared.from_json(ans["prepared"]), "", []
        return None, ans["error"], []

    def run_local(prep: Prepared, lowering: str, b: str, key: CaseKey) -> Record:
        say(f"[{len(records)}/{total} {elapsed()}] running {key.case_id} ...")
        t0 = time.monotonic()
        try:
            return run_case_isolated(
                worker(b, BACKENDS[b].worker_env(cfg)), prep, lowering, b, cfg, run_id, build_dir, key
            )
        finally:
            count("cases", t0)

    def ahead_worker(b: str, name: str, slot: int) -> WorkerClient:
        return worker(name, BACKENDS[b].worker_env(cfg))

    def build_then_time(prep: Prepared, todo: list[tuple[str, str, CaseKey]]) -> None:
        """The model's cases of engines that compile ahead: built in parallel, then each timed alone."""
        if not todo:
            return
        say(
            f"[{len(records)}/{total} {elapsed()}] building {len(todo)} case(s) of {prep.ref.label} "
            f"({', '.join(sorted({b for _, b, _ in todo}))}) on {min(usable_cpus(), len(todo))} core(s) before timing"
        )
        t0 = time.monotonic()
        try:
            jobs = [AheadCase(prep, lw, b, key, (past or {}).get(key.case_id, (0.0, 0.0))[1]) for lw, b, key in todo]
            built = compile_local(jobs, cfg, run_id, build_dir, ahead_worker, run_case_isolated, say)
        finally:
            count("compile_ahead", t0)
        slots = min(usable_cpus(), len(todo))
        say(f"[{len(records)}/{total} {elapsed()}] built {len(todo)} case(s) in {time.monotonic() - t0:.1f} s")
        for lowering, b, key in todo:
            pre = built[key.case_id]
            w = pre.details.get("wall") or {}
            ahead = {
                "compile_s": pre.compile_s,
                "wall_s": round(float(w.get("end", 0)) - float(w.get("start", 0)), 3),
                "slots": slots,
            }
            if pre.status != "ok" or cfg.compile_only:  # its build is its result
                emit(pre.with_details(compiled_ahead=ahead))
                continue
            rec = run_local(prep, lowering, b, key)
            # the record's compile time is the build's; the timing run only loaded the cached library
            load = rec.compile_s
            rec = replace(rec, compile_s=pre.compile_s if pre.compile_s is not None else rec.compile_s)
            facts: dict = {"compiled_ahead": {**ahead, "load_s": load}}
            if "compile_cache" in pre.details:  # the cache as the build found it (the timed run's load is a hit)
                facts["compile_cache"] = pre.details["compile_cache"]
            emit(rec.with_details(**facts))

    try:
        for ref, batch in dict.fromkeys((c[0], c[1]) for c in cases):
            t0 = time.monotonic()
            prep, prep_error, tail = prepare_one(ref, batch)
            count("prepare", t0)
            later: list[tuple[str, str, CaseKey]] = []
            for _, _, lowering, b in [c for c in cases if c[:2] == (ref, batch)]:
                key = case_key(prep or (ref, batch), lowering, b, cfg, run_id)
                if prep is None:
                    emit(key.record("error", f"prepare: {prep_error}", details={"stderr_tail": tail}))
                    continue
                if not avail[b]:
                    emit(key.record("skipped", f"{b} unavailable: {avail[b].reason}"))
                    continue
                if BACKENDS[b].zoo_only and not ref.is_zoo:
                    emit(key.record("skipped", f"{b} runs zoo models only (it needs the PyTorch module)"))
                    continue
                if prep.conv_transpose_nodes == 0 and lowering != "native":
                    emit(
                        key.record(
                            "skipped",
                            "no ConvTranspose node: the lowering leaves the model as it is "
                            "(its native case measures it)",
                            details={"lowering": {"convtranspose_nodes": 0, "lowered": 0, "declined": []}},
                        )
                    )
                    continue
                if BACKENDS[b].device == "cuda" and not cfg.build_without_gpu and not gpu_here():
                    emit(
                        key.record(
                            "skipped",
                            f"no CUDA GPU here ({cuda_probe().reason}): not built in this run "
                            "(`make build-cuda` builds the CUDA libraries without a GPU)",
                        )
                    )
                    continue
                if cfg.rpc_tracker and BACKENDS[b].remote_capable:
                    remote_cases.append(RemoteCase(prep, lowering, b, key))
                    continue
                if cfg.counter:
                    say(f"[{len(records)}/{total} {elapsed()}] running {key.case_id} ...")
                    emit(run_counted(prep, lowering, b, key))
                    continue
                if BACKENDS[b].compiles_ahead:
                    later.append((lowering, b, key))
                    continue
                emit(run_local(prep, lowering, b, key))
            if prep is not None:
                build_then_time(prep, later)
        if remote_cases:
            t0 = time.monotonic()
            facts = run_remote(remote_cases, cfg, run_id, build_dir, worker, run_case_isolated, emit, say)
            count("remote", t0)
            _say_farm(facts, say)
            log_dir.mkdir(parents=True, exist_ok=True)  # the remote phase's facts, beside the workers' logs
            safefs.write_atomic(log_dir / "farm.json", json.dumps(facts, indent=1, sort_keys=True))
        forms.clear(build_dir, run_id)  # kept when the run stops early: a resumed run compares with them
    finally:
        for w in workers.values():
            w.close()
        if cfg.counter and count_dir.is_dir():  # callgrind's end-of-process dumps; the counts are in records
            for f in count_dir.glob("callgrind.*"):
                f.unlink(missing_ok=True)
    return records
