"""`convtx tune`: MetaSchedule-tune models for TVM into the committed database (tuning/).

Each model is prepared (export, inputs, float64 reference) in a worker process, and each of its lowerings is
tuned in a fresh interpreter (`python -m harness.backends.tvm drive SPEC`, which reports one JSON line):
torch and TVM never share a process. One workload TVM cannot take fails alone; the others go on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.backends.tvm.tuning import TvmLlvmTuned
from harness.core.errors import ConvtxError
from harness.pipeline.case import lowered_path, rewritten_path
from harness.pipeline.prepare import ModelRef, Prepared
from harness.pipeline.sweep import model_ref
from harness.pipeline.worker import WorkerClient, WorkerDied


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def prepare_isolated(ref: ModelRef, batch: int, seed: int, build: Path) -> Prepared:
    """Export + inputs + reference in a worker process (keeps torch out of a process that loads TVM)."""
    w = WorkerClient("prepare", {}, build / "logs" / "worker-prepare.log")
    try:
        ans = w.request(
            {"op": "prepare", "ref": asdict(ref), "batch": batch, "seed": seed, "build_dir": str(build)}, 900.0
        )
    except WorkerDied as e:
        raise ConvtxError(f"{ref.label}: preparing the model failed: {e}") from None
    finally:
        w.close()
    if not ans.get("ok"):
        raise ConvtxError(f"{ref.label}: preparing the model failed: {ans['error']}")
    return Prepared.from_json(ans["prepared"])


@dataclass(frozen=True)
class Tuned:
    workloads: tuple[dict[str, Any], ...]  # the tuning child's report per (model, lowering) tuned
    failed: tuple[str, ...]  # "<model>/<lowering>: why" for each that failed
    seconds: float

    @property
    def db(self) -> str | None:
        """The database the workloads were tuned into."""
        return self.workloads[0]["db"] if self.workloads else None


def tune(
    models: list[str],
    lowerings: list[str],
    target: dict | None,
    trials: int,
    budget_s: float | None,
    threads: int,
    seed: int,
    build: Path,
    say: Callable[[str], None] = _stderr,
    rpc: dict | None = None,
) -> Tuned:
    """Every model (zoo ref or .onnx path, at batch 1) under every lowering, `trials` MetaSchedule trials per
    workload, all within `budget_s` seconds of wall clock (None: no budget); `target` None: this host."""
    t_all = time.monotonic()
    results, failed = [], []
    for m in models:
        ref = model_ref(m, {})
        prep = prepare_isolated(ref, 1, seed, build)
        for lw in lowerings:
            if lw == "gemm_col2im":
                say(f"[tune] {ref.label} / {lw}: skipped (TVM has no Col2Im)")
                continue
            if budget_s is not None and time.monotonic() - t_all >= budget_s:
                say(f"[tune] {ref.label} / {lw}: skipped, the budget is spent")
                continue
            path, _ = lowered_path(prep, lw, build)
            path, _ = rewritten_path(path, TvmLlvmTuned.needs_rewrites, build)
            try:
                res = _tune_in_child(
                    ref.label,
                    lw,
                    path,
                    prep,
                    target,
                    trials,
                    None if budget_s is None else budget_s - (time.monotonic() - t_all),
                    threads,
                    build,
                    rpc,
                )
            except ConvtxError as e:  # one workload TVM cannot take must not stop the others
                failed.append(f"{ref.label}/{lw}: {e}")
                say(f"[tune] {ref.label} / {lw}: FAILED — {e}")
                continue
            results.append(res)
            say(
                f"[tune] {ref.label} / {lw}: {res['before']['tasks_tuned']}/{res['before']['tasks']} -> "
                f"{res['after']['tasks_tuned']}/{res['after']['tasks']} tasks in the database "
                f"({res['after']['state']}), {res['seconds']:.0f} s"
                f"{', stopped by the budget' if res['stopped_by_budget'] else ''}"
            )
    return Tuned(tuple(results), tuple(failed), time.monotonic() - t_all)


def workload_spec(
    label: str, lowering: str, path: str, prep: Prepared, target, threads: int, build: Path, rpc: dict | None = None
) -> dict:
    """What a TVM child process (harness/backends/tvm/tuning.py: drive, survey, tune-tasks) is told of a
    workload: the lowered file, its inputs, the target (None: this host), threads, where to work, and the RPC
    farm that measures candidates (None: this host)."""
    return {
        "rpc": rpc,
        "label": label,
        "lowering": lowering,
        "onnx": path,
        "shapes": {k: list(v) for k, v in prep.input_shapes.items()},
        "dtypes": prep.input_dtypes,
        "target": target,
        "threads": threads,
        "work_root": str(build / "tuning"),
        "decisions_dir": str(build / "compiled"),
    }


def _tune_in_child(label, lowering, path, prep, target, trials, budget_s, threads, build, rpc=None) -> dict:
    """Task timing and tuning import TVM: done in a fresh interpreter, which reports a JSON result."""
    spec = {
        **workload_spec(label, lowering, path, prep, target, threads, build, rpc),
        "trials": trials,
        "budget_s": budget_s,
    }
    env = {**os.environ, "TVM_NUM_THREADS": str(threads)}
    p = subprocess.run(
        [sys.executable, "-m", "harness.backends.tvm", "drive", json.dumps(spec)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    if p.returncode != 0:
        raise ConvtxError(f"tuning failed (exit {p.returncode}; see the lines above)")
    return json.loads(p.stdout.strip().splitlines()[-1])
