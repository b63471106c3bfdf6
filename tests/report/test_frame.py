"""A run as a pandas DataFrame (harness.load_run) and in other tools' formats (convtx export --format):
the columns and dtypes are the documented ones, several runs concatenate, and the pytest-benchmark file is
one that pytest-benchmark's own CLI reads and compares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import harness
from harness.report.frame import COLUMNS

from ..helpers import CASES, run_cli, write_run


def _runs(tmp_path):
    a = write_run(tmp_path / "run-a", seed=1, status={"m@1/phase/ort-cpu/b1": "mismatch"})
    b = write_run(tmp_path / "run-b", seed=2, scale={"m@1/native/tvm-llvm/b1": 0.5})
    return a, b


def test_a_run_is_one_row_per_record_with_the_documented_columns_and_dtypes(tmp_path):
    a, _ = _runs(tmp_path)
    df = harness.load_run(a)
    assert list(df.columns) == [c for c, _, _ in COLUMNS]
    assert len(df) == len(CASES) and set(df["backend"]) == {"ort-cpu", "tvm-llvm"}
    for col, dtype, _ in COLUMNS:
        got = str(df[col].dtype)
        if dtype.startswith("datetime"):
            assert isinstance(df[col].dtype, pd.DatetimeTZDtype), (col, got)
        else:
            assert got == dtype, (col, got, dtype)
    row = df.set_index("lowering").loc["phase"]
    assert row["status"] == "mismatch" and row["reason"] == "mismatch here"
    ok = df[df["status"] == "ok"]
    assert (ok["median_ms"] > 0).all() and (ok["n"] == 200).all()
    assert (ok["p10_ms"] <= ok["median_ms"]).all() and (ok["median_ms"] <= ok["p90_ms"]).all()
    assert df["size"].tolist() == [1, 1, 1] and df["onnxruntime"].unique().tolist() == ["1.32.0"]


def test_several_runs_concatenate_into_one_frame_that_pandas_pivots(tmp_path):
    a, b = _runs(tmp_path)
    df = harness.load_runs(a, b)
    assert len(df) == 2 * len(CASES) and set(df["run_id"]) == {"run-a", "run-b"}
    piv = df.pivot_table(index="run_id", columns="backend", values="median_ms", aggfunc="min", observed=True)
    ratio = piv.loc["run-b", "tvm-llvm"] / piv.loc["run-a", "tvm-llvm"]
    assert 0.4 < ratio < 0.6  # run-b's tvm-llvm case was made twice as fast


def test_export_csv_reads_back_as_the_same_rows(tmp_path):
    a, _ = _runs(tmp_path)
    p = run_cli("export", str(a), "--format", "csv", "-o", str(tmp_path / "a.csv"))
    assert p.returncode == 0, p.stderr
    back = pd.read_csv(tmp_path / "a.csv")
    assert list(back.columns) == [c for c, _, _ in COLUMNS] and len(back) == len(CASES)
    assert back["median_ms"].round(9).tolist() == harness.load_run(a)["median_ms"].round(9).tolist()


def _compare(*files: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("pytest-benchmark")
    return subprocess.run(
        [str(exe), "compare", *map(str, files), "--columns", "min,median,iqr,rounds", "--sort", "name"],
        capture_output=True,
        text=True,
        cwd=files[0].parent,
        check=False,
    )


def test_pytest_benchmark_reads_and_compares_exported_runs(tmp_path):
    a, b = _runs(tmp_path)
    fa, fb = tmp_path / "a.json", tmp_path / "b.json"
    for run, f in ((a, fa), (b, fb)):
        p = run_cli("export", str(run), "--format", "pytest-benchmark", "-o", str(f))
        assert p.returncode == 0, p.stderr
    doc = json.loads(fa.read_text())
    assert doc["commit_info"]["id"] == "abc" and doc["machine_info"]["cpu"]["brand_raw"] == "Test CPU 9000"
    by_name = {bm["name"]: bm for bm in doc["benchmarks"]}
    assert set(by_name) == set(CASES)
    assert by_name["m@1/phase/ort-cpu/b1"]["extra_info"]["status"] == "mismatch"
    assert by_name["m@1/native/ort-cpu/b1"]["stats"]["rounds"] == 200
    one = _compare(fa)
    assert one.returncode == 0, one.stderr
    assert all(cid in one.stdout for cid in CASES), one.stdout
    two = _compare(fa, fb)
    assert two.returncode == 0, two.stderr
    tvm = [ln for ln in two.stdout.splitlines() if ln.startswith("m@1/native/tvm-llvm/b1")]
    assert len(tvm) == 2, two.stdout  # one line per run, the two runs side by side
    medians = sorted(float(ln.split()[4].replace(",", "")) for ln in tvm)  # name, (a), min, (x), median
    assert medians[1] / medians[0] == pytest.approx(2.0, rel=0.1)


def test_export_names_its_problem_in_one_line(tmp_path):
    from ..helpers import assert_one_line_error

    a, _ = _runs(tmp_path)
    assert_one_line_error(run_cli("export", str(a), "--format", "csv"), "-o FILE")
    assert_one_line_error(run_cli("export", str(tmp_path / "nope"), "--format", "csv", "-o", "x.csv"), "nope")


def test_a_table_from_a_frame_takes_its_columns_groups_and_missing_values():
    """Table.from_frame, what every report table is built with: a two-level column index becomes
    (group, name), numeric dtypes right-aligned, a missing value an empty cell, cells kept as they are."""
    import pandas as pd

    from harness.core.markdown import table_lines
    from harness.core.tables import Cell, Table, cell

    df = pd.DataFrame(
        {("", "model"): ["a", "b"], ("ort", "ms"): [1.5, None], ("tvm", "ms"): [cell("x", style="best"), None]}
    )
    t = Table.from_frame(df)
    assert [(c.group, c.name, c.numeric) for c in t.columns] == [
        ("", "model", False),
        ("ort", "ms", True),
        ("tvm", "ms", False),
    ]
    assert [c.text for c in t.rows[0]] == ["a", "1.5", "x"] and t.rows[0][2].style == "best"
    assert t.rows[1][1] == Cell() and t.rows[1][2] == Cell()
    assert table_lines(t)[:3] == ["| model | ms | ms |", "|---|---:|---|", "| a | 1.5 | x |"]
    with pytest.raises(ValueError, match="2 column names for a frame of 3 columns"):
        Table.from_frame(df, ["a", "b"])
