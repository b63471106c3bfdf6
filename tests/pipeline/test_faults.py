"""Fault injection for real: kill -9 and resume, crashing and hanging workers, out-of-memory, corrupt
cache entries, a torn results file, two writers."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.audit.chaos import kill_resume_cycles
from harness.core.config import RunConfig, TimingConfig
from harness.pipeline.sweep import Plan, run_plan, zoo_ref

from ..helpers import ROOT, assert_one_line_error, run_cli

QUICK = TimingConfig(warmup=1, min_repeats=3, min_time_s=0.0, max_time_s=2.0)


@pytest.mark.heavy
def test_kill_9_at_random_moments_then_resume_loses_and_duplicates_nothing(tmp_path):
    r = kill_resume_cycles(
        3,
        tmp_path,
        ["--suite", "quick", "--models", "cae@16,unet@32", "--backends", "ort-cpu,torch-cpu"],
        tmp_path / "build",
        seed=1,
        say=lambda s: None,
    )
    assert r["expected"] == 4 and r["killed"] >= 1
    assert (r["lost"], r["duplicated"], r["unexpected"]) == (0, 0, 0)
    for row in r["rows"]:
        run = tmp_path / f"cycle{row['cycle']:02d}"
        recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
        assert len(recs) == 4 and all(rec["status"] == "ok" for rec in recs)
        meta = json.loads((run / "run.json").read_text())
        assert meta["status"] == "complete" and meta["resumed"] == 1


def test_crashing_hanging_and_oom_workers_become_error_records(tmp_path):
    faults = (
        ("cae@16/native/ort-cpu/b1", "segv"),
        ("cae@16/native/torch-cpu/b1", "abort"),
        ("cae@16/native/ort-cpu/b2", "hang"),
        ("cae@16/native/torch-cpu/b2", "oom"),
    )
    # 10 s for the case alone (the others take under a second): a restarted worker's start-up is outside it
    # (worker.STARTUP_TIMEOUT_S; the test below shows it)
    cfg = RunConfig(threads=1, timing=QUICK, case_timeout_s=10, memory_cap_gib=1.0, faults=faults)
    plan = Plan((zoo_ref("cae@16"),), ("native",), ("ort-cpu", "torch-cpu"), (1, 2, 3))
    recs = {
        r.case_id: r
        for r in run_plan(plan, cfg, "t", tmp_path / "b", tmp_path / "logs", sink=lambda r: None, say=lambda s: None)
    }
    assert len(recs) == 6
    assert "killed by signal SIGSEGV" in recs["cae@16/native/ort-cpu/b1"].reason
    assert "killed by signal SIGABRT" in recs["cae@16/native/torch-cpu/b1"].reason
    assert "timed out after 10 s" in recs["cae@16/native/ort-cpu/b2"].reason
    assert "out of memory" in recs["cae@16/native/torch-cpu/b2"].reason
    for cid in (
        "cae@16/native/ort-cpu/b1",
        "cae@16/native/torch-cpu/b1",
        "cae@16/native/ort-cpu/b2",
        "cae@16/native/torch-cpu/b2",
    ):
        assert recs[cid].status == "error" and isinstance(recs[cid].details["stderr_tail"], list)
    assert recs["cae@16/native/ort-cpu/b3"].status == "ok"  # restarted workers carry on
    assert recs["cae@16/native/torch-cpu/b3"].status == "ok"


def test_a_case_timeout_counts_from_a_ready_worker_not_from_its_start(tmp_path, monkeypatch):
    """The per-case timeout (above: 20 s) measures the request, not the worker's start-up: a worker whose
    start-up (here a 2 s pause before the interpreter starts) outlasts a 1 s timeout still answers in time;
    a worker that never gets ready is reported as such."""
    from harness.pipeline import worker
    from harness.pipeline.worker import WorkerClient, WorkerTimeout

    slow_start = ["sh", "-c", 'sleep 2; exec "$@"', "sh"]
    w = WorkerClient("slow", {}, tmp_path / "w.log", prefix=slow_start)
    try:
        assert w.request({"op": "nosuch"}, timeout_s=1.0) == {"ok": False, "error": "unknown op 'nosuch'"}
    finally:
        w.close()
    w = WorkerClient("never", {}, tmp_path / "n.log", prefix=["sh", "-c", "sleep 60", "sh"])
    monkeypatch.setattr(worker, "STARTUP_TIMEOUT_S", 0.5)
    try:
        with pytest.raises(WorkerTimeout, match="did not start within 0.5 s"):
            w.request({"op": "nosuch"}, timeout_s=60)
    finally:
        w.kill()


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_cache_entries_are_rebuilt_not_trusted(tmp_path):
    from harness.core import cache

    plan = Plan((zoo_ref("cae@16"),), ("phase",), ("ort-cpu", "tvm-llvm"), (1,))
    cfg = RunConfig(threads=1, timing=None)
    first = run_plan(plan, cfg, "t", tmp_path / "b", tmp_path / "l", sink=lambda r: None, say=lambda s: None)
    assert [r.status for r in first] == ["ok", "ok"]
    entries = [
        p
        for sub in ("onnx", "data", "lowered", "compiled")
        for p in (tmp_path / "b" / sub).iterdir()
        if not p.name.endswith(".sha256")
    ]
    assert {p.parent.name for p in entries} == {"onnx", "data", "lowered", "compiled"}
    for p in entries:
        _corrupt(p)
    leftover = tmp_path / "b" / "onnx" / ".half-written.onnx.tmp123.onnx"  # a kill's leftover temp file
    leftover.write_bytes(b"garbage")
    second = run_plan(plan, cfg, "t", tmp_path / "b", tmp_path / "l", sink=lambda r: None, say=lambda s: None)
    assert [r.status for r in second] == ["ok", "ok"]  # a corrupt .so was not loaded
    assert second[1].details["compile_cache"] == "miss"
    # rebuilt and re-certified; the default-schedule decisions are a log whose lines carry their own checksums
    # (a corrupt line is measured again: harness/backends/tvm/defaults.py), not a certified entry
    assert all(cache.is_valid(p) for p in entries if not p.name.startswith("default-schedule-"))
    assert any(p.name.startswith("default-schedule-") for p in entries)
    third = run_plan(plan, cfg, "t", tmp_path / "b", tmp_path / "l", sink=lambda r: None, say=lambda s: None)
    assert third[1].details["compile_cache"] == "hit" and third[1].status == "ok"


def test_uncommitted_entry_without_digest_is_not_trusted(tmp_path):
    from harness.core import cache

    p = tmp_path / "x.bin"
    p.write_bytes(b"complete-looking")  # renamed into place, killed before its digest
    assert not cache.is_valid(p)
    tmp = cache.tmp_path(p)
    tmp.write_bytes(b"good")
    cache.commit(tmp, p)
    assert cache.is_valid(p) and p.read_bytes() == b"good"


def test_resume_cuts_a_torn_last_line_and_finishes(tmp_path):
    run = tmp_path / "run"
    args = [
        "--suite",
        "quick",
        "--models",
        "cae@16",
        "--backends",
        "ort-cpu",
        "--batches",
        "1,2",
        "--build-dir",
        str(tmp_path / "b"),
    ]
    assert run_cli("bench", "--no-calibrate", *args, "--out", str(run)).returncode == 0
    lines = (run / "results.jsonl").read_text().splitlines()
    (run / "results.jsonl").write_text(lines[0] + "\n" + lines[1][:40])  # second record torn by a kill
    p = run_cli("bench", "--resume", str(run), "--build-dir", str(tmp_path / "b"))
    assert p.returncode == 0, p.stderr
    ids = [json.loads(line)["case_id"] for line in (run / "results.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["cae@16/native/ort-cpu/b1", "cae@16/native/ort-cpu/b2"]


def test_a_run_directory_has_one_writer(tmp_path):
    run = tmp_path / "run"
    assert (
        run_cli(
            "bench",
            "--no-calibrate",
            "--suite",
            "quick",
            "--models",
            "cae@16",
            "--backends",
            "ort-cpu",
            "--build-dir",
            str(tmp_path / "b"),
            "--out",
            str(run),
        ).returncode
        == 0
    )
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from harness.core.rundir import RunDir; "
            f"RunDir({str(run)!r}).lock(); print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        p = run_cli("bench", "--resume", str(run), "--build-dir", str(tmp_path / "b"))
        assert_one_line_error(p, f"in use by another convtx process (pid {holder.pid})")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert run_cli("bench", "--resume", str(run), "--build-dir", str(tmp_path / "b")).returncode == 0  # freed


def test_resume_refuses_bad_run_directories(tmp_path):
    p = run_cli("bench", "--resume", str(tmp_path), "--build-dir", str(tmp_path / "build"))
    assert_one_line_error(p, "no run.json")
    (tmp_path / "run.json").write_text(json.dumps({"schema": 7, "plan": {}, "config": {}}))
    p = run_cli("bench", "--resume", str(tmp_path), "--build-dir", str(tmp_path / "build"))
    assert_one_line_error(p, "schema 7 is newer")
    p = run_cli("bench", "--resume", str(tmp_path), "--models", "cae", "--build-dir", str(tmp_path / "build"))
    assert_one_line_error(p, "drop --models")


def test_a_model_without_convtranspose_is_benchmarked_and_says_so(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["X"], ["Y"])],
        "relu",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "relu.onnx"))
    run = tmp_path / "run"
    p = run_cli(
        "bench",
        "--no-calibrate",
        "--suite",
        "quick",
        "--models",
        str(tmp_path / "relu.onnx"),
        "--lowerings",
        "native,phase",
        "--backends",
        "ort-cpu",
        "--build-dir",
        str(tmp_path / "b"),
        "--out",
        str(run),
    )
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in recs] == ["ok", "skipped"]  # the phase case would run the same graph
    assert "no ConvTranspose node" in recs[1]["reason"]
    assert all(r["details"]["lowering"]["convtranspose_nodes"] == 0 for r in recs)
    text = (run / "report.md").read_text()
    assert "relu: no ConvTranspose node, so every lowering is a no-op" in text
    assert "relu/phase/ort-cpu/b1" not in text.split("## Skipped")[-1]  # not listed as a failure
