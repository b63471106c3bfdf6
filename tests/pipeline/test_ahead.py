"""Compile before you time (harness/pipeline/ahead.py) and the sweep's ETA (harness/pipeline/progress.py), with
fake workers: the builds overlap across the cores, run longest first, never measure beside another build (a
deferred build is built again alone, afterwards), and every case gets its build's record. The real thing is
the bench end to end (tests/pipeline/test_bench.py) and `make bench`."""

from __future__ import annotations

import json
import threading
import time

import pytest

from harness.core.config import RunConfig
from harness.pipeline import ahead
from harness.pipeline.ahead import AheadCase, compile_local
from harness.pipeline.progress import Eta, case_parts, history

from ..helpers import case_key


class FakeBuilds:
    def __init__(
        self, hold_s: float = 0.05, needs_measuring: frozenset[str] = frozenset(), meet: threading.Barrier | None = None
    ):
        self.hold_s = hold_s
        self.meet = meet  # every build waits here: it passes only when that many builds are in flight at once
        self.needs = set(needs_measuring)
        self.lock = threading.Lock()
        self.spans: list[tuple[str, bool, float, float]] = []  # (case id, deferred mode, start, end)
        self.started: list[str] = []
        self.threads: set[int] = set()

    def worker(self, backend: str, name: str, slot: int):
        fake = self

        class W:
            def start(self):
                with fake.lock:
                    fake.started.append(name)

        return W()

    def run_isolated(self, w, prep, lowering, backend, cfg, run_id, build_dir, key):
        assert cfg.compile_only
        start = time.monotonic()
        with self.lock:
            self.threads.add(threading.get_ident())
        if cfg.defer_measurement and key.case_id in self.needs:
            rec = key.record("skipped", "deferred: kernel k has no kept decision", details={"deferred": "k"})
        elif "unsupported" in key.case_id:
            rec = key.record("skipped", "tvm: an operator it lacks")
        else:
            if self.meet is not None:
                self.meet.wait(timeout=10)  # BrokenBarrierError: the builds did not run side by side
            time.sleep(self.hold_s)
            rec = key.record("ok", "built (compile only)", compile_s=self.hold_s)
        with self.lock:
            self.spans.append((key.case_id, cfg.defer_measurement, start, time.monotonic()))
        return rec


def _cases(ids: list[str], expected: dict[str, float] | None = None) -> list[AheadCase]:
    return [
        AheadCase(None, c.split("/")[1], c.split("/")[2], case_key("r", c, 2), (expected or {}).get(c, 0.0))
        for c in ids
    ]


def test_builds_overlap_on_the_cores_and_each_case_gets_its_record(monkeypatch):
    monkeypatch.setattr(ahead, "usable_cpus", lambda: 2)
    # the four buildable cases meet in pairs at a two-party barrier: only builds running side by side pass it
    fake = FakeBuilds(hold_s=0.0, meet=threading.Barrier(2))
    ids = [f"m@8/{lw}/tvm-llvm/b1" for lw in ("native", "phase", "zero_insert", "explicit_pads", "unsupported")]
    out = compile_local(_cases(ids), RunConfig(), "r", None, fake.worker, fake.run_isolated, lambda s: None)
    assert set(out) == set(ids)
    assert out["m@8/unsupported/tvm-llvm/b1"].status == "skipped"
    assert all(out[c].status == "ok" for c in ids[:4]), {c: out[c].reason for c in ids[:4]}
    assert len(fake.threads) == 2 and all(mode for _, mode, _, _ in fake.spans)  # in parallel: measuring deferred


def test_a_build_that_must_measure_is_built_again_alone_after_the_others(monkeypatch):
    """The deferred build runs again with measuring allowed, and no other build is running meanwhile."""
    monkeypatch.setattr(ahead, "usable_cpus", lambda: 2)
    needs = frozenset({"m@8/phase/tvm-llvm/b1"})
    fake = FakeBuilds(hold_s=0.05, needs_measuring=needs)
    ids = [f"m@8/{lw}/tvm-llvm/b1" for lw in ("native", "phase", "zero_insert")]
    said = []
    out = compile_local(_cases(ids), RunConfig(), "r", None, fake.worker, fake.run_isolated, said.append)
    assert out["m@8/phase/tvm-llvm/b1"].status == "ok" and not out["m@8/phase/tvm-llvm/b1"].details.get("deferred")
    (alone,) = [s for s in fake.spans if not s[1]]
    assert alone[0] == "m@8/phase/tvm-llvm/b1"
    assert all(end <= alone[2] for cid, mode, _, end in fake.spans if mode)  # every parallel build had ended
    assert any("one at a time" in s for s in said)


def test_one_core_builds_in_order_and_measures_at_once(monkeypatch):
    """On one core nothing runs beside a build: nothing is deferred; longest expected build first."""
    monkeypatch.setattr(ahead, "usable_cpus", lambda: 1)
    fake = FakeBuilds(hold_s=0.0, needs_measuring=frozenset({"m@8/native/tvm-llvm/b1"}))
    ids = ["m@8/native/tvm-llvm/b1", "m@8/phase/tvm-llvm/b1"]
    compile_local(
        _cases(ids, {"m@8/phase/tvm-llvm/b1": 30.0}), RunConfig(), "r", None, fake.worker, fake.run_isolated, print
    )
    assert [s[0] for s in fake.spans] == ["m@8/phase/tvm-llvm/b1", "m@8/native/tvm-llvm/b1"]
    assert not any(mode for _, mode, _, _ in fake.spans)


def test_eta_scales_each_engine_and_part_by_its_own_pace():
    """A re-run: its TVM builds are cache hits (the build part all but vanishes), running takes what it took;
    its ORT cases the same as before."""
    past = {"o1": (1.0, 0.0), "o2": (1.0, 0.0), "t1": (1.0, 9.0), "t2": (2.0, 30.0)}
    eta = Eta({"o1": "ort-cpu", "o2": "ort-cpu", "t1": "tvm-llvm", "t2": "tvm-llvm"}, past)
    eta.done("o1", (1.0, 0.0))
    eta.done("t1", (1.0, 0.09))
    assert eta.remaining_s() == pytest.approx(1.0 + 2.0 + 0.3)


def test_eta_from_earlier_runs_scaled_by_this_runs_pace_else_the_engines_mean():
    clock = [0.0]
    past = {"a": (10.0, 0.0), "b": (20.0, 0.0), "c": (30.0, 0.0)}
    eta = Eta(
        {"a": "ort-cpu", "b": "ort-cpu", "c": "ort-cpu", "d": "tvm-llvm", "e": "tvm-llvm"}, past, lambda: clock[0]
    )
    assert eta.remaining_s() is None  # d and e: nothing to estimate them from yet
    eta.done("a", (5.0, 0.0))  # this run goes at half the earlier pace; d and e: the mean of the cases done
    assert eta.remaining_s() == pytest.approx(10.0 + 15.0 + 2 * 5.0)
    eta.done("d", (3.0, 1.0))  # tvm-llvm has no history: its mean so far
    assert eta.remaining_s() == pytest.approx(10.0 + 15.0 + 4.0)
    clock[0] = 9.0
    assert eta.text() == "0:00:09, ETA 0:00:29"


def test_history_reads_the_latest_runs_and_splits_running_from_building(tmp_path):
    runs = tmp_path / "runs"
    for name, wall in (("20260101-000000-aaaaaaaa", 5.0), ("20260102-000000-bbbbbbbb", 7.0)):
        d = runs / name
        d.mkdir(parents=True)
        timed = {
            "case_id": "m@8/native/tvm-llvm/b1",
            "details": {
                "wall": {"start": 100.0, "end": 100.0 + wall},
                "compiled_ahead": {"wall_s": 4.0, "slots": 2, "load_s": 0.1},
            },
        }
        built_only = {  # skipped at its build: its wall is the build's, counted once
            "case_id": "m@8/gemm_col2im/tvm-llvm/b1",
            "details": {"wall": {"start": 100.0, "end": 103.0}, "compiled_ahead": {"wall_s": 3.0, "slots": 2}},
        }
        skipped = {"case_id": "m@8/native/tvm-cuda/b1", "details": {}}  # never held a worker: no time
        lines = [json.dumps(timed), "{torn", json.dumps(built_only), json.dumps(skipped)]
        (d / "results.jsonl").write_text("\n".join(lines) + "\n")
    got = history(runs)
    assert got["m@8/native/tvm-llvm/b1"] == pytest.approx((7.0, 2.0))
    assert got["m@8/gemm_col2im/tvm-llvm/b1"] == pytest.approx((0.0, 1.5))
    assert got["m@8/native/tvm-cuda/b1"] == (0.0, 0.0) and len(got) == 3
    assert history(tmp_path / "none") == {}
    with pytest.raises(KeyError):
        case_parts({})
