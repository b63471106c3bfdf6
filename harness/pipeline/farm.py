"""A remote sweep on every device of a TVM RPC tracker at once (docs/rpc.md, "Scale-out").

1. Probe: each server registered under the key is asked what it is (short sessions, held together so the
   tracker hands out each server once). Servers that differ are said at once; every record names its server
   and machine, and the report groups them, so no median mixes two kinds of device.
2. Compile ahead: every case is built here for each kind of machine the probe found, through the
   content-addressed cache, in parallel across this host's cores, before any device waits; a case then only
   loads its library on the device. A case that cannot be built (or needs a GPU no server has) gets its record
   here and never takes a device.
3. Dispatch: as many cases in flight as servers (or `--rpc-parallel N`), each in its own worker process and
   its own session; the tracker hands each session a free server, so no two cases share a device. A server
   that registers mid-sweep adds a slot. Records reach the sweep's one writer in the order they finish.
4. Faults: a case whose server is lost mid-case (RemoteLost) runs once more, on the server the tracker hands
   out next; its record says so (`details.retry`). A second loss is the case's error record.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from harness.backends import BACKENDS
from harness.core.config import RunConfig
from harness.core.records import CaseKey, Record
from harness.measure.machine import usable_cpus
from harness.pipeline.ahead import run_pool
from harness.pipeline.prepare import Prepared
from harness.pipeline.worker import WorkerClient, WorkerDied

SLOT_CHECK_S = 2.0  # how often the dispatcher asks the tracker whether servers joined


@dataclass(frozen=True)
class RemoteCase:
    prep: Prepared
    lowering: str
    backend: str
    key: CaseKey
    lost: Record | None = None  # the first attempt's error record, when this is the retry


def _registered(cfg: RunConfig) -> list[str]:
    from harness.backends.tvm.remote import servers_for, tracker_summary
    from harness.core.errors import ConvtxError

    try:
        return servers_for(tracker_summary(cfg.rpc_tracker), cfg.rpc_key)
    except ConvtxError:
        return []


def _machine_text(desc: dict) -> str:
    text = ", ".join(f"{k} {desc[k]}" for k in ("cpu", "triple", "threads") if k in desc) or "not reported"
    if desc.get("cuda"):
        text += f", GPU {desc['cuda'].get('name')}"
    return text


def run_remote(
    cases: list[RemoteCase],
    cfg: RunConfig,
    run_id: str,
    build_dir: Path,
    worker: Callable[[str, dict], WorkerClient],
    run_isolated: Callable[..., Record],
    emit: Callable[[Record], None],
    say: Callable[[str], None],
) -> dict:
    """Run `cases` on the key's servers; every record goes to `emit` from this (the caller's) thread. Returns
    the sweep's farm facts (servers, machines, phase times), which the caller logs."""
    env: dict[str, str] = {}
    for b in sorted({c.backend for c in cases}):  # one worker serves every remote backend: their build settings
        env.update(BACKENDS[b].worker_env(cfg))
    facts: dict = {"servers_registered": _registered(cfg)}
    n = len(facts["servers_registered"])
    # 1. probe
    machines: dict[str, dict] = {}
    t0 = time.monotonic()
    try:
        ans = worker("rpc-probe", {}).request(
            {"op": "rpc_probe", "tracker": cfg.rpc_tracker, "key": cfg.rpc_key, "n": max(n, 1)}, 120.0
        )
        machines = ans.get("machines", {}) if ans.get("ok") else {}
    except WorkerDied as e:
        say(f"convtx: probing the servers failed ({e}); each case compiles for the server it gets")
    kinds = {json.dumps(d, sort_keys=True): d for d in machines.values()}
    facts.update(machines=machines, probe_s=round(time.monotonic() - t0, 2))
    say(
        f"convtx: {len(machines)} server(s) under key {cfg.rpc_key!r}: "
        + "; ".join(f"{s}: {_machine_text(d)}" for s, d in sorted(machines.items()))
    )
    if len(kinds) > 1:
        say(
            f"convtx: warning: the servers under key {cfg.rpc_key!r} are not alike ({len(kinds)} kinds of machine): "
            "each case runs on one server, its record names the server and what it is, and the report groups "
            "cases by machine; compare latencies within one machine only"
        )
    gpu_kinds = [d for d in kinds.values() if d.get("cuda")]
    # the dispatch slots' workers start now and import the engines while the compile-ahead runs: a device
    # never waits for a worker's start-up either
    backends = sorted({c.backend for c in cases})
    first = min(cfg.rpc_parallel or 10**6, max(1, len(machines) or n))
    slots = [worker(f"rpc-{i + 1}", env) for i in range(first)]
    for w in slots:
        w.start()  # on this thread: a worker dies with the thread that started it (WorkerClient.start)
    warming = [threading.Thread(target=_warm, args=(w, backends), daemon=True) for w in slots]
    for t in warming:
        t.start()
    # 2. compile ahead (cases that cannot run end here)
    t1 = time.monotonic()
    todo: list[RemoteCase] = []
    jobs: list[tuple[RemoteCase, dict]] = []
    for c in cases:
        needs_gpu = getattr(BACKENDS[c.backend], "device", "cpu") == "cuda"
        if needs_gpu and machines and not gpu_kinds:
            emit(
                c.key.record(
                    "skipped",
                    f"no server under key {cfg.rpc_key!r} shows a CUDA GPU (servers: {', '.join(sorted(machines))}): "
                    "a tvm-cuda case needs one",
                )
            )
            continue
        todo.append(c)
        jobs.extend((c, d) for d in (gpu_kinds if needs_gpu else kinds.values()))
    failed: dict[str, Record] = {}
    if jobs:
        failed = _compile_ahead(jobs, cfg, run_id, build_dir, lambda name: worker(name, env), run_isolated)
    for c in todo:
        if c.key.case_id in failed:
            emit(failed[c.key.case_id])
    todo = [c for c in todo if c.key.case_id not in failed]
    for t in warming:
        t.join()
    facts.update(compiled=len(jobs), compile_s=round(time.monotonic() - t1, 2))
    if jobs:
        say(
            f"convtx: compiled ahead {len(jobs)} case x machine builds in {facts['compile_s']:.1f} s "
            f"({len(failed)} case(s) ended there); dispatching {len(todo)} case(s)"
        )
    # 3. dispatch
    t2 = time.monotonic()
    facts["dispatch"] = _dispatch(
        todo, cfg, run_id, build_dir, lambda name: worker(name, env), run_isolated, emit, say, slots
    )
    facts["dispatch_s"] = round(time.monotonic() - t2, 2)
    return facts


def _warm(w: WorkerClient, backends: list[str]) -> None:
    try:
        w.request({"op": "load", "backends": backends}, 600.0)
    except WorkerDied:
        pass  # its first case starts it again, and says what went wrong there


def _compile_ahead(jobs, cfg, run_id, build_dir, worker, run_isolated) -> dict[str, Record]:
    """Build every (case, machine) here, in parallel across the host's cores; the records of cases whose build
    did not succeed (skipped or error: the same would happen on the device), keyed by case."""
    lock = threading.Lock()
    failed: dict[str, Record] = {}
    n = max(1, min(usable_cpus(), len(jobs)))
    clients = [worker(f"compile-{i + 1}") for i in range(n)]  # created here: the factory is not thread-safe
    for w in clients:
        w.start()  # and started here: a worker dies with the thread that started it

    def build(w: WorkerClient, job) -> None:
        c, desc = job
        with lock:
            if c.key.case_id in failed:
                return
        try:
            rec = run_isolated(
                w, c.prep, c.lowering, c.backend, replace(cfg, compile_only=True, rpc_machine=desc), run_id,
                build_dir, c.key,
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001 — the case still gets its chance on the device
            rec = c.key.record("ok", f"compile ahead failed here ({type(e).__name__}: {e}); built on dispatch")
        if rec.status != "ok":
            with lock:
                failed.setdefault(c.key.case_id, rec.with_details(compiled_ahead_for=desc))

    run_pool(jobs, clients, build)
    return failed


def _longest_first(todo: list[RemoteCase]) -> list[RemoteCase]:
    """Cases in decreasing order of their model's FLOPs (a stable sort: the plan's order among equals), so that
    the longest cases start first and short ones fill the servers' last gaps (longest-processing-time-first
    scheduling); a model without a FLOP count goes last."""
    return sorted(todo, key=lambda c: -((c.prep.flops or 0) if c.prep is not None else 0))


def _dispatch(todo, cfg, run_id, build_dir, worker, run_isolated, emit, say, ready=()) -> dict:
    """The cases on the servers, as many in flight as there are servers (capped by --rpc-parallel), longest
    first."""
    work: deque[RemoteCase] = deque(_longest_first(todo))
    lock = threading.Lock()
    results: queue.Queue = queue.Queue()
    cap = cfg.rpc_parallel or 10**6
    threads: list[threading.Thread] = []
    per_server: Counter = Counter()
    retried = 0

    def slot(w: WorkerClient) -> None:
        while True:
            with lock:
                if not work:
                    return
                c = work.popleft()
            try:
                rec = run_isolated(w, c.prep, c.lowering, c.backend, cfg, run_id, build_dir, c.key)
            except Exception as e:  # noqa: BLE001 — a record must come back for every case
                rec = c.key.record("error", f"dispatch: {type(e).__name__}: {e}"[:500])
            lost = rec.details.get("remote_lost")
            if rec.status == "error" and lost and c.lost is None:
                with lock:
                    work.appendleft(replace(c, lost=rec))  # once more, on the server the tracker hands out next
                results.put(("retry", rec))
                continue
            if c.lost is not None:
                first = c.lost.details.get("remote_lost") or {}
                rec = rec.with_details(retry={"after": c.lost.reason, "lost_server": first.get("server")})
            results.put(("done", rec))

    spare = list(ready)  # workers started (and warmed) ahead

    def add_slot() -> None:
        i = len(threads) + 1
        # the remote cases' workers: engine threads run on the servers, not here
        w = spare.pop(0) if spare else worker(f"rpc-{i}")
        w.start()  # on this (the dispatcher's) thread: see WorkerClient.start
        t = threading.Thread(target=slot, args=(w,), daemon=True)
        threads.append(t)
        t.start()

    total = len(todo)
    done = 0
    last_check = 0.0
    while done < total:
        if time.monotonic() - last_check >= SLOT_CHECK_S:
            last_check = time.monotonic()
            want = min(cap, max(1, len(_registered(cfg))))
            alive = sum(t.is_alive() for t in threads)
            with lock:
                pending = len(work)
            for _ in range(min(want - alive, pending)):
                add_slot()
        try:
            kind, rec = results.get(timeout=0.5)
        except queue.Empty:
            continue
        if kind == "retry":
            retried += 1
            say(f"convtx: {rec.case_id}: {rec.reason[:200]} — running it once more on another server")
            continue
        done += 1
        server = (rec.details.get("remote") or {}).get("server")
        if server:
            per_server[server] += 1
        emit(rec)
    for t in threads:
        t.join(timeout=5)
    return {"slots": len(threads), "cases_per_server": dict(per_server), "retried": retried}
