"""MetaSchedule tuning into a database, the tuned backend applying it, and `convtx optimize` — on tiny
models with a handful of trials (the real tuning is `make tune`; its numbers are in the benchmark)."""

import json
import os

import numpy as np
import onnx
import pytest

from harness.backends import get_backend
from harness.backends.base import UnsupportedModel
from harness.checking.numerics import compare
from harness.checking.reference import onnx_reference
from harness.core.config import RunConfig

from ..helpers import (
    artifact_of,
    assert_one_line_error,
    hand_model_two_convtranspose,
    make_convtranspose_model,
    run_cli,
)


def _artifact(path):
    return artifact_of(path)


@pytest.mark.heavy
def test_tuning_fills_the_database_and_the_tuned_backend_applies_it(tmp_path, monkeypatch):
    from harness.backends.tvm import common as tvm_common
    from harness.backends.tvm import tuning
    from harness.backends.tvm.common import host_target

    path = make_convtranspose_model(
        tmp_path / "ct.onnx",
        x_shape=(1, 8, 8, 8),
        w_shape=(8, 4, 3, 3),
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        output_padding=[1, 1],
    )
    art, m = _artifact(path)
    target = host_target(1)
    monkeypatch.setattr(tuning, "ROOT", tmp_path / "tuning")
    monkeypatch.setattr(tvm_common, "ROOT", tmp_path / "tuning")  # db_dir's
    with pytest.raises(UnsupportedModel, match="no tuning database"):
        get_backend("tvm-llvm-tuned").compile(art, RunConfig(threads=1))

    res = tuning.tune_workload(
        "ct",
        "native",
        str(path),
        art.input_shapes,
        art.input_dtypes,
        target,
        trials=8,
        budget_s=600,
        threads=1,
        db_root=None,
        work_root=tmp_path / "work",
        say=lambda s: None,
    )
    assert res.before["tasks_tuned"] == 0 and res.after["tasks_tuned"] >= 1
    assert abs(sum(t["share"] for t in res.tasks) - 1.0) < 1e-6 and all(t["ms_per_call"] > 0 for t in res.tasks)
    d = tuning.db_dir(target, __import__("tvm").__version__)
    assert d.parent.name.startswith("tvm-") and d.name == f"llvm-{target['mcpu']}-1c"
    index = json.loads((d / "index.json").read_text())
    assert [(w["model"], w["lowering"]) for w in index["workloads"]] == [("ct", "native")]
    assert index["total_seconds"] > 0

    c = get_backend("tvm-llvm-tuned").compile(art, RunConfig(threads=1))
    assert c.info["tuned"] in ("tuned", "partly tuned")
    assert c.info["tuning"]["tasks_tuned"] == res.after["tasks_tuned"]
    x = np.random.default_rng(0).standard_normal(art.input_shapes["X"]).astype(np.float32)
    cmp = compare(c.run({"X": x}), onnx_reference(m, {"X": x}))
    assert cmp.passed, cmp.reason

    # keyed by target through the directory alone: MetaSchedule itself hands these znver4 records to a query
    # for another mcpu (checked here), so another target must never open this database
    other = {**target, "mcpu": "skylake-avx512"}
    assert tuning.db_dir(other, __import__("tvm").__version__) != d
    db = tuning.open_db(d)
    mod = tuning.relax_module(str(path), art.input_shapes, art.input_dtypes)
    assert any(tuning.has_record(db, t, other) for t in tuning.extract(mod, other))
    # the tuned backend's check reads the hashes off the JSON lines instead of parsing the database: same answer
    assert tuning.state_by_hashes(mod, target, d) == tuning.tuning_state(mod, target, db)


def test_tuning_state_from_the_databases_hash_lines(tmp_path):
    """state_by_hashes: a task is tuned when the workload line with its hash has a record line pointing at it;
    a workload without a record does not count; no workload of the model: untuned. (Its agreement with
    MetaSchedule's own query on a real database: the heavy test above.)"""
    from harness.backends.tvm import tuning
    from harness.backends.tvm.common import host_target

    path = make_convtranspose_model(tmp_path / "ct.onnx", x_shape=(1, 4, 4, 4), w_shape=(4, 2, 3, 3), strides=[2, 2])
    art, _ = _artifact(path)
    target = host_target(1)
    mod = tuning.relax_module(str(path), art.input_shapes, art.input_dtypes)
    hashes = tuning.task_hashes(mod, target)
    assert hashes and all(h.isdigit() for h in hashes.values())
    name, h = sorted(hashes.items())[0]
    d = tmp_path / "db"
    d.mkdir()

    def write(workloads: list[str], records: list[int]) -> dict:
        (d / "database_workload.json").write_text("".join(json.dumps([w, "payload"]) + "\n" for w in workloads))
        (d / "database_tuning_record.json").write_text("".join(json.dumps([i, ["trace"]]) + "\n" for i in records))
        os.utime(
            d / "database_tuning_record.json", ns=(len(workloads) * 10**9, (len(workloads) + len(records)) * 10**9)
        )
        return tuning.state_by_hashes(mod, target, d)

    assert write(["1", h], [])["state"] == "untuned"  # a workload without a record
    got = write(["1", "2", h], [2, 0])
    assert got["tasks_tuned"] == 1 and (got["state"] == "tuned") == (len(set(hashes.values())) == 1)
    assert name not in got["untuned_tasks"]
    assert write(["1", "2"], [0, 1])["state"] == "untuned"  # records, but for other workloads


def test_tune_rejects_a_bad_target_in_one_line(tmp_path):
    p = run_cli("tune", "cae@16", "--target", "{not json", "--build-dir", str(tmp_path / "build"))
    assert_one_line_error(p, "--target")


def test_optimize_picks_per_node_and_explains(tmp_path):
    path = hand_model_two_convtranspose(tmp_path / "two.onnx")
    out = tmp_path / "opt.onnx"
    p = run_cli(
        "optimize",
        str(path),
        "--backend",
        "ort-cpu",
        "-o",
        str(out),
        "--lowerings",
        "native,phase,zero_insert",
        "--build-dir",
        str(tmp_path / "b"),
    )
    assert p.returncode == 0, p.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert [n["node"] for n in side["nodes"]] == ["up1", "up2"]
    for n in side["nodes"]:
        assert set(n["candidates"]) == {"phase", "zero_insert"}
        assert all(c["status"] == "ok" and c["ms"] > 0 for c in n["candidates"].values())
        if n["chosen"] != "native":
            assert n["candidates"][n["chosen"]]["gain_ms"] > side["baseline_noise_ms"]
    assert side["final_ms"] > 0 and side["final_rel_l2"] < 1e-5
    m = onnx.load(out)
    x = np.random.default_rng(3).standard_normal((1, 4, 6, 6)).astype(np.float32)
    import onnxruntime as ort

    y = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"X": x})
    assert compare(y, onnx_reference(onnx.load(path), {"X": x})).passed
    ops = [n.op_type for n in m.graph.node]
    kept = sum(1 for n in side["choice"].values() if n == "native")
    assert ops.count("ConvTranspose") == kept
