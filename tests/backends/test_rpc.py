"""Remote devices through TVM's RPC tracker, on loopback: a tracker and two servers (harness/backends/tvm/rpc_local.py),
cases spread over both, outputs checked here, a server killed mid-sweep. Every wait is bounded and the
processes are stopped even when a test fails."""

from __future__ import annotations

import json
import re
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
    with LoopbackCluster(servers=2, key="loopback", threads=1, log_dir=tmp_path / "rpc") as cl:
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


@pytest.mark.heavy
def test_a_server_killed_mid_sweep_costs_one_case_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "run"
    with LoopbackCluster(servers=2, key="loopback", threads=1, log_dir=tmp_path / "rpc") as cl:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness",
                "bench",
                "--suite",
                "quick",
                "--models",
                "cae@16,cae@32",
                "--backends",
                "tvm-llvm",
                "--lowerings",
                LOWERINGS,
                "--no-calibrate",
                "--no-report",
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
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        killed = None
        try:
            t0 = time.monotonic()
            while proc.poll() is None and time.monotonic() - t0 < 400:
                if killed is None and len(_records(out)) >= 2:
                    busy = cl.busy_servers()
                    if busy:
                        killed = busy[0]
                        cl.kill(killed)
                time.sleep(0.02)
            stdout, stderr = proc.communicate(timeout=max(1, 420 - (time.monotonic() - t0)))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        survivors = set(cl.registered())
    assert killed is not None, "no server was caught serving a session"
    assert proc.returncode == 0, stderr[-3000:]
    recs = _records(out)
    assert len(recs) == 10  # nothing lost
    errors = [r for r in recs if r["status"] == "error"]
    # The killed server was serving a session. Usually a remote call of the case is in flight and fails: that
    # case, and only it, is an error naming the server. The kill can also land after the case's last remote
    # call (its results already here, the session not yet closed): then no case is lost at all.
    seen = [(r["case_id"], r["status"], r["reason"]) for r in recs]
    assert len({r["case_id"] for r in recs}) == 10, seen  # each case once: none lost, none run twice
    assert {r["status"] for r in recs} <= {"ok", "error"} and len(errors) <= 1, seen
    assert len(survivors) == 1
    # the server of every record, in the order the sweep ran them: an ok case's from its details, an error's
    # from the reason that must name it
    named = [re.search(r"\bremote (\S+) \(key loopback\) failed during \S", e["reason"] or "") for e in errors]
    assert all(named), [e["reason"] for e in errors]
    where = [r["details"]["remote"]["server"] if r["status"] == "ok" else named[errors.index(r)].group(1) for r in recs]
    (killed_at,) = set(where) - survivors  # exactly one server vanished, and it had served cases
    assert where[-1] in survivors  # the survivor finished the run
    assert len({s for s, r in zip(where, recs) if r["status"] == "ok"}) == 2  # both served cases
    # The sweep holds one session at a time, so the killed server held exactly one case when it died: the last
    # one it appears on. Every error is that case, naming that server; no case after it ran there.
    held = max(i for i, s in enumerate(where) if s == killed_at)
    assert all(i == held for i, r in enumerate(recs) if r["status"] == "error"), seen
    assert all(s in survivors and recs[i]["status"] == "ok" for i, s in enumerate(where) if i > held), seen
    assert all(r["status"] == "ok" for i, r in enumerate(recs) if i != held), seen
