"""A run directory as a pandas DataFrame: one row per record, flat documented columns, proper dtypes.

`harness.load_run(RUN)` (the same function) is the way into notebooks and scripts; several runs concatenate
into one frame (`load_runs`). The columns, their dtypes and meaning are `COLUMNS` (README "Results as a
DataFrame" and docs/design.md list them); the frame is built from the typed records (core/records.py) and
run.json, never from the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.core.records import Record
from harness.core.rundir import Run, read_run

# (column, pandas dtype, meaning)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("run_id", "string", "run.json run_id"),
    ("commit", "string", "git commit the run was made at (run.json)"),
    ("date", "datetime64[ns, UTC]", "when the run started"),
    ("cpu", "string", "the machine's CPU model (run.json machine.cpu_model)"),
    ("model", "category", "zoo name or ONNX file stem"),
    ("size", "Int64", "the zoo model's spatial size (<NA> for ONNX files)"),
    ("batch", "Int64", "batch size"),
    ("lowering", "category", "the ConvTranspose lowering"),
    ("backend", "category", "engine × target id (ort-cpu, tvm-llvm, …)"),
    ("target", "string", "the compiler target where the engine has one (TVM's JSON target)"),
    ("threads", "Int64", "engine threads"),
    ("status", "category", "ok | mismatch | error | skipped"),
    ("reason", "string", "why, for anything but ok"),
    ("passed", "boolean", "the numerics check passed (<NA>: not checked)"),
    ("policy", "string", "the tolerance policy the check used"),
    ("rel_l2", "Float64", "relative L2 error against the float64 reference (worst output)"),
    ("max_abs", "Float64", "max absolute error"),
    ("max_rel", "Float64", "max relative error"),
    ("median_ms", "Float64", "latency median, ms per inference"),
    ("p10_ms", "Float64", "latency 10th percentile"),
    ("p90_ms", "Float64", "latency 90th percentile"),
    ("iqr_ms", "Float64", "latency interquartile range"),
    ("n", "Int64", "timed samples"),
    ("flops", "Int64", "useful FLOPs per inference (the same for every lowering)"),
    ("gflops", "Float64", "useful GFLOP/s at the median"),
    ("pct_peak", "Float64", "gflops as % of the machine's measured fp32 peak (run.json calibration)"),
    ("tuned_share", "Float64", "tvm-llvm-tuned: share of the kernel time in tuned kernels"),
    ("compile_s", "Float64", "seconds to compile (a cache hit is fast)"),
    ("engine_version", "string", "the engine's version as the record states it"),
    ("onnxruntime", "string", "onnxruntime version of the run"),
    ("apache_tvm", "string", "apache-tvm version of the run"),
    ("openvino", "string", "openvino version of the run"),
    ("torch", "string", "torch version of the run"),
    ("onnx", "string", "onnx version of the run"),
)
DTYPES = {name: dtype for name, dtype, _ in COLUMNS}


def row_of(rec: Record, meta: dict) -> dict:
    """One record as the frame's row (plain Python values, COLUMNS' names)."""
    n, lat, d = rec.numerics, rec.latency_ms, rec.details
    versions = meta.get("versions") or {}
    peak = (meta.get("calibration") or {}).get("fp32_peak_gflops")
    target = d.get("target")
    return {
        "run_id": rec.run_id,
        "commit": meta.get("commit"),
        "date": meta.get("date"),
        "cpu": (meta.get("machine") or {}).get("cpu_model"),
        "model": rec.model,
        "size": rec.size,
        "batch": rec.batch,
        "lowering": rec.lowering,
        "backend": rec.backend,
        "target": json.dumps(target, sort_keys=True) if isinstance(target, dict) else target,
        "threads": rec.threads,
        "status": rec.status,
        "reason": rec.reason or None,
        "passed": None if n is None else n.passed,
        "policy": None if n is None else n.policy,
        "rel_l2": None if n is None else n.rel_l2,
        "max_abs": None if n is None else n.max_abs,
        "max_rel": None if n is None else n.max_rel,
        "median_ms": None if lat is None else lat.median,
        "p10_ms": None if lat is None else lat.p10,
        "p90_ms": None if lat is None else lat.p90,
        "iqr_ms": None if lat is None else lat.iqr,
        "n": None if lat is None else lat.n,
        "flops": rec.flops,
        "gflops": rec.gflops,
        "pct_peak": 100.0 * rec.gflops / peak if rec.gflops is not None and peak else None,
        "tuned_share": (d.get("default_schedule") or {}).get("tuned_share"),
        "compile_s": rec.compile_s,
        "engine_version": d.get("engine_version"),
        "onnxruntime": versions.get("onnxruntime"),
        "apache_tvm": versions.get("apache-tvm"),
        "openvino": versions.get("openvino"),
        "torch": versions.get("torch"),
        "onnx": versions.get("onnx"),
    }


def frame_of(runs: Iterable[Run]):
    """The records of `runs` as one DataFrame (COLUMNS, in order, with their dtypes)."""
    return _typed([row_of(r, dict(run.meta)) for run in runs for r in run.records])


def frame_of_records(meta: Mapping, records: Iterable[Record]):
    """One run's records (as read, with its run.json) as the frame: what the report's tables are built from."""
    return _typed([row_of(r, dict(meta)) for r in records])


def _typed(rows: list[dict]):
    import pandas as pd

    df = pd.DataFrame(rows, columns=[c for c, _, _ in COLUMNS])
    for col, dtype in DTYPES.items():
        if dtype.startswith("datetime"):
            df[col] = pd.to_datetime(df[col], utc=True, errors="coerce")
        elif dtype == "category":
            df[col] = df[col].astype("string").astype("category")
        else:
            df[col] = df[col].astype(dtype)
    return df


def load_run(run_dir: str | Path):
    """One run directory as a DataFrame (one row per record; see COLUMNS)."""
    return frame_of([read_run(run_dir)])


def load_runs(*run_dirs: str | Path):
    """Several run directories as one DataFrame (`run_id` tells them apart)."""
    return frame_of([read_run(d) for d in run_dirs])
