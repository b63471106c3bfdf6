"""Remote devices through TVM's RPC tracker, on loopback: a tracker and two servers (harness/backends/tvm/rpc_local.py),
cases spread over both, outputs checked here, a server killed mid-sweep. Every wait is bounded and the
processes are stopped even when a test fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from harness.backends.tvm.rpc_local import LoopbackCluster, free_port

from ..helpers import ROOT, assert_one_line_error, run_cli

LOWERINGS = "native,explicit_pads,zero_insert,phase,gemm_overlap_add"


def _records(out):
    f = out / "results.jsonl"
    return [json.loads(ln) for ln in f.read_text().splitlines() if ln.strip()] if f.exists() else []


def _held(r):
    """(server, from, to): when the case held its server, from the record's own timestamps."""
    return r["details"]["remote"]["server"], r["details"]["remote"]["session_at"], r["details"]["wall"]["end"]


def _overlapping(recs) -> list[tuple[str, str]]:
    """Pairs of cases in flight at the same time on different servers."""
    h = [(r["case_id"], *_held(r)) for r in recs if r["status"] == "ok"]
    return [(a[0], b[0]) for i, a in enumerate(h) for b in h[i + 1 :] if a[1] != b[1] and a[2] < b[3] and b[2] < a[3]]


def test_no_tracker_is_a_one_line_error(tmp_path):
    port = free_port()
    for cmd in (["validate", "cae@16"], ["bench", "--suite", "quick", "--out", str(tmp_path / "r")]):
        p = run_cli(*cmd, "--backends", "tvm-llvm", "--rpc-tracker", f"127.0.0.1:{port}", "--rpc-key", "x", timeout=60)
        assert_one_line_error(p, "no RPC tracker reachable")
    p = run_cli(
        "validate",
        "cae@16",
        "--rpc-tracker",
        "localhost",
        "--rpc-key",
        "x",
        "--build-dir",
        str(tmp_path / "build"),
        timeout=60,
    )
    assert_one_line_error(p, "HOST:PORT")
    p = run_cli(
        "validate", "cae@16", "--rpc-tracker", f"127.0.0.1:{port}", "--build-dir", str(tmp_path / "build"), timeout=60
    )
    assert_one_line_error(p, "--rpc-key")


@pytest.mark.heavy
def test_two_servers_share_the_cases_and_outputs_are_checked_here(tmp_path):
    out = tmp_path / "run"
    with LoopbackCluster(servers=2, key="loopback", threads=1, log_dir=tmp_path / "rpc", pin=True) as cl:
        servers = set(cl.registered())
        assert len(servers) == 2
        p = run_cli(
            "bench",
            "--suite",
            "quick",
            "--models",
            "cae@16",
            "--backends",
            "tvm-llvm,ort-cpu",
            "--lowerings",
            LOWERINGS,
            "--no-calibrate",
            "--threads",
            "1",
            "--out",
            str(out),
            "--rpc-tracker",
            cl.tracker,
            "--rpc-key",
            "loopback",
            "--case-timeout",
            "120",
            "--build-dir",
            str(tmp_path / "build"),
            timeout=400,
        )
        # the wrong key is refused before anything runs
        q = run_cli(
            "validate",
            "cae@16",
            "--backends",
            "tvm-llvm",
            "--rpc-tracker",
            cl.tracker,
            "--rpc-key",
            "nosuch",
            "--build-dir",
            str(tmp_path / "build"),
            timeout=60,
        )
    assert p.returncode == 0, p.stderr[-3000:]
    assert_one_line_error(q, "no server registered under key 'nosuch'", "loopback")
    recs = _records(out)
    tvm = [r for r in recs if r["backend"] == "tvm-llvm"]
    assert len(tvm) == 5 and all(r["status"] == "ok" for r in tvm), [(r["case_id"], r["reason"]) for r in tvm]
    used = {r["details"]["remote"]["server"] for r in tvm}
    assert used == servers, used  # both servers ran cases
    assert _overlapping(tvm), [_held(r) for r in tvm]  # at the same time: the records' own timestamps say so
    assert len({r["case_id"] for r in recs}) == len(recs)  # nothing twice
    assert "compiled ahead 5 case x machine builds" in p.stderr and "remote phase:" in p.stderr
    for r in tvm:
        rem = r["details"]["remote"]
        assert rem["key"] == "loopback" and rem["tracker"] == cl.tracker
        assert rem["machine"].get("cpu") and rem["machine"].get("threads") == 1
        assert r["numerics"]["passed"] and r["latency_ms"]["n"] >= 5 and r["latency_ms"]["reference"] is None
    ort = [r for r in recs if r["backend"] == "ort-cpu"]
    assert ort and all(r["status"] == "skipped" and "RPC" in r["reason"] for r in ort)
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["rpc"]["key"] == "loopback" and set(meta["config"]["rpc"]["servers"]) == servers
    report = (out / "report.md").read_text()
    assert "Remote devices" in report and all(s in report for s in servers)
    assert "busy s" in report and "one device would have needed about" in report


def _bench_cmd(out, tracker, tmp_path, models="cae@16,cae@32"):
    return [
        sys.executable, "-m", "harness", "bench", "--suite", "quick", "--models", models, "--backends", "tvm-llvm",
        "--lowerings", LOWERINGS, "--no-calibrate", "--threads", "1", "--out", str(out), "--rpc-tracker", tracker,
        "--rpc-key", "loopback", "--case-timeout", "120", "--build-dir", str(tmp_path / "build"),
    ]  # fmt: skip


def _while_running(proc, out, act, limit_s=400):
    """Poll the sweep; `act(records)` may act once (it returns a truthy value when it did)."""
    acted = None
    try:
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < limit_s:
            if acted is None:
                acted = act(_records(out)) or None
            time.sleep(0.02)
        stdout, stderr = proc.communicate(timeout=max(1, limit_s + 20 - (time.monotonic() - t0)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return acted, stderr


@pytest.mark.heavy
def test_a_server_killed_mid_sweep_costs_nothing_its_case_runs_again_on_the_other(tmp_path):
    out = tmp_path / "run"
    with LoopbackCluster(servers=2, key="loopback", threads=1, log_dir=tmp_path / "rpc", pin=True) as cl:
        before = set(cl.registered())
        proc = subprocess.Popen(
            _bench_cmd(out, cl.tracker, tmp_path) + ["--no-report"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

        def kill(recs):
            busy = cl.busy_servers() if len(recs) >= 2 else []
            if busy:
                cl.kill(busy[0])
                return time.time()
            return None

        killed_at, stderr = _while_running(proc, out, kill)
        survivors = set(cl.registered())
    assert killed_at is not None, "no server was caught serving a session"
    assert proc.returncode == 0, stderr[-3000:]
    recs = _records(out)
    seen = [(r["case_id"], r["status"], r["reason"]) for r in recs]
    assert len(recs) == 10 and len({r["case_id"] for r in recs}) == 10, seen  # none lost, none written twice
    assert len(survivors) == 1 and len(before) == 2
    (gone,) = before - survivors
    # the killed server held one case. Usually a remote call of it was in flight and failed: it ran once more, on
    # the survivor, and says so. The kill can also land after the case's last remote call: then nothing is lost.
    assert all(r["status"] == "ok" for r in recs), seen
    retried = [r for r in recs if r["details"].get("retry")]
    assert len(retried) <= 1, seen
    for r in retried:
        assert r["details"]["retry"]["lost_server"] == gone, r["details"]["retry"]
        assert f"remote {gone} (key loopback) failed during" in r["details"]["retry"]["after"]
        assert r["details"]["remote"]["server"] in survivors
        assert "running it once more on another server" in stderr
    # after the kill, no case got a session on the dead server
    late = [r for r in recs if r["details"]["remote"]["session_at"] > killed_at + 0.5]
    assert all(r["details"]["remote"]["server"] in survivors for r in late), [_held(r) for r in late]
    assert {r["details"]["remote"]["server"] for r in recs} == before  # both served cases


@pytest.mark.heavy
def test_a_server_that_joins_mid_sweep_takes_cases_and_a_different_one_is_reported(tmp_path):
    out = tmp_path / "run"
    with LoopbackCluster(servers=1, key="loopback", threads=1, log_dir=tmp_path / "rpc") as cl:
        (first,) = cl.registered()
        proc = subprocess.Popen(
            _bench_cmd(out, cl.tracker, tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

        def join(recs):
            # once the sweep has probed its one server and compiles ahead; the new server says it has 2 threads:
            # another kind of machine, as far as the sweep can tell
            return cl.add_server(threads=2) if (out / "logs" / "worker-compile-1.log").exists() else None

        joined, stderr = _while_running(proc, out, join)
        servers = set(cl.registered())
    assert joined is not None and proc.returncode == 0, stderr[-3000:]
    recs = _records(out)
    assert len(recs) == 10 and all(r["status"] == "ok" for r in recs), [(r["case_id"], r["reason"]) for r in recs]
    (new,) = servers - {first}
    ran = {r["details"]["remote"]["server"]: r["details"]["remote"]["machine"]["threads"] for r in recs}
    assert new in ran and ran[new] == 2 and ran[first] == 1, ran  # the new server took cases, and said what it is
    report = (out / "report.md").read_text()
    assert "The servers are not alike" in report


@pytest.mark.heavy
def test_tuning_measures_candidates_on_the_farm(tmp_path, monkeypatch, capfd):
    from harness.backends.tvm import common as tvm_common
    from harness.backends.tvm import tuning
    from harness.backends.tvm.common import host_target

    from ..helpers import make_convtranspose_model

    path = make_convtranspose_model(tmp_path / "ct.onnx", x_shape=(1, 8, 8, 8), w_shape=(8, 4, 3, 3), strides=[2, 2])
    monkeypatch.setattr(tuning, "ROOT", tmp_path / "tuning")
    monkeypatch.setattr(tvm_common, "ROOT", tmp_path / "tuning")  # db_dir's
    with LoopbackCluster(servers=2, key="loopback", threads=1, log_dir=tmp_path / "rpc", pin=True) as cl:
        res = tuning.tune_workload(
            "ct", "native", str(path), {"X": (1, 8, 8, 8)}, {"X": "float32"}, host_target(1), trials=16,
            budget_s=600, threads=1, db_root=None, work_root=tmp_path / "work", say=lambda s: None,
            rpc={"tracker": cl.tracker, "key": "loopback", "servers": 2},
        )  # fmt: skip
        # a server that says another thing: `convtx tune` refuses to mix them in one database
        cl.add_server(threads=2)
        q = run_cli("tune", "cae@16", "--rpc-tracker", cl.tracker, "--rpc-key", "loopback", timeout=120)
    assert res.after["tasks_tuned"] >= 1
    assert "measuring on the 2 server(s) under key 'loopback'" in capfd.readouterr().err
    sessions = [(tmp_path / "rpc" / f"server-{i}.log").read_text().count("connected from") for i in (1, 2)]
    assert all(n > 0 for n in sessions), sessions  # both servers measured candidates
    assert_one_line_error(q, "the servers are not alike", "register each kind under its own key")
