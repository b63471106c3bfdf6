"""Counting with callgrind (harness/measure/counting.py, `bench --counts`) and the gate's counts mode.

The end-to-end tests run real cases under valgrind (tens of seconds each); they assert what counts promise —
the same numbers for the same work, an injected amount of extra work seen as that amount, the identity of the
counter recorded — never a latency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.core.records import Counts, ResultsWriter, write_json_atomic
from harness.measure import counting
from harness.perfgate.compare import Thresholds, compare, load_side, machine_slug, pick_baseline, render_markdown

from ..helpers import assert_one_line_error, case_key, run_cli, write_rounds, write_run

IDENT = {
    "tool": "callgrind",
    "valgrind": "3.19.0",
    "cpu": {"vendor": "GenuineIntel", "brand": "Test Core", "words": ["0"]},
    "caches": {},
    "metric": "est_cycles",
    "metric_text": "estimated cycles",
    "slug": "callgrind-3.19.0-abcdef0123",
}
CASES = {"m@1/native/ort-cpu/b1": 2.0e6, "m@1/native/tvm-llvm/b1": 11.0e6, "m@1/phase/ort-cpu/b1": 5.0e6}


def write_count_run(
    path: Path, scale: dict[str, float] | None = None, ident=IDENT, seed=0, status=None, jitter=0.002, machine=None
) -> Path:
    """A count run as `bench --counts` writes it: five counted calls per case, within `jitter` of each other."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    meta = {
        "schema": 1,
        "run_id": path.name,
        "suite": "gate",
        "status": "complete",
        "plan": {},
        "machine": machine or {"cpu_model": "Host A", "logical_cpus": 2, "flags": ["avx2"]},
        "versions": {"onnxruntime": "1.32.0"},
        "commit": "abc",
        "date": "2026-11-30T00:00:00Z",
        "config": {"threads": 1, "timing": {"warmup": 2}, "inject_slowdown": [], "counter": ident},
    }
    write_json_atomic(path / "run.json", meta)
    with ResultsWriter(path / "results.jsonl") as w:
        for cid, cyc in CASES.items():
            st = (status or {}).get(cid, "ok")
            counts = None
            if st in ("ok", "mismatch"):
                s = cyc * (scale or {}).get(cid, 1.0) * (1 + rng.uniform(-jitter, jitter, 5))
                counts = Counts(
                    tool="callgrind",
                    metric="est_cycles",
                    samples=tuple(s.tolist()),
                    median=float(np.median(s)),
                    ir=tuple((s / 2).astype(int).tolist()),
                    events_median={},
                    calls=s.size,
                    warmup=counting.WARMUP,
                )
            w.append(case_key(path.name, cid, 1).record(st, "" if st == "ok" else f"{st} here", counts=counts))
    return path


def test_estimated_cycles_and_dump_parsing(tmp_path):
    ev = {"Ir": 1000, "Dr": 300, "Dw": 100, "I1mr": 10, "D1mr": 20, "D1mw": 10, "ILmr": 1, "DLmr": 2, "DLmw": 1}
    # L1 hits 1400 - 40, LL hits 40 - 4, memory 4
    assert counting.estimated_cycles(ev) == 1360 + 5 * 36 + 35 * 4
    dump = tmp_path / "callgrind.123.1"
    dump.write_text(
        "# callgrind format\nversion: 1\nevents: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n"
        "fn=(1) main\n0 5 1 1\nsummary: 1000 300 100 10 20 10 1 2 1\n"
        "totals: 1000 300 100 10 20 10 1 2 1\n"
    )
    assert counting.parse_dump(dump) == ev
    dump.write_text("events: Ir\ntotals: 1000\n")
    with pytest.raises(RuntimeError, match="cache-sim"):
        counting.parse_dump(dump)
    dump.write_text("nothing here\n")
    with pytest.raises(RuntimeError, match="no events"):
        counting.parse_dump(dump)


def test_counts_mode_catches_a_small_slowdown_and_ignores_jitter(tmp_path):
    base = load_side(write_count_run(tmp_path / "a", seed=1))
    same = load_side(write_count_run(tmp_path / "b", seed=2))
    comp = compare(base, same, Thresholds(10, ()))
    assert comp.mode == "counts" and not comp.failed
    assert all(c.threshold_pct == 5.0 for c in comp.cases)  # counts' own default, not the time default
    slow = load_side(
        write_count_run(tmp_path / "c", seed=3, scale={"m@1/native/tvm-llvm/b1": 1.07, "m@1/phase/ort-cpu/b1": 0.9})
    )
    comp = compare(base, slow, Thresholds(10, ()))
    v = {c.case_id: c.verdict for c in comp.cases}
    assert v == {
        "m@1/native/ort-cpu/b1": "no change",
        "m@1/native/tvm-llvm/b1": "regression",
        "m@1/phase/ort-cpu/b1": "improvement",
    }
    reg = next(c for c in comp.cases if c.verdict == "regression")
    assert reg.stats["ratio"] == pytest.approx(1.07, rel=0.01) and reg.stats["p_slower"] < 0.01
    md = render_markdown(comp)
    assert "performance gate (counts): ❌ FAILED" in md and "Mode: counts" in md and "M |" in md
    assert "counted calls" in md
    # a counts section in the thresholds file is counts mode's; the time values are not used for counts
    thr = Thresholds(10, (), counts=Thresholds(8, ()))
    assert not compare(base, slow, thr).failed


def test_counts_numerics_and_mixing_rules(tmp_path):
    base = write_count_run(tmp_path / "a", seed=1)
    broken = write_count_run(tmp_path / "b", seed=2, status={"m@1/phase/ort-cpu/b1": "mismatch"})
    p = run_cli("compare", str(base), str(broken))
    assert p.returncode == 1 and "numerical failure" in p.stdout
    timed = write_run(tmp_path / "t")
    p = run_cli("compare", str(base), str(timed))
    assert_one_line_error(p, "cannot be compared with a count run")
    p = run_cli("compare", str(base), str(write_count_run(tmp_path / "c", seed=3)), "--mode", "ratio")
    assert_one_line_error(p, "their mode is counts")
    p = run_cli("compare", str(timed), str(timed), "--mode", "counts")
    assert_one_line_error(p, "bench --counts")


def test_count_baselines_are_per_counter_not_per_host(tmp_path):
    """reports/baseline holds timed baselines per machine and count baselines per counter: a count run on
    another host with the same counter takes the count baseline without a warning; another counter is taken
    with one; a timed baseline is never used for counts."""
    root = tmp_path / "baseline"
    counted = write_count_run(tmp_path / "x" / "c", seed=1)
    timed = write_rounds(tmp_path / "x" / "t", rounds=2, seed=1)
    for side in (counted, timed):
        root.mkdir(exist_ok=True)
        side.rename(root / machine_slug(load_side(side).meta))
    assert (root / "callgrind-3.19.0-abcdef0123-1t").is_dir()
    elsewhere = load_side(
        write_count_run(tmp_path / "cur", seed=2, machine={"cpu_model": "AMD EPYC", "logical_cpus": 2, "flags": ["x"]})
    )
    side, note = pick_baseline(root, elsewhere)
    assert side.path == root / "callgrind-3.19.0-abcdef0123-1t" and note is None
    other = load_side(write_count_run(tmp_path / "cur2", seed=2, ident={**IDENT, "slug": "callgrind-3.22.0-x"}))
    side, note = pick_baseline(root, other)
    assert side.path.name.startswith("callgrind-3.19.0") and "no count baseline with this counter" in note
    comp = compare(side, other, Thresholds(10, ()))
    assert "counters differ" in comp.mode_why
    lone = tmp_path / "only-timed"
    lone.mkdir()
    (root / machine_slug(load_side(root / "callgrind-3.19.0-abcdef0123-1t").meta)).rename(lone / "c")
    p = run_cli("compare", str(root), str(tmp_path / "cur"))
    assert_one_line_error(p, "no count baseline")


@pytest.mark.requires_valgrind
def test_identity_reads_the_cpu_valgrind_presents(tmp_path):
    ident = counting.identity(tmp_path)
    assert ident["tool"] == "callgrind" and ident["valgrind"][0].isdigit()
    assert ident["cpu"]["vendor"] and ident["slug"].startswith("callgrind-")
    # valgrind presents its own CPU, not the host's: no AVX-512 (leaf 7 EBX bit 16) whatever the host has
    assert not int(ident["cpu"]["words"][3], 16) & (1 << 16)


@pytest.mark.heavy
@pytest.mark.requires_valgrind
def test_bench_counts_end_to_end_repeatable_and_injection_seen(tmp_path):
    """Two count runs of the same case agree to within a percent; an injected 20% of extra work is seen as
    20%; the records and run.json say what counted them; a GPU backend is skipped with the reason."""
    runs = []
    for name, extra in (("a", []), ("b", []), ("slow", ["--inject-slowdown", "20"])):
        out = tmp_path / name
        p = run_cli(
            "bench",
            "--no-report",
            "--suite",
            "quick",
            "--models",
            "cae@16",
            "--backends",
            "ort-cpu,ort-cuda" if name == "a" else "ort-cpu",
            "--threads",
            "1",
            "--counts",
            "--out",
            str(out),
            *extra,
            "--build-dir",
            str(tmp_path / "build"),
            timeout=900,
        )
        assert p.returncode == 0, p.stderr[-3000:]
        runs.append(load_side(out))
    a, b, slow = runs
    ident = a.meta["config"]["counter"]
    assert ident["tool"] == "callgrind" and ident["slug"] and a.meta["calibration"]["error"]
    rec = a.rounds[0].records["cae@16/native/ort-cpu/b1"]
    assert rec.status == "ok" and rec.latency_ms is None and rec.numerics.passed
    c = rec.counts
    assert c.metric == "est_cycles" and len(c.samples) == counting.CALLS and len(c.ir) == counting.CALLS
    assert min(c.samples) > c.events_median["Ir"] > 100_000
    from harness.perfgate.compare import _trim_outliers  # an ORT call can do extra work (docs/perf-gate.md)

    kept = _trim_outliers(np.asarray(c.samples, dtype=float))
    assert kept.size >= 3 and (kept.max() - kept.min()) / c.median < 0.05
    cuda = a.rounds[0].records["cae@16/native/ort-cuda/b1"]
    assert cuda.status == "skipped"
    m_b = b.rounds[0].records["cae@16/native/ort-cpu/b1"].counts.median
    assert abs(m_b / c.median - 1) < 0.02
    inj = slow.rounds[0].records["cae@16/native/ort-cpu/b1"]
    assert inj.details["injected_slowdown"]["calibrated_pct"] == pytest.approx(20, abs=2)
    assert inj.counts.median / c.median == pytest.approx(1.2, abs=0.03)
    p = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert p.returncode == 0 and "Mode: counts" in p.stdout
    p = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "slow"))
    assert p.returncode == 1 and "regression" in p.stdout and "TEST-ONLY injected" in p.stdout
    assert not list((tmp_path / "a" / "logs" / "callgrind").glob("callgrind.*"))
    p = run_cli("report", str(tmp_path / "a"))
    assert p.returncode == 0, p.stderr[-2000:]
    md = (tmp_path / "a" / "report.md").read_text()
    assert "## Counts (callgrind" in md and "`cae@16/native/ort-cpu/b1` |" in md and "counted, not timed" in md
    assert "Counts (callgrind" in (tmp_path / "a" / "report.html").read_text()


def test_counts_flag_errors_are_one_line(tmp_path):
    p = run_cli(
        "bench",
        "--suite",
        "quick",
        "--counts",
        "--rpc-tracker",
        "127.0.0.1:9190",
        "--rpc-key",
        "k",
        "--out",
        str(tmp_path / "r"),
        "--build-dir",
        str(tmp_path / "build"),
    )
    assert_one_line_error(p, "cannot count a remote device")


def test_gate_study_analyses_count_sets(tmp_path):
    """`python -m harness.perfgate.study analyse` on count sets: A/A pairs in counts mode (no confirmation table:
    counts are not re-measured), power per injected level with the ratio each injection caused."""
    from harness.perfgate.study import analyse, render

    out = tmp_path / "study"
    for k in range(1, 4):
        for x in "ab":
            write_count_run(out / "aa" / f"set-{k:02d}{x}", seed=10 * k + ord(x))
        for pct in (10, 15):
            write_count_run(
                out / f"slow{pct}" / f"set-{k:02d}", seed=100 * k + pct, scale={c: 1 + pct / 100 for c in CASES}
            )
    res = analyse(out, Thresholds(10, ()))
    assert res["metric"] == "counts" and res["threshold_pct"] == 5.0 and "confirmed" not in res
    fa = res["false_alarms"]["counts/rounds"]
    assert fa["comparisons"] == 15 and fa["failed"] == 0 and "counts/single" not in res["false_alarms"]
    for pct, want in ((10, 1.10), (15, 1.15)):
        tally = res["power"]["counts"][pct]
        assert all(c["flagged"] == c["n"] == 18 for c in tally["cases"].values())
        assert all(abs(c["median_ratio"] - want) < 0.01 for c in tally["cases"].values())
    text = render(res)
    assert "| counts |" in text and "54/54 = 100.0%" in text


def test_gate_study_validity_relates_count_ratios_to_time_ratios(tmp_path):
    from harness.perfgate.study import render_validity, validity

    res = validity(write_count_run(tmp_path / "c"), write_run(tmp_path / "t"))
    assert res["n"] == 1
    row = res["rows"][0]
    assert row["case"] == "m@1/phase/ort-cpu/b1"
    assert row["est_ratio"] == pytest.approx(2.5, rel=0.01) and row["time_ratio"] == pytest.approx(2.0, rel=0.02)
    assert "| `m@1/phase/ort-cpu/b1` | 2.50 |" in render_validity(res)


def test_an_outlying_call_is_set_aside_not_allowed_to_hide_a_regression(tmp_path):
    """One call that did extra work (ORT: up to +61% in the count study) must neither hide a 10% regression
    nor look like one."""
    base = write_count_run(tmp_path / "a", seed=1)
    f = base / "results.jsonl"
    recs = [json.loads(x) for x in f.read_text().splitlines()]
    recs[0]["counts"]["samples"][3] *= 1.25  # m@1/native/ort-cpu/b1: one call +25%
    f.write_text("".join(json.dumps(r) + "\n" for r in recs))
    slow = load_side(write_count_run(tmp_path / "b", seed=2, scale={c: 1.10 for c in CASES}))
    comp = compare(load_side(base), slow, Thresholds(10, ()))
    v = {c.case_id: c for c in comp.cases}
    assert all(c.verdict == "regression" for c in v.values())
    assert v["m@1/native/ort-cpu/b1"].stats["outliers_set_aside"] == [1, 0]
    same = load_side(write_count_run(tmp_path / "c", seed=3))
    assert not compare(load_side(base), same, Thresholds(10, ())).failed


def test_gate_study_swap_runs_a_slower_lowering_under_the_native_name(tmp_path):
    from harness.perfgate.study import swapped

    base = write_count_run(tmp_path / "base", seed=1)
    run = write_count_run(tmp_path / "run", seed=2)
    rows = swapped(run, base)
    assert rows == [
        {
            "lowering": "phase",
            "case": "m@1/native/ort-cpu/b1",
            "ratio": pytest.approx(2.5, rel=0.01),
            "verdict": "regression",
            "threshold_pct": 5.0,
            "mode": "counts",
        }
    ]
