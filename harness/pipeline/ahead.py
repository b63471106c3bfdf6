"""Compile before you time: a sweep's expensive builds, in parallel across this machine's cores, before any
case of theirs is timed (docs/design.md, "The sweep").

The engines whose compile is seconds to a minute and cached by content (TVM: `Backend.compiles_ahead`) build a
model's cases here, one worker process per usable core; each case is then timed alone on a quiet machine, where
its compile is a cache hit. A build that would have to measure on this machine (a TVM kernel without a kept
default-schedule decision, `MeasureLater`) is not measured beside another build: it is built again afterwards,
alone. A case whose build fails or is skipped ends here, with the record its build gave.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig
from harness.core.records import CaseKey, Record
from harness.measure.machine import usable_cpus
from harness.pipeline.worker import WorkerClient


def run_pool(items: Iterable[Any], slots: list[Any], fn: Callable[[Any, Any], None]) -> None:
    """`fn(slot, item)` for every item, in order, one thread per slot (each slot serves one item at a time).
    Worker processes a slot uses must have been started on the calling thread (WorkerClient.start)."""
    work = deque(items)
    lock = threading.Lock()

    def loop(slot: Any) -> None:
        while True:
            with lock:
                if not work:
                    return
                item = work.popleft()
            fn(slot, item)

    threads = [threading.Thread(target=loop, args=(slot,), daemon=True) for slot in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@dataclass(frozen=True)
class AheadCase:
    prep: Any  # harness.pipeline.prepare.Prepared
    lowering: str
    backend: str
    key: CaseKey
    expected_s: float = 0.0  # what its build took before (earlier runs' records), for longest-first order


def compile_local(
    cases: list[AheadCase],
    cfg: RunConfig,
    run_id: str,
    build_dir: Path,
    worker: Callable[[str, str, int], WorkerClient],
    run_isolated: Callable[..., Record],
    say: Callable[[str], None],
) -> dict[str, Record]:
    """Build `cases` (compile only) on min(usable cores, cases) workers, longest expected first, kernels that need
    measuring deferred; then the deferred ones again, one at a time, measuring. Returns case id -> the build's
    record. `worker(backend, name, slot)` gives the worker of slot `slot` for a backend."""
    n = max(1, min(usable_cpus(), len(cases)))
    ahead_cfg = replace(cfg, compile_only=True, defer_measurement=n > 1)
    backends = sorted({c.backend for c in cases})
    clients = {(b, i): worker(b, b if i == 0 else f"{b}+compile-{i + 1}", i) for b in backends for i in range(n)}
    for w in clients.values():
        w.start()  # on this thread: a worker dies with the thread that started it
    out: dict[str, Record] = {}
    lock = threading.Lock()

    def build(slot: int, c: AheadCase) -> None:
        rec = run_isolated(
            clients[(c.backend, slot)], c.prep, c.lowering, c.backend, ahead_cfg, run_id, build_dir, c.key
        )
        with lock:
            out[c.key.case_id] = rec

    order = sorted(cases, key=lambda c: -c.expected_s)  # stable: the plan's order among equals
    run_pool(order, list(range(n)), build)
    deferred = [c for c in order if out[c.key.case_id].details.get("deferred")]
    if deferred:
        say(
            f"convtx: {len(deferred)} build(s) need kernels measured on this machine: built again one at a time, "
            "on a quiet machine"
        )
        alone = replace(cfg, compile_only=True, defer_measurement=False)
        for c in deferred:
            out[c.key.case_id] = run_isolated(
                clients[(c.backend, 0)], c.prep, c.lowering, c.backend, alone, run_id, build_dir, c.key
            )
    return out
