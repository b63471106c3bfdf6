"""The remote sweep's dispatcher (harness/pipeline/farm.py) without a tracker: fake servers behind a fake
`run_isolated`, so the logic — slots per server, compile-ahead, one writer, retry after a lost server, GPU
routing, heterogeneity — is checked in milliseconds. The real thing over loopback servers is
tests/backends/test_rpc.py (heavy tier)."""

from __future__ import annotations

import threading
import time

import pytest

from harness.core.config import RunConfig
from harness.pipeline import farm
from harness.pipeline.farm import RemoteCase

from ..helpers import case_key

CPU = {"cpu": "znver5", "triple": "x86_64-pc-linux-gnu", "threads": 1}


class FakeFarm:
    """Servers handed out first-free, like the tracker; each case holds one for `hold_s`."""

    def __init__(self, servers: dict[str, dict], hold_s: float = 0.05, lose: set[str] = frozenset()):
        self.machines = servers
        self.free = list(servers)
        self.lock = threading.Lock()
        self.hold_s, self.lose = hold_s, set(lose)
        self.compiled: list[tuple[str, str]] = []  # (case id, cpu) built ahead
        self.ran: list[tuple[str, str, float, float]] = []  # (case id, server, start, end)
        self.gone: set[str] = set()  # lost servers: the tracker dropped them
        self.warmed: list[tuple[str, tuple[str, ...]]] = []

    def worker(self, name: str, env: dict):
        fake = self

        class W:
            def start(self):
                pass

            def request(self, msg, timeout):
                if msg["op"] == "load":  # a dispatch slot warmed ahead
                    with fake.lock:
                        fake.warmed.append((name, tuple(msg["backends"])))
                    return {"ok": True}
                assert msg["op"] == "rpc_probe"
                return {"ok": True, "machines": dict(fake.machines)}

        return W()

    def run_isolated(self, w, prep, lowering, backend, cfg, run_id, build_dir, key):
        if cfg.compile_only:
            assert cfg.rpc_machine is not None  # built for a machine, without a session
            with self.lock:
                self.compiled.append((key.case_id, cfg.rpc_machine["cpu"]))
            if "unsupported" in key.case_id:
                return key.record("skipped", "tvm: an operator it lacks")
            return key.record("ok", "built (compile only)")
        gpu = backend == "tvm-cuda"
        while True:
            with self.lock:
                pick = [s for s in self.free if not gpu or self.machines[s].get("cuda")]
                if pick:
                    server = pick[0]
                    self.free.remove(server)
                    break
            time.sleep(0.001)
        start = time.time()
        time.sleep(self.hold_s)
        end = time.time()
        with self.lock:
            self.free.append(server)
            self.ran.append((key.case_id, server, start, end))
            lost = server in self.lose
            self.lose.discard(server)  # it dies once: the tracker drops it
            if lost:
                self.free.remove(server)
                self.gone.add(server)
        remote = {"server": server, "session_at": start, "machine": self.machines[server]}
        if lost:
            return key.record(
                "error",
                f"time: RemoteLost: remote {server} (key k) failed during timing: gone",
                details={"remote_lost": {"server": server, "stage": "time"}, "wall": {"start": start, "end": end}},
            )
        return key.record("ok", "", details={"remote": remote, "wall": {"start": start, "end": end}})


def _cases(n: int, backend: str = "tvm-llvm", prefix: str = "m") -> list[RemoteCase]:
    return [
        RemoteCase(None, "native", backend, case_key("r", f"{prefix}{i}@8/native/{backend}/b1", 1)) for i in range(n)
    ]


def _run(fake: FakeFarm, cases, monkeypatch, parallel=None):
    monkeypatch.setattr(farm, "_registered", lambda cfg: [s for s in list(fake.machines) if s not in fake.gone])
    monkeypatch.setattr(farm, "SLOT_CHECK_S", 0.01)
    cfg = RunConfig(threads=1, rpc_tracker="127.0.0.1:9", rpc_key="k", rpc_parallel=parallel)
    emitted, said = [], []
    writer = threading.get_ident()

    def emit(rec):
        assert threading.get_ident() == writer, "records are written by the caller's thread only"
        emitted.append(rec)

    facts = farm.run_remote(cases, cfg, "r", None, fake.worker, fake.run_isolated, emit, said.append)
    return emitted, said, facts


def _overlap(ran) -> bool:
    return any(a[1] != b[1] and a[2] < b[3] and b[2] < a[3] for i, a in enumerate(ran) for b in ran[i + 1 :])


def test_two_servers_run_cases_at_once_and_one_writer_gets_each_record_once(monkeypatch):
    fake = FakeFarm({"h:1": CPU, "h:2": CPU})
    emitted, said, facts = _run(fake, _cases(8), monkeypatch)
    assert sorted(r.case_id for r in emitted) == sorted(c.key.case_id for c in _cases(8))
    assert _overlap(fake.ran), fake.ran  # cases in flight on both servers at the same time
    assert {s for _, s, _, _ in fake.ran} == {"h:1", "h:2"}
    assert len(fake.compiled) == 8 and {cpu for _, cpu in fake.compiled} == {"znver5"}  # one machine kind
    assert sorted(fake.warmed) == [("rpc-1", ("tvm-llvm",)), ("rpc-2", ("tvm-llvm",))]  # slots started ahead
    per = facts["dispatch"]["cases_per_server"]
    assert sum(per.values()) == 8 and min(per.values()) >= 2, per
    assert not any("not alike" in s for s in said)


def test_rpc_parallel_one_runs_one_case_at_a_time(monkeypatch):
    fake = FakeFarm({"h:1": CPU, "h:2": CPU})
    emitted, _, facts = _run(fake, _cases(4), monkeypatch, parallel=1)
    assert len(emitted) == 4 and facts["dispatch"]["slots"] == 1
    assert not _overlap(fake.ran)


def test_a_case_whose_server_is_lost_runs_once_more_elsewhere_and_says_so(monkeypatch):
    fake = FakeFarm({"h:1": CPU, "h:2": CPU}, lose={"h:1"})
    emitted, said, facts = _run(fake, _cases(6), monkeypatch)
    assert sorted(r.case_id for r in emitted) == sorted(c.key.case_id for c in _cases(6))  # none lost, none twice
    assert all(r.status == "ok" for r in emitted), [(r.case_id, r.reason) for r in emitted]
    (retried,) = [r for r in emitted if r.details.get("retry")]
    assert retried.details["retry"]["lost_server"] == "h:1" and "RemoteLost" in retried.details["retry"]["after"]
    assert retried.details["remote"]["server"] == "h:2"
    assert facts["dispatch"]["retried"] == 1 and any("once more" in s for s in said)


def test_a_second_loss_is_the_cases_error(monkeypatch):
    fake = FakeFarm({"h:1": CPU, "h:2": CPU}, lose={"h:1", "h:2"}, hold_s=0.01)
    emitted, _, _ = _run(fake, _cases(1), monkeypatch)
    (rec,) = emitted
    assert rec.status == "error" and rec.details["retry"]["lost_server"] in {"h:1", "h:2"}


def test_a_case_that_cannot_be_built_ends_at_compile_ahead_without_a_device(monkeypatch):
    fake = FakeFarm({"h:1": CPU})
    cases = _cases(2) + _cases(1, prefix="unsupported")
    emitted, _, _ = _run(fake, cases, monkeypatch)
    bad = [r for r in emitted if "unsupported" in r.case_id]
    assert bad[0].status == "skipped" and bad[0].details["compiled_ahead_for"] == CPU
    assert all("unsupported" not in cid for cid, *_ in fake.ran)


def test_cuda_cases_go_to_a_gpu_server_or_are_skipped_with_one_reason(monkeypatch):
    gpu = {**CPU, "cuda": {"name": "H100", "compute_version": "9.0"}}
    fake = FakeFarm({"h:1": CPU, "h:2": gpu})
    emitted, said, _ = _run(fake, _cases(3, "tvm-cuda"), monkeypatch)
    assert all(r.status == "ok" and r.details["remote"]["server"] == "h:2" for r in emitted)
    assert {cpu for _, cpu in fake.compiled} == {"znver5"} and len(fake.compiled) == 3  # built for the GPU box only
    assert any("not alike" in s for s in said)  # a GPU box beside a CPU box: two kinds, said

    none = FakeFarm({"h:1": CPU})
    emitted, _, _ = _run(none, _cases(2, "tvm-cuda"), monkeypatch)
    assert [r.status for r in emitted] == ["skipped", "skipped"] and not none.ran
    assert "no server under key 'k' shows a CUDA GPU" in emitted[0].reason


def test_a_server_that_joins_mid_sweep_gets_cases(monkeypatch):
    fake = FakeFarm({"h:1": CPU}, hold_s=0.03)
    joined = threading.Event()

    def join():
        while len(fake.ran) < 2:
            time.sleep(0.005)
        with fake.lock:
            fake.machines["h:2"] = CPU
            fake.free.append("h:2")
        joined.set()

    threading.Thread(target=join, daemon=True).start()
    emitted, _, facts = _run(fake, _cases(12), monkeypatch)
    assert joined.is_set() and len(emitted) == 12
    assert "h:2" in {s for _, s, _, _ in fake.ran} and facts["dispatch"]["slots"] == 2


@pytest.mark.parametrize("parallel", ["0", "-1"])
def test_rpc_parallel_must_be_positive(parallel, capsys):
    from harness.cli import main

    assert (
        main(["validate", "cae@8", "--rpc-tracker", "127.0.0.1:9", "--rpc-key", "k", "--rpc-parallel", parallel]) == 2
    )
    assert f"--rpc-parallel {parallel}: expected a positive number" in capsys.readouterr().err
