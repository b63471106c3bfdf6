"""A run directory in other tools' formats (`convtx export RUN_DIR --format … -o FILE`):

- `csv`: the DataFrame of harness/report/frame.py (COLUMNS), one row per record;
- `pytest-benchmark`: the JSON `pytest --benchmark-json` writes, so that `pytest-benchmark compare`, the
  dashboards and github-action-benchmark read convtx runs as they read any pytest-benchmark run. Every timed
  case is one benchmark named after its case id, its statistics computed by pytest-benchmark's own `Stats`
  from the case's samples (seconds, as pytest-benchmark counts them); `machine_info` and `commit_info` come
  from run.json, and `extra_info` carries the numerics verdict and metrics, so a consumer can refuse a fast
  but wrong case.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from harness.core import safefs
from harness.core.errors import ConvtxError
from harness.core.rundir import Run, read_run
from harness.report.frame import frame_of, row_of

FORMATS = ("csv", "pytest-benchmark")
# the frame's columns each benchmark's extra_info carries: the verdict beside the time
EXTRA_INFO = (
    "status",
    "passed",
    "policy",
    "rel_l2",
    "max_abs",
    "reason",
    "gflops",
    "threads",
    "engine_version",
    "run_id",
)


def _stats(samples_ms) -> dict:
    from pytest_benchmark.stats import Stats

    s = Stats()
    for v in samples_ms:
        s.update(v / 1e3)
    out = s.as_dict()
    out["data"] = list(s.data)
    out["iterations"] = 1
    return out


def pytest_benchmark_json(run: Run) -> dict:
    """The run as pytest-benchmark's JSON document (timed cases only; a case without samples has no stats)."""
    import pytest_benchmark

    meta = dict(run.meta)
    machine = meta.get("machine") or {}
    versions = meta.get("versions") or {}
    benchmarks = []
    for r in run.records:
        lat = r.latency_ms
        if lat is None or not lat.samples:
            continue
        row = row_of(r, meta)
        name = r.case_id
        benchmarks.append(
            {
                "group": f"{r.model}@{r.size}" if r.size is not None else r.model,
                "name": name,
                "fullname": f"convtx::{name}",
                "params": {"lowering": r.lowering, "backend": r.backend, "batch": r.batch},
                "param": f"{r.lowering}-{r.backend}-b{r.batch}",
                "extra_info": {k: row[k] for k in EXTRA_INFO},
                "options": {
                    "disable_gc": False,
                    "timer": "time.perf_counter",
                    "min_rounds": lat.n,
                    "max_time": None,
                    "min_time": None,
                    "warmup": True,
                },
                "stats": _stats(lat.samples),
            }
        )
    return {
        "machine_info": {
            "node": "",
            "processor": machine.get("machine", ""),
            "machine": machine.get("machine", ""),
            "python_compiler": "",
            "python_implementation": platform.python_implementation(),
            "python_implementation_version": versions.get("python", ""),
            "python_version": versions.get("python", ""),
            "python_build": [],
            "release": "",
            "system": machine.get("system", ""),
            "cpu": {
                "brand_raw": machine.get("cpu_model", ""),
                "count": machine.get("logical_cpus"),
                "flags": machine.get("flags", []),
                "hz_advertised_friendly": f"{machine.get('cpu_mhz', 0) / 1000:.2f} GHz",
            },
            "convtx": {"run_id": meta.get("run_id"), "suite": meta.get("suite"), "versions": versions},
        },
        "commit_info": {
            "id": meta.get("commit") or "unknown",
            "time": None,
            "author_time": None,
            "dirty": bool(meta.get("dirty")),
            "project": "convtx",
            "branch": "(unknown)",
        },
        "benchmarks": benchmarks,
        "datetime": meta.get("date"),
        "version": pytest_benchmark.__version__,
    }


def export_run(run_dir: str | Path, fmt: str, out: str | Path) -> tuple[Path, int]:
    """Write the run at `run_dir` as `fmt` to `out`; returns (out, number of rows or benchmarks)."""
    if fmt not in FORMATS:
        raise ConvtxError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    run = read_run(run_dir)
    out = Path(out)
    if fmt == "csv":
        df = frame_of([run])
        safefs.write_atomic(out, df.to_csv(index=False))
        return out, len(df)
    doc = pytest_benchmark_json(run)
    if not doc["benchmarks"]:
        raise ConvtxError(f"{run.path}: no timed case to export (a validate or counts run has no samples)")
    safefs.write_atomic(out, json.dumps(doc, indent=1) + "\n")
    return out, len(doc["benchmarks"])
