"""Reports are pure functions of a run directory: the same results files give the same bytes.

`write_report(RUN)` writes RUN/report.md (fits a PR comment), RUN/report.html (self-contained, plots
embedded) and RUN/plots/*.png."""
from __future__ import annotations

import json
from pathlib import Path

from harness.core.errors import ConvtxError
from harness.report.analysis import RunView
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.core.records import read_results


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


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_report(run_dir: Path, html: bool = True) -> Path:
    """Write the reports; returns the path of report.md. `html=False` skips the HTML and plots (fast)."""
    run_dir = Path(run_dir)
    meta, records = load_run(run_dir)
    extras = load_extras(run_dir)
    out = run_dir / "report.md"
    _write(out, render_markdown(meta, records, extras).encode("utf-8"))
    if html:
        from harness.report.plots import render_plots
        plots = render_plots(RunView.of(meta, records))
        plot_dir = run_dir / "plots"
        plot_dir.mkdir(exist_ok=True)
        for name, png in plots.items():
            _write(plot_dir / f"{name}.png", png)
        _write(run_dir / "report.html", render_html(meta, records, extras, plots).encode("utf-8"))
    return out
