"""The performance gate (harness/perfgate/compare.py, `convtx compare`) on synthetic run directories with known
shifts, and once end to end on real rounds (plumbing and records only: no latency threshold here)."""

from __future__ import annotations

import json

import pytest

from harness.perfgate.compare import (
    Thresholds,
    compare,
    comparison_frames,
    load_side,
    load_thresholds,
    machine_slug,
    pick_baseline,
    render_markdown,
)

from ..helpers import CASES, assert_one_line_error, run_cli, write_rounds, write_run


def verdicts(comp) -> dict[str, str]:
    return {c.case_id: c.verdict for c in comp.cases}


def test_same_distribution_passes_and_a_real_slowdown_is_caught(tmp_path):
    base = load_side(write_rounds(tmp_path / "a", seed=1))
    same = load_side(write_rounds(tmp_path / "b", seed=2))
    comp = compare(base, same, Thresholds(10, ()))
    assert comp.mode == "absolute" and not comp.failed
    assert set(verdicts(comp).values()) == {"no change"}
    for c in comp.cases:
        assert c.stats["ci"][0] < c.stats["ratio"] < c.stats["ci"][1] and abs(c.stats["ratio"] - 1) < 0.02

    slow = load_side(
        write_rounds(tmp_path / "c", seed=3, scale={"m@1/native/tvm-llvm/b1": 1.15, "m@1/phase/ort-cpu/b1": 0.8})
    )
    comp = compare(base, slow, Thresholds(10, ()))
    v = verdicts(comp)
    assert v == {
        "m@1/native/ort-cpu/b1": "no change",
        "m@1/native/tvm-llvm/b1": "regression",
        "m@1/phase/ort-cpu/b1": "improvement",
    }
    reg = next(c for c in comp.cases if c.verdict == "regression")
    assert reg.stats["ratio"] == pytest.approx(1.15, rel=0.02) and reg.stats["ci"][0] > 1
    assert reg.stats["p_slower"] < 1e-6
    md = render_markdown(comp)
    assert "❌ FAILED — 1 regression(s)" in md and "🚀 improvement" in md and "Mode: absolute" in md
    # a slowdown below the threshold is reported as no change, however significant
    comp = compare(base, slow, Thresholds(20, ()))
    assert not comp.failed and verdicts(comp)["m@1/native/tvm-llvm/b1"] == "no change"


def test_significance_is_required_beyond_the_threshold(tmp_path):
    """A shift past the threshold that the rounds cannot tell from their own spread is not a regression."""
    base = load_side(write_rounds(tmp_path / "a", rounds=2, seed=1, noise=0.4, n=5))
    cur = load_side(
        write_rounds(tmp_path / "b", rounds=2, seed=2, noise=0.4, n=5, scale={"m@1/native/ort-cpu/b1": 1.12})
    )
    c = next(c for c in compare(base, cur, Thresholds(10, ())).cases if c.case_id == "m@1/native/ort-cpu/b1")
    assert c.stats["ci"][0] < 1 < c.stats["ci"][1] and c.verdict == "no change"


def test_one_slow_round_does_not_fail_the_gate(tmp_path):
    """Interference that slows one round of five (seen here: 1.5-2.3x) moves the low-quantile centre little."""
    base = load_side(write_rounds(tmp_path / "a", seed=1))
    cur = write_rounds(tmp_path / "b", seed=2)
    (cur / "round-03").rename(tmp_path / "discard")
    write_run(cur / "round-03", seed=77, machine_speed=2.0)
    comp = compare(base, load_side(cur), Thresholds(10, ()))
    assert not comp.failed, render_markdown(comp)


def test_numerical_failure_fails_the_gate_whatever_the_speed(tmp_path):
    base = load_side(write_rounds(tmp_path / "a", rounds=2, seed=1))
    cur = load_side(
        write_rounds(
            tmp_path / "b",
            rounds=2,
            seed=2,
            scale={"m@1/phase/ort-cpu/b1": 0.5},
            status={"m@1/phase/ort-cpu/b1": "mismatch", "m@1/native/tvm-llvm/b1": "error"},
        )
    )
    comp = compare(base, cur, Thresholds(10, ()))
    v = verdicts(comp)
    assert v["m@1/phase/ort-cpu/b1"] == "numerics" and v["m@1/native/tvm-llvm/b1"] == "numerics"
    assert {c.case_id for c in comp.failed} == {"m@1/phase/ort-cpu/b1", "m@1/native/tvm-llvm/b1"}
    md = render_markdown(comp)
    assert "2 numerical failure(s)" in md
    # the summary's tables are the comparison's frames (pandas) drawn by the report's Markdown renderer
    compared, other = comparison_frames(comp)
    assert list(other["verdict"]) == ["❌ numerics", "❌ numerics"] and len(compared) + len(other) == len(comp.cases)
    assert "| `m@1/phase/ort-cpu/b1` | ok | mismatch | ❌ numerics |" in md
    # the reverse direction: fixed, and a case that mismatched in both is reported, not failed
    back = compare(cur, base, Thresholds(10, ()))
    assert verdicts(back)["m@1/phase/ort-cpu/b1"] == "fixed" and not back.failed
    both = compare(cur, cur, Thresholds(10, ()))
    assert verdicts(both)["m@1/phase/ort-cpu/b1"] == "still mismatching" and not both.failed


def test_skipped_absent_and_new_cases_are_listed_not_failed(tmp_path):
    base = write_rounds(tmp_path / "a", rounds=1, seed=1, status={"m@1/phase/ort-cpu/b1": "skipped"})
    cur = write_rounds(tmp_path / "b", rounds=1, seed=2)
    lines = (cur / "round-01" / "results.jsonl").read_text().splitlines()
    (cur / "round-01" / "results.jsonl").write_text("\n".join(lines[1:]) + "\n")  # drop the first case
    comp = compare(load_side(base), load_side(cur), Thresholds(10, ()))
    v = verdicts(comp)
    assert v["m@1/phase/ort-cpu/b1"] == "not compared" and v["m@1/native/ort-cpu/b1"] == "not compared"
    assert not comp.failed
    md = render_markdown(comp)
    assert "baseline skipped" in md and "absent from the current run" in md


def test_other_machine_uses_ratios_to_the_reference_kernel(tmp_path):
    """A machine 1.6x slower across the board: absolute times would flag everything; ratios to the
    interleaved reference see no change, and still see a real 25% regression on that machine."""
    base = load_side(write_rounds(tmp_path / "a", seed=1))
    other = {"cpu_model": "Slower CPU 1000", "logical_cpus": 4, "flags": ["avx2"]}
    cur = load_side(write_rounds(tmp_path / "b", seed=2, machine=other, machine_speed=1.6))
    comp = compare(base, cur, Thresholds(10, ()))
    assert comp.mode == "ratio" and "machines differ" in comp.mode_why and "Slower CPU 1000" in comp.mode_why
    assert not comp.failed
    forced = compare(base, cur, Thresholds(10, ()), mode="absolute")
    assert len(forced.failed) == 3 and "machines differ" in forced.mode_why
    slow = load_side(
        write_rounds(tmp_path / "c", seed=3, machine=other, machine_speed=1.6, scale={"m@1/native/ort-cpu/b1": 1.25})
    )
    comp = compare(base, slow, Thresholds(10, ()))
    assert verdicts(comp)["m@1/native/ort-cpu/b1"] == "regression" and len(comp.failed) == 1
    assert "× ref" in render_markdown(comp)
    # thread count is part of the machine identity
    cur = load_side(write_rounds(tmp_path / "d", seed=4, threads=1))
    assert compare(base, cur, Thresholds(10, ())).mode == "ratio"


def test_per_case_thresholds(tmp_path):
    f = tmp_path / "thr.json"
    f.write_text(json.dumps({"default_pct": 8, "cases": {"*/tvm-llvm/*": 30, "m@1/phase/*": 5}}))
    t = load_thresholds(f, 10)
    assert t.for_case("m@1/native/tvm-llvm/b1") == 30 and t.for_case("m@1/phase/ort-cpu/b1") == 5
    assert t.for_case("m@1/native/ort-cpu/b1") == 8
    base = load_side(write_rounds(tmp_path / "a", seed=1))
    cur = load_side(write_rounds(tmp_path / "b", seed=2, scale={c: 1.2 for c in CASES}))
    v = verdicts(compare(base, cur, t))
    assert v == {
        "m@1/native/ort-cpu/b1": "regression",
        "m@1/native/tvm-llvm/b1": "no change",
        "m@1/phase/ort-cpu/b1": "regression",
    }


def test_ratio_mode_has_its_own_thresholds(tmp_path):
    f = tmp_path / "thr.json"
    f.write_text(
        json.dumps(
            {
                "default_pct": 8,
                "cases": {"*/tvm-llvm/*": 30},
                "ratio": {"default_pct": 40, "cases": {"m@1/phase/*": 50}},
                "_from": "a note",
            }
        )
    )
    t = load_thresholds(f, 10)
    assert t.for_case("m@1/native/ort-cpu/b1", "absolute") == 8 and t.for_case("m@1/native/ort-cpu/b1", "ratio") == 40
    assert t.for_case("m@1/phase/ort-cpu/b1", "ratio") == 50 and t.for_case("m@1/native/tvm-llvm/b1", "ratio") == 40
    base = load_side(write_rounds(tmp_path / "a", seed=1))
    other = {"cpu_model": "Other CPU", "logical_cpus": 2, "flags": ["avx2"]}
    cur = load_side(
        write_rounds(tmp_path / "b", seed=2, machine=other, machine_speed=1.3, scale={"m@1/native/ort-cpu/b1": 1.3})
    )
    comp = compare(base, cur, t)
    assert comp.mode == "ratio" and not comp.failed  # 30% < the ratio default of 40%
    assert "ratio-mode values" in render_markdown(comp)
    assert compare(base, cur, t, mode="absolute").failed  # 1.69x in absolute terms


def test_per_machine_baselines_pick_this_machine_or_say_why_not(tmp_path):
    """reports/baseline/<machine-slug>/round-*: compare takes the current machine's baseline (absolute) and its
    thresholds.json; on a machine with none it takes another in ratio mode and says so."""
    root = tmp_path / "baseline"
    other = {"cpu_model": "Other CPU @ 2.1GHz", "logical_cpus": 4, "flags": ["avx2"]}
    here = write_rounds(tmp_path / "x" / "here", seed=1)
    there = write_rounds(tmp_path / "x" / "there", seed=5, machine=other)
    for side in (here, there):
        (root / machine_slug(load_side(side).meta)).parent.mkdir(parents=True, exist_ok=True)
        side.rename(root / machine_slug(load_side(side).meta))
    slug_here = machine_slug(load_side(write_run(tmp_path / "probe")).meta)
    assert slug_here.startswith("test-9000-2c-2t-") and (root / slug_here).is_dir()
    (root / slug_here / "thresholds.json").write_text(json.dumps({"default_pct": 25}))
    cur = write_rounds(tmp_path / "cur", seed=2, scale={"m@1/native/ort-cpu/b1": 1.2})
    side, note = pick_baseline(root, load_side(cur))
    assert side.path == root / slug_here and note is None
    p = run_cli("compare", str(root), str(cur))
    assert p.returncode == 0, p.stdout  # 20% < this baseline's 25% threshold
    assert "Mode: absolute" in p.stdout and "25% by default" in p.stdout and "thresholds.json" in p.stdout
    lone = tmp_path / "lone"
    lone.mkdir()
    (root / slug_here).rename(lone / slug_here)
    p = run_cli("compare", str(root), str(cur))
    assert "no baseline recorded on this kind of machine" in p.stdout and "Mode: ratio" in p.stdout
    p = run_cli("compare", str(tmp_path / "x"), str(cur))
    assert_one_line_error(p, "per-machine baselines")


def test_a_regression_must_be_confirmed_by_an_independent_set_of_rounds(tmp_path):
    """make perf-check's second set: only a case that regressed in both sets fails; numbers always fail."""
    base = write_rounds(tmp_path / "a", rounds=3, seed=1)
    first = write_rounds(
        tmp_path / "b", rounds=3, seed=2, scale={"m@1/native/ort-cpu/b1": 1.3, "m@1/phase/ort-cpu/b1": 1.3}
    )
    second = write_rounds(
        tmp_path / "c",
        rounds=3,
        seed=3,
        scale={"m@1/native/ort-cpu/b1": 1.3},
        status={"m@1/native/tvm-llvm/b1": "mismatch"},
    )
    p = run_cli("compare", str(base), str(first), "--json", str(tmp_path / "first.json"))
    assert p.returncode == 1
    p = run_cli(
        "compare",
        str(base),
        str(second),
        "--confirm",
        str(tmp_path / "first.json"),
        "--json",
        str(tmp_path / "second.json"),
    )
    assert p.returncode == 1 and "confirmation run" in p.stdout
    v = {c["case_id"]: c["verdict"] for c in json.loads((tmp_path / "second.json").read_text())["cases"]}
    assert v == {
        "m@1/native/ort-cpu/b1": "regression",
        "m@1/native/tvm-llvm/b1": "numerics",
        "m@1/phase/ort-cpu/b1": "no change",
    }
    healthy = write_rounds(tmp_path / "d", rounds=3, seed=4, scale={"m@1/phase/ort-cpu/b1": 1.3})
    p = run_cli("compare", str(base), str(healthy), "--confirm", str(tmp_path / "second.json"))
    assert p.returncode == 0 and "not confirmed" in p.stdout  # slower once (phase), not in the first set
    (tmp_path / "bad.json").write_text("{}")
    p = run_cli("compare", str(base), str(healthy), "--confirm", str(tmp_path / "bad.json"))
    assert_one_line_error(p, "not a `convtx compare --json` file")


@pytest.mark.parametrize(
    "content, needle",
    [
        ("{not json", "not valid JSON"),
        ('{"cases": {"*": "ten"}}', "must be a number"),
        ('{"cases": {"*": 5}, "thresholds": 1}', "unknown key"),
        ("[1, 2]", "expected"),
    ],
)
def test_bad_per_case_file_is_a_one_line_error(tmp_path, content, needle):
    a = write_run(tmp_path / "a")
    f = tmp_path / "thr.json"
    f.write_text(content)
    p = run_cli("compare", str(a), str(a), "--per-case", str(f))
    assert_one_line_error(p, needle, str(f))


def test_compare_cli_exit_status_summary_and_bad_input(tmp_path):
    a = write_rounds(tmp_path / "a", rounds=3, seed=1)
    b = write_rounds(tmp_path / "b", rounds=3, seed=2, scale={"m@1/native/ort-cpu/b1": 1.3})
    p = run_cli("compare", str(a), str(a / "round-01"), "--summary", str(tmp_path / "s.md"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "✅ passed" in p.stdout and (tmp_path / "s.md").read_text().startswith("## convtx performance gate")
    p = run_cli("compare", str(a), str(b), "--json", str(tmp_path / "c.json"))
    assert p.returncode == 1 and "❌ FAILED — 1 regression(s)" in p.stdout
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["passed"] is False and data["mode"] == "absolute"
    assert {c["case_id"]: c["verdict"] for c in data["cases"]}["m@1/native/ort-cpu/b1"] == "regression"
    assert run_cli("compare", str(a), str(b), "--threshold", "40").returncode == 0
    for args, needle in (
        (["compare", str(tmp_path / "nope"), str(a)], "no such run directory"),
        (["compare", str(a / "round-01" / "run.json"), str(a)], "no such run directory"),
        (["compare", str(a), str(tmp_path)], "not a convtx run directory"),
        (["compare", str(a), str(b), "--threshold", "-5"], "--threshold"),
    ):
        p = run_cli(*args)
        assert_one_line_error(p, needle)
    (a / "round-02" / "results.jsonl").write_text("{broken\n")
    p = run_cli("compare", str(a), str(b))
    assert_one_line_error(p, "round-02/results.jsonl:1: not a result record")


def test_context_warns_about_injection_versions_and_incomplete_rounds(tmp_path):
    base = write_rounds(tmp_path / "a", rounds=2, seed=1)
    cur = write_rounds(tmp_path / "b", rounds=2, seed=2, injected=[["*", 15.0]])
    for name, changes in (("round-01", {"versions": {"onnxruntime": "1.33.0"}}), ("round-02", {"status": "running"})):
        f = cur / name / "run.json"
        f.write_text(json.dumps({**json.loads(f.read_text()), **changes}))
    text = "\n".join(compare(load_side(base), load_side(cur), Thresholds(10, ())).context)
    assert "TEST-ONLY injected slowdown" in text and "1 round(s) did not complete (round-02)" in text
    assert "onnxruntime 1.32.0 → 1.33.0" in text


def test_rounds_and_injection_end_to_end(tmp_path):
    """bench --rounds writes complete rounds with the interleaved reference kernel; --inject-slowdown is
    recorded in every matching record; compare reads them. The verdict itself is not asserted (a unit test
    holds no latency threshold: the gate's measured power is in docs/perf-gate.md)."""
    out = tmp_path / "rounds"
    p = run_cli(
        "bench",
        "--no-calibrate",
        "--no-report",
        "--suite",
        "quick",
        "--models",
        "cae@16",
        "--backends",
        "ort-cpu",
        "--rounds",
        "2",
        "--out",
        str(out),
        "--inject-slowdown",
        "50@*ort*",
        "--build-dir",
        str(tmp_path / "build"),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    side = load_side(out)
    assert [r.path.name for r in side.rounds] == ["round-01", "round-02"]
    for r in side.rounds:
        assert r.meta["round"]["of"] == 2 and r.meta["config"]["inject_slowdown"] == [["*ort*", 50.0]]
        rec = r.records["cae@16/native/ort-cpu/b1"]
        lat = rec.latency_ms
        assert lat.reference.kernel.startswith("numpy-") and lat.reference.n >= 5
        assert lat.ratio_to_reference == pytest.approx(lat.median / lat.reference.median)
        inj = rec.details["injected_slowdown"]
        assert inj["pct"] == 50 and inj["extra_ms_per_call"] > 0
        assert not (r.path / "report.html").exists()
    base = tmp_path / "base"
    assert (
        run_cli(
            "bench",
            "--no-calibrate",
            "--no-report",
            "--suite",
            "quick",
            "--models",
            "cae@16",
            "--backends",
            "ort-cpu",
            "--out",
            str(base),
            "--build-dir",
            str(tmp_path / "build"),
        ).returncode
        == 0
    )
    p = run_cli("compare", str(base), str(out))
    assert p.returncode in (0, 1) and "cae@16/native/ort-cpu/b1" in p.stdout
    assert "TEST-ONLY injected slowdown" in p.stdout and "1/2" in p.stdout
    p = run_cli("bench", "--rounds", "2", "--resume", str(out / "round-01"), "--build-dir", str(tmp_path / "build"))
    assert_one_line_error(p, "--rounds")
