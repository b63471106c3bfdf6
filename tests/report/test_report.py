"""Reports from hand-made run directories: pure functions, the numbers they derive, the HTML and plots."""

import dataclasses
import json
import re
import struct
from html.parser import HTMLParser

import pytest

from harness.core.markdown import cell_text, render_markdown
from harness.core.markdown import text as md_text
from harness.core.records import CaseKey, Numerics, ResultsWriter, write_json_atomic
from harness.core.rundir import read_run
from harness.core.tables import plain
from harness.measure.timing import latency_of
from harness.report import write_report
from harness.report.analysis import RunView
from harness.report.html import render_html
from harness.report.sections import build_report


def _lat(median, spread=0.1):
    """The record's Latency as the timer builds it (measure.timing.latency_of) from five samples whose
    median is `median` and whose p10/p90 are `median` -/+ `spread`."""
    return latency_of([median * (1 + spread * k) for k in (-1, -1, 0, 1, 1)])


def _num(rel_l2, passed):
    return Numerics(
        max_abs=rel_l2,
        max_rel=rel_l2,
        rel_l2=rel_l2,
        atol=1e-5,
        rtol=1e-3,
        rel_l2_tol=1e-5,
        policy="float32",
        passed=passed,
    )


def _rec(model, lowering, backend, status="ok", median=None, rel_l2=1e-7, size=32, reason="", **kw):
    flops = kw.pop("flops", 2_000_000)
    key = CaseKey(
        run_id="r",
        case_id=f"{model}@{size}/{lowering}/{backend}/b1",
        model=model,
        lowering=lowering,
        backend=backend,
        batch=1,
        input_shapes={"x": (1, 3, size, size)},
        size=size,
        flops=flops,
        min_bytes=100_000,
    )
    return key.record(
        status,
        reason,
        numerics=None if status in ("skipped", "error") else _num(rel_l2, status == "ok"),
        latency_ms=_lat(median) if median else None,
        gflops=flops / (median / 1e3) / 1e9 if median else None,
        flops_performed=flops,
        details={"lowering": {"convtranspose_nodes": 2, "lowered": 2, "declined": []}},
        **kw,
    )


RECORDS = [
    _rec("cae", "native", "ort-cpu", median=0.1),
    _rec("cae", "native", "tvm-llvm", median=1.5),
    _rec("cae", "phase", "ort-cpu", median=0.2),
    _rec("cae", "phase", "tvm-llvm", status="mismatch", median=0.05, rel_l2=3e-2, reason="rel_l2 3e-2"),
    _rec("cae", "gemm_col2im", "tvm-llvm", status="skipped", reason="tvm: no Col2Im"),
    _rec("cae", "native", "torch-cpu", median=0.3),
    _rec("unet", "native", "ort-cpu", median=2.0, size=64),
    _rec("unet", "native", "tvm-llvm", status="error", size=64, reason="compile: boom"),
]
META = {
    "schema": 1,
    "run_id": "r",
    "suite": "hand",
    "date": "2026-11-23T00:00:00Z",
    "commit": "abc",
    "plan": {},
    "machine": {"cpu_model": "Test CPU", "usable_cpus": 2},
    "versions": {"onnxruntime": "1.32.0"},
    "config": {"threads": 2, "timing": {"warmup": 1}},
    "calibration": {"fp32_peak_gflops": 100.0, "mem_bandwidth_gbs": 20.0, "threads": 2, "method": "test"},
}


@pytest.fixture
def run(tmp_path):
    write_json_atomic(tmp_path / "run.json", META)
    with ResultsWriter(tmp_path / "results.jsonl") as w:
        for r in RECORDS:
            w.append(r)
    return tmp_path


def test_analysis_best_verified_speedup_and_peak():
    v = RunView.of(META, RECORDS)
    best = v.best_verified("cae@32", 1)
    assert (best.lowering, best.backend) == ("native", "ort-cpu")  # the faster phase/tvm case mismatched
    assert v.best_verified("cae@32", 1, "tvm-llvm").lowering == "native"
    assert v.best_verified("unet@64", 1, "tvm-llvm") is None
    assert v.speedup(v.get("cae@32", 1, "native", "tvm-llvm")) == pytest.approx(0.1 / 1.5)
    assert v.pct_peak(v.get("cae@32", 1, "native", "ort-cpu")) == pytest.approx(100 * 20 / 100)  # 20 GFLOP/s


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_files_are_written_and_identical_when_regenerated(run):
    write_report(run)
    names = ["report.md", "report.html", "plots/latency.png", "plots/errors.png", "plots/roofline.png"]
    first = {n: (run / n).read_bytes() for n in names}
    for n in names[2:]:
        w, h = _png_size(first[n])
        assert w > 300 and h > 200
    for n in names:  # regenerated from the run's files alone: nothing of the first report is left to find
        (run / n).unlink()
    (run / "plots").rmdir()
    write_report(run)
    assert {n: (run / n).read_bytes() for n in names} == first


def test_html_is_self_contained_with_every_section(run):
    write_report(run)
    html = (run / "report.html").read_text()
    for section in (
        "Run summary",
        "Correctness",
        "Best verified configuration",
        "Latency",
        "Plots",
        "Skipped, failed and mismatching cases",
    ):
        assert section in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 3
    assert not re.search(r'(src|href)="(http|/|file:)', html)  # nothing loaded from elsewhere
    assert 'class="mismatch' in html and 'class="error' in html and 'class="skipped' in html
    assert "fp32 peak 100.0 GFLOP/s" in html
    assert "compile: boom" in html and "tvm: no Col2Im" in html


def test_markdown_has_best_per_backend_speedups_and_percent_of_peak(run):
    md = (write_report(run, html=False)).read_text()
    best = md.split("## Best verified configuration")[1].split("##")[0]
    cae = next(line for line in best.splitlines() if line.startswith("| cae@32"))
    assert "native 0.100 ms (1.00× ★)" in cae
    assert "native 1.500 ms (0.07×, 15.00× the best)" in cae
    assert "none verified (error)" in best
    detail = md.split("## Latency detail")[1]
    row = next(line for line in detail.splitlines() if "| cae@32 | 1 | native | ort-cpu |" in line)
    assert "| 20.00 | 20.0 |" in row  # GFLOP/s and % of the 100 GFLOP/s peak
    assert not (run / "report.html").exists()


def test_a_run_without_calibration_still_reports(tmp_path):
    meta = {k: v for k, v in META.items() if k != "calibration"}
    write_json_atomic(tmp_path / "run.json", meta)
    with ResultsWriter(tmp_path / "results.jsonl") as w:
        for r in RECORDS:
            w.append(r)
    write_report(tmp_path)
    assert "not measured" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "plots" / "roofline.png").exists()  # points without the ceilings


def test_calibration_measures_positive_ceilings():
    from harness.measure.calibrate import measure

    cal = measure(1)
    assert cal["fp32_peak_gflops"] > 0 and cal["mem_bandwidth_gbs"] > 0
    assert "torch.mm" in cal["method"] and set(cal["sgemm_gflops"]) == {"512", "1024", "2048"} and cal["threads"] == 1
    json.dumps(cal)


def test_tuning_coverage_section(tmp_path):
    tuned = _rec("cae", "native", "tvm-llvm-tuned", median=0.5)
    tuned = dataclasses.replace(
        tuned,
        details={
            **tuned.details,
            "tuned": "partly tuned",
            "tuning": {
                "state": "partly tuned",
                "tasks": 3,
                "tasks_tuned": 2,
                "untuned_tasks": ["fused_conv2d_add"],
            },
        },
    )
    skipped = _rec("cae", "phase", "tvm-llvm-tuned", status="skipped", reason="untuned: none of the workload's")
    write_json_atomic(tmp_path / "run.json", META)
    with ResultsWriter(tmp_path / "results.jsonl") as w:
        for r in RECORDS + [tuned, skipped]:
            w.append(r)
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    sec = md.split("## TVM tuning coverage")[1].split("\n## ")[0]
    assert "| `cae@32/native/tvm-llvm-tuned/b1` | partly tuned | 2/3 | fused_conv2d_add | 0.500 | 3.0× faster |" in sec
    assert "| `cae@32/phase/tvm-llvm-tuned/b1` | untuned | 0/? |" in sec
    assert "TVM tuning coverage" in (tmp_path / "report.html").read_text()


class _HtmlTables(HTMLParser):
    """The rows of every table of a page, each row the plain text of its cells; and the h2 headings."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.rows, self.headings, self._cells, self._text = [], [], None, None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._cells = []
        elif tag in ("td", "th", "h2"):
            self._text = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cells.append(self._text)
            self._text = None
        elif tag == "h2":
            self.headings.append(self._text)
            self._text = None
        elif tag == "tr":
            self.rows.append(self._cells)

    def handle_data(self, data):
        if self._text is not None:
            self._text += data


def _md_rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in md.splitlines() if line.startswith("|")]


def test_markdown_and_html_draw_the_same_tables(run):
    tuned = _rec("cae", "native", "tvm-llvm-tuned", median=0.5).with_details(
        tuning={"state": "tuned", "tasks": 3, "tasks_tuned": 3, "untuned_tasks": []}
    )
    with ResultsWriter(run / "results.jsonl") as w:
        w.append(tuned)
    extras = {
        "fuzz": {
            "cases": 9,
            "failing_cases": 1,
            "classes": [
                {
                    "class": "C1",
                    "backend": "tvm-llvm",
                    "lowering": "phase",
                    "attributes": ["group"],
                    "count": 1,
                    "explained_by": None,
                }
            ],
        }
    }
    report = build_report(read_run(run), extras)
    md, page = render_markdown(report), render_html(report)
    shared = report.shared_tables()
    assert len(shared) == 5  # best per engine, TVM against the runtimes, tuning coverage, fuzz, odd cases
    parsed, md_rows = _HtmlTables(page), _md_rows(md)
    for t in shared:
        assert [c.name for c in t.columns] in parsed.rows and [c.name for c in t.columns] in md_rows
        for row in t.rows:
            assert [c.text for c in row] in parsed.rows  # same cells, as the reader sees them
            assert [cell_text(c) for c in row] in md_rows
    for s in report.sections:
        if s.only is None and s.title:
            assert f"## {md_text(s.title)}" in md.splitlines() and plain(s.title) in parsed.headings
    best = next(t for t in shared if t.columns[-1].name == "tvm-llvm-tuned")
    star = next(c for row in best.rows for c in row if c.style == "best")
    assert star.text == "native 0.100 ms (1.00× ★)"
    assert f"| cae@32 | 1 | {star.text} |" in md and 'class="star">★' in page
    assert "**unexplained**" in md and "<strong>unexplained</strong>" in page


def test_non_finite_metrics_print_as_inf_and_nan(tmp_path):
    bad = _rec("cae", "phase", "ort-cpu", status="mismatch", median=0.2, reason="12 NaN | 3 Inf")
    bad = dataclasses.replace(
        bad,
        numerics=Numerics(
            max_abs=float("nan"),
            max_rel=float("nan"),
            rel_l2=float("inf"),
            atol=1e-5,
            rtol=1e-3,
            rel_l2_tol=1e-5,
            policy="float32",
            passed=False,
        ),
    )
    write_json_atomic(tmp_path / "run.json", META)
    with ResultsWriter(tmp_path / "results.jsonl") as w:
        for r in RECORDS[:1] + [bad]:
            w.append(r)
    read = read_run(tmp_path).records[1].numerics
    assert read.rel_l2 == float("inf") and read.max_abs != read.max_abs  # floats again, not strings
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| cae@32 | 1 | phase | **MISMATCH** inf (nan) |" in md
    assert "| `cae@32/phase/ort-cpu/b1` | mismatch | 12 NaN \\| 3 Inf |" in md  # the pipe escaped in its cell
    html = (tmp_path / "report.html").read_text()
    assert "inf ✗" in html and "rel_l2 inf, max abs nan — 12 NaN | 3 Inf" in html


def test_tvm_against_the_runtimes_and_where_the_time_goes(tmp_path):
    """The goal table (each engine's best verified case; TVM's as a ratio to min(ORT, OpenVINO)) and the
    per-layer profiles side by side, both from the records' own fields."""

    def prof(*layers):
        total = sum(ms for _, _, ms in layers)
        top = [{"node": n, "op": o, "ms": ms, "share": ms / total, "engine": n} for n, o, ms in layers]
        return {"total_ms": total, "layers": len(top), "top": top}

    def with_details(r, **d):
        return dataclasses.replace(r, details={**r.details, **d})

    records = [
        with_details(_rec("cae", "native", "ort-cpu", median=0.2), profile=prof(("conv1", "Conv", 0.12))),
        with_details(_rec("cae", "phase", "openvino-cpu", median=0.1), profile=prof(("ct", "Deconvolution", 0.05))),
        with_details(_rec("cae", "phase", "tvm-llvm", median=0.3), profile=prof(("ct", "ConvTranspose", 0.2))),
        _rec("cae", "native", "tvm-llvm", median=0.4),
        with_details(_rec("cae", "phase", "tvm-llvm-tuned", median=0.08), default_schedule={"tuned_share": 0.9}),
        _rec("cae", "native", "tvm-llvm-tuned", status="mismatch", median=0.01, rel_l2=1e-1),  # not verified
    ]
    write_json_atomic(tmp_path / "run.json", META)
    with ResultsWriter(tmp_path / "results.jsonl") as w:
        for r in records:
            w.append(r)
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    sec = md.split("## TVM against the CPU runtimes")[1].split("\n## ")[0]
    row = next(r for r in _md_rows(sec) if r and r[0] == "cae@32")
    assert row[2:] == [
        "0.200 (native)",
        "0.100 (phase)",
        "0.300 (phase)",
        "3.00×",
        "0.080 (phase)",
        "0.80×",  # the mismatching 0.01 ms case is not TVM's best
        "90%",
    ]
    prof_sec = md.split("## Where the time goes")[1].split("\n## ")[0]
    first = next(r for r in _md_rows(prof_sec) if r and r[0] == "1")
    assert first[1].startswith("conv1 (Conv) 0.120 ms, 100%") and first[3].startswith("ct (ConvTranspose) 0.200 ms")
    html = (tmp_path / "report.html").read_text()
    assert "TVM against the CPU runtimes" in html and "Where the time goes" in html


def test_the_report_says_what_sanitation_did_per_file_model(tmp_path):
    san = {
        "nodes_before": 15,
        "nodes_after": 3,
        "folded": {"Shape": 1, "Gather": 1, "Sqrt": 1},
        "opset": [11, 18],
        "validated": "onnxruntime: agrees with the original (max |Δ| 4.8e-07)",
        "uses": "sanitised",
    }
    recs = [
        dataclasses.replace(r, details={**r.details, "sanitation": san})
        for r in (_rec("codec", "native", "ort-cpu", median=0.1), _rec("codec", "phase", "ort-cpu", median=0.1))
    ]
    write_json_atomic(tmp_path / "run.json", META)
    with ResultsWriter(tmp_path / "results.jsonl") as w:
        for r in RECORDS[:1] + recs:
            w.append(r)
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Sanitation of the ONNX files" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| `codec@32`")]
    assert rows == [
        "| `codec@32` | 15 → 3 | Gather 1, Shape 1, Sqrt 1 | 11 → 18 | onnxruntime: agrees with the "
        "original (max \\|Δ\\| 4.8e-07) | sanitised |"
    ], rows
