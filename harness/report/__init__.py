"""Reports are pure functions of a run directory: the same results files give the same bytes.

`write_report(RUN)` writes RUN/report.md (fits a PR comment), RUN/report.html (self-contained, plots
embedded) and RUN/plots/*.png — both reports drawn from one model of the run (report/sections.py builds
it, core/tables.py defines it)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.core import safefs
from harness.core.errors import ConvtxError
from harness.core.markdown import render_markdown
from harness.core.rundir import Run, read_run
from harness.report.analysis import RunView
from harness.report.html import render_html
from harness.report.sections import build_report


def load_run(run_dir: Path) -> Run:
    """The run directory as `read_run` reads it (one-line ConvtxError on a bad one)."""
    return read_run(run_dir)


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
    safefs.write_atomic(path, data)


def write_report(run_dir: Path, html: bool = True) -> Path:
    """Write the reports; returns the path of report.md. `html=False` skips the HTML and plots (fast)."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    safefs.refuse_links_in(run_dir)  # a received run directory: nothing is written through a link in it
    plots = None
    if html:
        from harness.report.plots import render_plots

        plots = render_plots(RunView.of(run.meta, list(run.records)))
    report = build_report(run, load_extras(run_dir), plots)
    out = run_dir / "report.md"
    _write(out, render_markdown(report).encode("utf-8"))
    if html:
        plot_dir = safefs.ensure_dir(run_dir / "plots")
        for name, png in plots.items():
            _write(plot_dir / f"{name}.png", png)
        _write(run_dir / "report.html", render_html(report).encode("utf-8"))
    return out
