"""The result record (harness/core/records.py) and the one reader of results files (harness/core/rundir.py)."""

import json
import math
from pathlib import Path

import pytest

from harness.core.errors import ConvtxError
from harness.core.records import (
    CaseKey,
    Counts,
    Latency,
    Numerics,
    OutputNumerics,
    Record,
    ReferenceTiming,
    ResultsWriter,
)
from harness.core.rundir import read_results, read_run

from ..helpers import DESIGN_RECORD_KEYS

ROOT = Path(__file__).resolve().parents[2]
BASELINE_FILES = sorted((ROOT / "reports" / "baseline").glob("**/results.jsonl"))
# fields added to schema 1 after some committed baselines were recorded: a reader fills them in as None
ADDED_SINCE = ("counts",)


def _key(i: int) -> CaseKey:
    return CaseKey(
        run_id="r",
        case_id=f"cae@32/native/ort-cpu/b{i}",
        model="cae",
        lowering="native",
        backend="ort-cpu",
        batch=i,
        input_shapes={"x": (i, 3, 32, 32)},
        size=32,
        threads=2,
    )


def _numerics(rel_l2: float = 0.0, passed: bool = True) -> Numerics:
    out = OutputNumerics(
        index=0,
        passed=passed,
        shape=(1, 3, 32, 32),
        ref_shape=(1, 3, 32, 32),
        max_abs=0.0,
        rel_l2=rel_l2,
        mismatches=0 if passed else 7,
        worst_index=(0, 1, 2, 3),
        nonfinite=0,
    )
    return Numerics(
        max_abs=0.0,
        max_rel=0.0,
        rel_l2=rel_l2,
        atol=1e-5,
        rtol=1e-3,
        rel_l2_tol=1e-5,
        policy="float32",
        passed=passed,
        outputs=(out,),
    )


def _rec(i: int, status: str = "ok", **parts) -> Record:
    return _key(i).record(status, **parts)


def test_record_has_the_design_fields():
    d = _rec(1, numerics=_numerics()).to_json()
    assert DESIGN_RECORD_KEYS <= set(d), DESIGN_RECORD_KEYS - set(d)
    assert d["schema"] == 1
    assert d["input_shapes"] == {"x": [1, 3, 32, 32]} and d["numerics"]["outputs"][0]["worst_index"] == [0, 1, 2, 3]


def test_every_record_of_a_case_carries_its_key():
    key = _key(2)
    for rec in (key.record("skipped", "no device"), key.record("error", "run: boom"), key.record("ok")):
        assert (rec.run_id, rec.case_id, rec.model, rec.batch, rec.size, rec.threads) == (
            "r",
            "cae@32/native/ort-cpu/b2",
            "cae",
            2,
            32,
            2,
        )
        assert rec.input_shapes == {"x": (2, 3, 32, 32)} and rec.dtype == "float32"


def test_roundtrip_and_torn_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as w:
        w.append(_rec(1))
        w.append(_rec(2, "mismatch", numerics=_numerics(float("inf"), passed=False)))
    with open(path, "a") as f:
        f.write('{"schema": 1, "case_id": "torn')  # a writer killed mid-line
    recs = read_results(path)
    assert [r.batch for r in recs] == [1, 2]
    assert recs[1].numerics.rel_l2 == math.inf  # a float again in Python
    line = json.loads(path.read_text().splitlines()[1])  # every complete line is strict JSON
    assert line["numerics"]["rel_l2"] == "inf"  # JSON has no Inf: written as a string
    assert recs[0] == _rec(1) and recs[1] == _rec(2, "mismatch", numerics=_numerics(math.inf, passed=False))


def test_non_finite_floats_round_trip_as_strings_in_json_and_floats_in_python():
    lat = Latency(
        samples=(1.0, math.inf),
        median=math.inf,
        mean=math.nan,
        stdev=math.nan,
        min=1.0,
        p10=1.0,
        p90=math.inf,
        p99=math.inf,
        iqr=math.inf,
        n=2,
        reference=ReferenceTiming("k", 0.1, 2, (0.1, 0.1)),
        ratio_to_reference=math.inf,
    )
    num = Numerics(
        max_abs=math.nan,
        max_rel=-math.inf,
        rel_l2=math.inf,
        atol=1e-5,
        rtol=1e-3,
        rel_l2_tol=1e-5,
        policy="float32",
        passed=False,
    )
    rec = _rec(
        1,
        "mismatch",
        numerics=num,
        latency_ms=lat,
        gflops=math.inf,
        compile_s=math.nan,
        details={"self_check": {"rel_l2": math.nan}},
    )
    d = json.loads(rec.to_line())  # strict JSON: json.loads would take NaN, so look
    assert "NaN" not in rec.to_line() and "Infinity" not in rec.to_line()
    assert (d["numerics"]["max_abs"], d["numerics"]["max_rel"], d["numerics"]["rel_l2"]) == ("nan", "-inf", "inf")
    assert d["latency_ms"]["samples"] == [1.0, "inf"] and d["gflops"] == "inf" and d["compile_s"] == "nan"
    back = Record.from_json(d)
    assert math.isnan(back.numerics.max_abs) and back.numerics.max_rel == -math.inf
    assert back.numerics.rel_l2 == math.inf and back.latency_ms.samples == (1.0, math.inf)
    assert math.isnan(back.latency_ms.mean) and back.latency_ms.ratio_to_reference == math.inf
    assert back.gflops == math.inf and math.isnan(back.compile_s)
    assert back.to_json() == d


def test_counts_round_trip():
    c = Counts(
        tool="callgrind",
        metric="est_cycles",
        samples=(10, 11, 12),
        median=11.0,
        ir=(5, 5, 6),
        events_median={"Ir": 5},
        calls=3,
        warmup=1,
        injected={"pct": 10.0},
    )
    rec = _rec(1, counts=c)
    assert Record.from_json(json.loads(rec.to_line())) == rec


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(_rec(1).to_line() + "\nnot json\n" + _rec(2).to_line() + "\n")
    with pytest.raises(ConvtxError, match="results.jsonl:2"):
        read_results(path)


def test_a_complete_but_bad_last_line_is_an_error_not_a_torn_one(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(_rec(1).to_line() + "\n{broken\n")  # newline-terminated: not cut by a kill
    with pytest.raises(ConvtxError, match=r"results.jsonl:2: not a result record"):
        read_results(path)
    path.write_text(_rec(1).to_line() + '\n{"schema": 1, "case_id": "x"}\n')
    with pytest.raises(ConvtxError, match=r"results.jsonl:2: not a result record \(ValueError: run_id is missing"):
        read_results(path)


def test_newer_schema_is_refused_with_a_one_line_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({**_rec(1).to_json(), "schema": 99}) + "\n")
    with pytest.raises(ConvtxError, match="schema 99") as info:
        read_results(path)
    msg = str(info.value)
    assert "results.jsonl:1" in msg and "newer than this convtx" in msg and "\n" not in msg
    with pytest.raises(ConvtxError, match="schema 99"):
        Record.from_json({**_rec(1).to_json(), "schema": 99})


def test_unknown_status_is_refused():
    with pytest.raises(ValueError):
        _rec(1, status="fine")


@pytest.mark.parametrize("path", BASELINE_FILES, ids=lambda p: str(p.relative_to(ROOT / "reports" / "baseline")))
def test_every_committed_baseline_record_loads_and_round_trips(path):
    """The records written before the typed model must read back, and write back the same JSON (modulo key
    order, and fields the line predates, which a reader fills in as None)."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    recs = read_results(path)
    assert lines and len(recs) == len(lines)
    for line, rec in zip(lines, recs):
        d = json.loads(line)
        assert Record.from_json(d) == rec
        want = {**dict.fromkeys((k for k in ADDED_SINCE if k not in d), None), **d}
        assert rec.to_json() == want
        # bytes too (an int read back as a float would compare equal as a dict and still change the file)
        assert rec.to_line() == (line if want == d else json.dumps(want, sort_keys=True))
        assert rec.status in ("ok", "mismatch", "error", "skipped")
        if rec.status == "ok":
            assert rec.numerics.passed and (rec.latency_ms or rec.counts)


def test_the_committed_baselines_read_as_run_directories():
    assert BASELINE_FILES, "no committed baselines under reports/baseline"
    for path in BASELINE_FILES:
        run = read_run(path.parent)
        assert run.meta["plan"] and run.records and set(run.by_case()) == {r.case_id for r in run.records}
    counted = read_run(ROOT / "reports" / "baseline" / "callgrind-3.19.0-77caa05352-1t")
    assert all(
        r.counts.metric == "est_cycles" and len(r.counts.samples) == r.counts.calls
        for r in counted.records
        if r.status == "ok"
    )
