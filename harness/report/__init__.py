"""Reports are pure functions of a run directory: the same results files give the same bytes."""
from __future__ import annotations

import json
from pathlib import Path

from harness.errors import ConvtxError
from harness.report.markdown import render_markdown
from harness.results import read_results


def load_run(run_dir: Path) -> tuple[dict, list]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConvtxError(f"{run_dir}: not a run directory (expected reports/runs/<run-id>/)")
    meta_path = run_dir / "run.json"
    if not meta_path.exists():
        raise ConvtxError(f"{run_dir}: no run.json (not a convtx run directory)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise ConvtxError(f"{meta_path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return meta, read_results(run_dir / "results.jsonl")


def load_extras(run_dir: Path) -> dict:
    """Summaries filed into the run directory by `convtx conformance --out RUN/conformance` and
    `convtx fuzz --out RUN/fuzz`, when present."""
    extras = {}
    for key, rel in (("conformance", "conformance/conformance.json"), ("fuzz", "fuzz/summary.json")):
        path = Path(run_dir) / rel
        if path.exists():
            try:
                extras[key] = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ConvtxError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return extras


def write_report(run_dir: Path) -> Path:
    meta, records = load_run(run_dir)
    out = Path(run_dir) / "report.md"
    tmp = out.with_name("report.md.tmp")
    tmp.write_text(render_markdown(meta, records, load_extras(run_dir)), encoding="utf-8")
    tmp.replace(out)
    return out
