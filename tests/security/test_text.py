"""Text from files shown to people: escaped for its medium in one place (harness/core/text.py), so a crafted
run directory or model cannot inject HTML, break a Markdown table, drive the terminal or crash the plots."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from harness.core import text

from ..helpers import convtranspose_model, run_cli, write_run

ANSI = "\x1b[1A\x1b[2K\r\x1b[32m✓ all verified\x1b[0m"


def _edit_records(run, **fields):
    lines = (run / "results.jsonl").read_text().splitlines()
    recs = [json.loads(ln) for ln in lines]
    for r in recs:
        r.update(fields)
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_a_crafted_run_id_cannot_add_lines_or_cells_to_report_md(tmp_path):
    run = write_run(tmp_path / "r")
    meta = json.loads((run / "run.json").read_text())
    meta["run_id"] = "x\n#!/bin/sh\nrm -rf ~ | evil |"
    (run / "run.json").write_text(json.dumps(meta))
    p = run_cli("report", str(run))
    assert p.returncode == 0, p.stderr
    md = (run / "report.md").read_text()
    assert not any(ln.startswith(("#!/bin/sh", "rm -rf")) for ln in md.splitlines())
    assert "#!/bin/sh" in md  # still shown, on its line, escaped


def test_markup_in_reason_and_model_fields_is_escaped_in_both_reports(tmp_path):
    run = write_run(tmp_path / "r", status={"cae@32/native/ort-cpu/b1": "error"})
    _edit_records(run, reason="<script>alert(1)</script> | x" + ANSI)
    p = run_cli("report", str(run))
    assert p.returncode == 0, p.stderr
    html = (run / "report.html").read_text()
    md = (run / "report.md").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<script>" not in md and "\x1b" not in md and "\x1b" not in html
    _assert_tables_keep_their_shape(md)


def _assert_tables_keep_their_shape(md: str) -> None:
    """Every row of every pipe table has as many cells as its header."""
    import re

    width = None
    for ln in md.splitlines():
        if not ln.startswith("|"):
            width = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", ln))
        width = width or cells
        assert cells == width, ln


@pytest.mark.parametrize("field", ["batch", "n"])
def test_a_record_whose_fields_have_the_wrong_type_is_a_one_line_error(tmp_path, field):
    """`batch` and `n` once carried `<script>` into report.html; a record's typed fields are checked."""
    run = write_run(tmp_path / "r")
    lines = (run / "results.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    if field == "n":
        rec["latency_ms"]["n"] = "<script>alert(1)</script>"
    else:
        rec[field] = "<script>alert(1)</script>"
    (run / "results.jsonl").write_text("\n".join([json.dumps(rec), *lines[1:]]) + "\n")
    p = run_cli("report", str(run))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "results.jsonl:1" in p.stderr and field in p.stderr
    assert not (run / "report.html").exists()


def test_a_model_name_with_dollars_is_drawn_as_plain_text(tmp_path):
    """matplotlib's mathtext raised on `$` in a label and `convtx report` crashed."""
    run = write_run(tmp_path / "r")
    _edit_records(run, model="cost $\\frac{$ x")  # mathtext: unbalanced braces
    p = run_cli("report", str(run))
    assert p.returncode == 0, p.stderr[-2000:]
    assert (run / "report.html").is_file()


def test_convtx_lower_prints_a_node_name_s_control_characters_as_escapes(tmp_path):
    rng = np.random.default_rng(0)
    m = convtranspose_model((1, 2, 4, 4), rng.standard_normal((2, 2, 3, 3)), strides=[2, 2])
    m.graph.node[0].name = "ct" + ANSI
    for i, d in enumerate(m.graph.input[0].type.tensor_type.shape.dim):  # symbolic: declined, with its name
        d.dim_param = f"d{i}"
    src = tmp_path / "m.onnx"
    onnx.save(m, str(src))
    p = run_cli("lower", str(src), "--lowering", "zero_insert", "-o", str(tmp_path / "o.onnx"))
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stdout + p.stderr and "\r" not in p.stdout + p.stderr
    assert "\\x1b" in p.stdout + p.stderr


@pytest.mark.parametrize(
    "s", ["a|b", "x\ny", "<img src=x onerror=alert(1)>", "`code`", "[link](javascript:x)", "\x1b[2K", "tab\there"]
)
def test_markdown_cells_hold_one_cell_of_one_line(s):
    cell = text.markdown_line(s)
    assert "\n" not in cell and "\x1b" not in cell
    assert "|" not in cell.replace("\\|", "")
    assert "<" not in cell.replace("\\<", "")


def test_terminal_text_has_no_control_characters_left():
    out = text.terminal("ok" + ANSI + "\u202e" + "\x07")
    assert all(c == "\t" or (c.isprintable() and c not in "\u202e") for c in out), repr(out)
