"""The A/A study of pytest-benchmark's percentage gate (docs/perf-gate.md), on synthetic rounds."""

from __future__ import annotations

import json


def test_the_pytest_benchmark_a_a_study_counts_what_its_compare_fail_check_flags(tmp_path):
    """harness.perfgate.study pytest-benchmark-aa: pytest-benchmark's own check, over every ordered pair."""
    from harness.perfgate.study import pytest_benchmark_aa

    files = []
    for i, slow in enumerate([1.0, 1.05, 1.2]):
        doc = {"benchmarks": [{"name": "a", "stats": {"median": 1.0 * slow}}, {"name": "b", "stats": {"median": 2.0}}]}
        f = tmp_path / f"round-{i}.json"
        f.write_text(json.dumps(doc))
        files.append(f)
    res = pytest_benchmark_aa(files, "median:10%")
    assert (res["comparisons"], res["false_alarms"]) == (3, 2)  # 1->3 (+20%) and 2->3 (+14%); 1->2 is +5%
    assert (res["case_checks"], res["case_false_alarms"]) == (6, 2)
    assert res["worst_increase_pct"] == {"a": 20.0, "b": 0.0}


def test_the_benchmarks_suite_checks_the_verdict_then_times_with_pytest_benchmark(tmp_path):
    """`make benchmarks` as a user runs it, one case: the JSON is pytest-benchmark's, the verdict is in
    extra_info, and autosave + compare-fail work against the saved run."""
    import subprocess
    import sys

    from ..helpers import ROOT

    out = tmp_path / "one.json"
    case = "benchmarks/test_gate_suite.py::test_case[cae@32/native/ort-cpu]"
    base = [sys.executable, "-m", "pytest", case, "-q", "-p", "no:cacheprovider"]
    store = f"--benchmark-storage=file://{tmp_path / 'store'}"
    p = subprocess.run(
        [*base, f"--benchmark-json={out}", store, "--benchmark-autosave"], cwd=ROOT, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    (bm,) = json.loads(out.read_text())["benchmarks"]
    assert bm["name"] == "test_case[cae@32/native/ort-cpu]" and bm["extra_info"]["passed"] is True
    assert bm["stats"]["rounds"] >= 10 and bm["group"] == "cae@32"
    again = subprocess.run(
        [*base, store, "--benchmark-compare", "--benchmark-compare-fail=median:1000%"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and "Comparing against benchmarks from" in again.stdout + again.stderr, again.stdout
