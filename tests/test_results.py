import json

import pytest

from harness.core.errors import ConvtxError
from harness.core.records import Record, ResultsWriter, read_results


def _rec(i: int, **kw) -> Record:
    base = dict(run_id="r", case_id=f"cae@32/native/ort-cpu/b{i}", model="cae", lowering="native",
                backend="ort-cpu", batch=i, input_shapes={"x": [i, 3, 32, 32]}, dtype="float32", status="ok")
    base.update(kw)
    return Record(**base)


def test_record_has_the_design_fields():
    d = _rec(1, numerics={"max_abs": 0.0, "max_rel": 0.0, "rel_l2": 0.0, "atol": 1e-5, "rtol": 1e-3,
                          "passed": True}).to_json()
    for key in ("schema", "run_id", "case_id", "model", "lowering", "backend", "batch", "input_shapes", "dtype",
                "status", "reason", "numerics", "latency_ms", "compile_s", "flops", "gflops"):
        assert key in d
    assert d["schema"] == 1


def test_roundtrip_and_torn_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as w:
        w.append(_rec(1))
        w.append(_rec(2, numerics={"rel_l2": float("inf")}))
    with open(path, "a") as f:
        f.write('{"schema": 1, "case_id": "torn')          # a writer killed mid-line
    recs = read_results(path)
    assert [r.batch for r in recs] == [1, 2]
    assert recs[1].numerics["rel_l2"] == "inf"             # JSON has no Inf: written as a string
    json.loads(path.read_text().splitlines()[1])           # every complete line is strict JSON


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_rec(1).to_json()) + "\nnot json\n" + json.dumps(_rec(2).to_json()) + "\n")
    with pytest.raises(ConvtxError, match="results.jsonl:2"):
        read_results(path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({**_rec(1).to_json(), "schema": 99}) + "\n")
    with pytest.raises(ConvtxError, match="schema 99"):
        read_results(path)


def test_unknown_status_is_refused():
    with pytest.raises(ValueError):
        _rec(1, status="fine")
