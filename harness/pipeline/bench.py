"""`convtx bench` and `validate` as library calls: a plan run under a run id; for bench, into a run directory.

A run directory (docs/design.md, "run.json") is locked for the whole run; run.json is written before
calibration and the first case (status `running`, so a killed run can be resumed) and again when the sweep is
done (`complete`). `resume_bench` takes the plan and configuration from run.json and runs only the cases that
have no record. With `rounds`, complete runs of the same plan follow one another in OUT/round-01 …, each with
fresh worker processes (what the performance gate compares: harness/perfgate/compare.py).

Progress goes to `say` (stderr by default); the caller prints the result. The report is the caller's to
write (`report`, called while the run directory is still locked): this layer does not know harness/report.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.core import safefs
from harness.core.config import RunConfig
from harness.core.errors import ConvtxError
from harness.core.records import Record, ResultsWriter, write_json_atomic
from harness.core.rundir import RunDir
from harness.measure.machine import cpu_info, git_commit, new_run_id, utc_now, versions
from harness.pipeline.prepare import ModelRef
from harness.pipeline.sweep import Plan, run_plan

Say = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def writable_dir(path: Path, what: str) -> Path:
    """`path`, created if need be and writable, or a one-line error naming it as `what`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConvtxError(f"{path}: cannot create {what}: {e.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ConvtxError(f"{path}: {what} is not writable")
    return path


# ----------------------------------------------------------------------------------------- run.json plan


def _portable(path: str | None) -> str | None:
    """A model's path as run.json keeps it: relative to the working folder when it lies under it (a shared
    run.json does not carry this machine's absolute paths, and --resume from the same folder finds it)."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def plan_json(plan: Plan) -> dict[str, Any]:
    """run.json's `plan`: the model labels and, in `refs`, each model reference in full (for --resume)."""
    return {
        "models": [r.label for r in plan.refs],
        "refs": [{**asdict(r), "path": _portable(r.path)} for r in plan.refs],
        "lowerings": list(plan.lowerings),
        "backends": list(plan.backends),
        "batches": list(plan.batches),
    }


def plan_from_meta(meta: dict, run_dir: Path) -> tuple[Plan, RunConfig]:
    """The plan and configuration a run was started with (for --resume)."""
    try:
        p = meta["plan"]
        refs = tuple(
            ModelRef(
                safefs.component(r["name"], "model name", run_dir / "run.json"),
                r["size"],
                r["path"],
                tuple((n, tuple(sh)) for n, sh in r["shapes"]),
            )
            for r in p["refs"]
        )
        for r in refs:
            if r.size is not None and (isinstance(r.size, bool) or not isinstance(r.size, int)):
                raise ValueError(f"model {r.name}: size {r.size!r} is not an integer")
        plan = Plan(refs, tuple(p["lowerings"]), tuple(p["backends"]), tuple(p["batches"]))
        cfg = RunConfig.from_json(meta["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConvtxError(f"{run_dir / 'run.json'}: incomplete plan or config ({e}); cannot resume") from None
    return plan, cfg


# ---------------------------------------------------------------------------------- checks before running


def check_rpc(cfg: RunConfig, say: Say = _stderr) -> dict | None:
    """A remote run: the tracker answers and has servers under the key, or a one-line error now; what it
    said (run.json config.rpc)."""
    if not cfg.rpc_tracker:
        return None
    from harness.backends.tvm.remote import check_tracker

    info = {**check_tracker(cfg.rpc_tracker, cfg.rpc_key), "parallel": cfg.rpc_parallel}
    say(
        f"convtx: RPC tracker {info['tracker']}, key {info['key']!r}: {len(info['servers'])} server(s) "
        f"{', '.join(info['servers'])}"
    )
    return info


def check_counter(cfg: RunConfig, build: Path, say: Say = _stderr) -> dict | None:
    """bench --counts: valgrind, its header and gcc are here and valgrind runs Python, or a one-line error now;
    the identity of the counts (run.json config.counter)."""
    if not cfg.counter:
        return None
    from harness.measure.counting import CountingUnavailable, identity

    try:
        ident = identity(build)
    except CountingUnavailable as e:
        raise ConvtxError(f"--counts: {e}") from None
    say(
        f"convtx bench: counting with callgrind (valgrind {ident['valgrind']}; the CPU it presents: "
        f"{ident['cpu']['brand']}; metric: {ident['metric_text']}; {ident['calls']} counted calls per case)"
    )
    return ident


# ------------------------------------------------------------------------------------------------ validate


def run_validate(plan: Plan, cfg: RunConfig, build: Path, say: Say = _stderr) -> list[Record]:
    """`convtx validate`: every case of `plan` once, untimed (cfg.timing None), logs under build/logs/<run id>;
    no run directory."""
    check_rpc(cfg, say)
    run_id = "validate-" + new_run_id(Path.cwd())
    return run_plan(plan, cfg, run_id, build, build / "logs" / run_id, sink=lambda r: None, say=say)


# --------------------------------------------------------------------------------------------------- bench


@dataclass(frozen=True)
class BenchResult:
    path: Path  # the run directory; with rounds, the directory of round-NN run directories
    status: int  # 0, or 1: --require-gpu refused to report (a CUDA case did not run on the GPU)
    report: Path | None = None  # what `report` returned (one run that was reported)


@dataclass(frozen=True)
class BenchOptions:
    calibrate: bool = True  # measure fp32 peak and bandwidth (never for counts)
    require_gpu: bool = False  # refuse to report unless every CUDA case ran on the device
    report: Callable[[Path], Path] | None = None  # writes the report of a finished run directory


def run_bench(
    suite: str,
    plan: Plan,
    cfg: RunConfig,
    out: Path | None,
    build: Path,
    rounds: int = 1,
    opts: BenchOptions | None = None,
    say: Say = _stderr,
) -> BenchResult:
    """A new run of `plan` in `out` (default reports/runs/<run id>); with rounds > 1, `rounds` runs of it in
    OUT/round-01 … (status: the worst round's)."""
    opts = opts or BenchOptions()
    if rounds == 1:
        return _new_run(suite, plan, cfg, out, build, None, opts, say)
    out = out or Path("reports/runs") / new_run_id(Path.cwd())
    if out.exists() and any(out.glob("round-*")):
        raise ConvtxError(f"{out}: already holds rounds; choose another --out")
    writable_dir(out, "run directory")
    status = 0
    for i in range(1, rounds + 1):
        say(f"convtx bench: round {i} of {rounds}")
        status = max(status, _new_run(suite, plan, cfg, out / f"round-{i:02d}", build, (i, rounds), opts, say).status)
    return BenchResult(out, status)


def resume_bench(
    run_dir: Path,
    build: Path,
    opts: BenchOptions | None = None,
    say: Say = _stderr,
    rpc: tuple[str | None, str | None] = (None, None),
) -> BenchResult:
    """Finish an interrupted run: its plan and configuration from run.json, only the cases with no record.
    `rpc` is the command line's (tracker, key): a run.json may be someone else's, and resuming it sends
    compiled libraries to the tracker it names, so that tracker must be named again (docs/security.md)."""
    opts = opts or BenchOptions()
    rd = RunDir(run_dir)
    if rd.path.is_dir():
        safefs.refuse_links_in(rd.path)  # before anything is read from it or written into it
    meta = rd.read_meta()
    plan, cfg = plan_from_meta(meta, rd.path)
    if (cfg.rpc_tracker, cfg.rpc_key) != (rpc[0] or None, rpc[1] or None) and (cfg.rpc_tracker or rpc[0]):
        raise ConvtxError(
            f"{rd.meta_path}: the run used RPC tracker {cfg.rpc_tracker or 'none'} (key {cfg.rpc_key or '-'}), "
            f"the command line names {rpc[0] or 'none'}; a resumed run sends compiled libraries to its tracker, so "
            f"confirm it: --resume {rd.path} --rpc-tracker {cfg.rpc_tracker} --rpc-key {cfg.rpc_key}"
            if cfg.rpc_tracker
            else f"{rd.meta_path}: the run used no RPC tracker; drop --rpc-tracker/--rpc-key to resume it"
        )
    rd.lock()
    check_rpc(cfg, say)
    done = rd.repair_and_read()
    meta["resumed"] = meta.get("resumed", 0) + 1
    return _sweep(rd, meta, plan, cfg, done, build, opts, say)


def _new_run(
    suite: str,
    plan: Plan,
    cfg: RunConfig,
    out: Path | None,
    build: Path,
    round_: tuple[int, int] | None,
    opts: BenchOptions,
    say: Say,
) -> BenchResult:
    repo = Path.cwd()
    rpc = check_rpc(cfg, say)  # before anything is written: no tracker is a one-line error
    counter = check_counter(cfg, build, say)
    run_id = new_run_id(repo)
    if round_:
        run_id = f"{run_id}-r{round_[0]:02d}"
    rd = RunDir(out or Path("reports/runs") / run_id)
    if rd.results_path.exists():
        raise ConvtxError(
            f"{rd.path}: already holds a run (results.jsonl); choose another --out, or --resume {rd.path}"
        )
    writable_dir(rd.path, "run directory")
    rd.lock()
    meta = {
        "schema": 1,
        "run_id": run_id,
        "suite": suite,
        "date": utc_now(),
        "machine": cpu_info(),
        "versions": versions(),
        **git_commit(repo),
        "n_cases": plan.n_cases(),
        "plan": plan_json(plan),
        "config": {**cfg.to_json(), "rpc": rpc, "counter": counter},
    }
    if round_:
        meta["round"] = {"index": round_[0], "of": round_[1]}
    return _sweep(rd, meta, plan, cfg, [], build, opts, say)


def _calibrate(meta: dict, cfg: RunConfig, opts: BenchOptions, say: Say) -> None:
    """meta["calibration"], measured once per run (a resumed run keeps the first measurement)."""
    if "calibration" in meta:
        return
    if not opts.calibrate or cfg.counter:
        # counts need no fp32 peak or bandwidth: the roofline is a timing view
        meta["calibration"] = {"error": "not measured (--no-calibrate)", "threads": cfg.threads}
        return
    from harness.measure.calibrate import calibrate

    say(f"convtx bench: measuring this machine's fp32 peak and memory bandwidth ({cfg.threads} threads)")
    meta["calibration"] = cal = calibrate(cfg.threads)
    say(
        "convtx bench: "
        + (
            f"fp32 peak {cal['fp32_peak_gflops']:.1f} GFLOP/s, memory {cal['mem_bandwidth_gbs']:.1f} GB/s"
            if "error" not in cal
            else f"calibration failed: {cal['error']}"
        )
    )


def _sweep(
    rd: RunDir,
    meta: dict,
    plan: Plan,
    cfg: RunConfig,
    done_records: list[Record],
    build: Path,
    opts: BenchOptions,
    say: Say,
) -> BenchResult:
    """The locked run directory's cases that have no record, then run.json complete and the report."""
    try:
        done = frozenset(r.case_id for r in done_records)
        meta.update(status="running")
        write_json_atomic(rd.meta_path, meta)  # resumable from here on, calibration included
        t_cal = time.monotonic()
        _calibrate(meta, cfg, opts, say)
        cal_s = time.monotonic() - t_cal
        write_json_atomic(rd.meta_path, meta)
        t0 = time.monotonic()
        say(
            f"convtx bench: suite {meta['suite']}, {plan.n_cases()} cases ({len(done)} already recorded), "
            f"{cfg.threads} threads -> {rd.path}"
        )
        if cfg.inject_slowdown:
            say(f"convtx bench: TEST-ONLY injected slowdown {cfg.inject_slowdown} (recorded in each record)")
        from harness.pipeline.progress import history

        phases: dict[str, float] = {"calibrate": cal_s}
        with ResultsWriter(rd.results_path) as w:
            records = run_plan(
                plan, cfg, meta["run_id"], build, rd.path / "logs", sink=w.append, say=say, done=done,
                past=history(rd.path.parent, exclude=rd.path), phases=phases,
            )  # fmt: skip
        # where the sweep's time went (seconds, summed over resumed sessions): prepare, compile ahead, the cases
        # run one at a time (timing, checking, profiling), the remote phase
        for k, v in phases.items():
            meta.setdefault("phases_s", {})[k] = round(meta.get("phases_s", {}).get(k, 0.0) + v, 1)
        meta.update(
            status="complete", wall_s=round(meta.get("wall_s", 0) + time.monotonic() - t0, 1), finished=utc_now()
        )
        write_json_atomic(rd.meta_path, meta)
        if opts.require_gpu:
            off = [
                r
                for r in records
                if r.backend.endswith("-cuda") and r.status != "error" and "device_check" not in r.details
            ]
            if off:
                say(
                    f"convtx bench: refusing to report timings: {len(off)} CUDA case(s) did not run on the GPU "
                    f"(first: {off[0].case_id}: {off[0].status} {off[0].reason}); results kept in {rd.path}"
                )
                return BenchResult(rd.path, 1)
        t_rep = time.monotonic()
        report = opts.report(rd.path) if opts.report else None
        phases["report"] = time.monotonic() - t_rep
    finally:
        rd.unlock()
    bad = sum(1 for r in records if r.status in ("mismatch", "error"))
    say(
        "convtx bench: where the time went: "
        + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in phases.items() if v >= 0.5 or k == "cases")
    )
    say(
        f"convtx bench: {len(records)} cases in {time.monotonic() - t0:.0f} s "
        f"({bad} mismatching or failed)" + (f"; report: {report}" if report else f" -> {rd.path}")
    )
    return BenchResult(rd.path, 0, report)
