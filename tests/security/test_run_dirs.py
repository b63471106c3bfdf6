"""A run directory or build cache received from someone else (docs/security.md): convtx writes nothing
outside it, follows no link in it, and turns no name read from it into a path of its choosing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.core import safefs
from harness.core.errors import ConvtxError

from ..helpers import assert_one_line_error, run_cli, write_run

VICTIM = "do not touch\n"


@pytest.fixture
def victim(tmp_path) -> Path:
    p = tmp_path / "outside" / "victim.txt"
    p.parent.mkdir()
    p.write_text(VICTIM)
    return p


def _run(tmp_path) -> Path:
    return write_run(tmp_path / "received" / "run-1")


@pytest.mark.parametrize(
    "name", ["report.md.tmp", "report.html.tmp", "run.json.tmp", "report.md", "report.html", "plots", "plots/a.png"]
)
def test_report_refuses_a_run_directory_holding_a_link(tmp_path, victim, name):
    """`report.md.tmp -> ~/somefile` had the file replaced by the report: a run directory holding a link is
    refused before anything is written (and no writer uses a guessable temporary name any more)."""
    run = _run(tmp_path)
    (run / name).parent.mkdir(exist_ok=True)
    (run / name).symlink_to(victim.parent if name == "plots" else victim)
    p = run_cli("report", str(run))
    assert_one_line_error(p, name.split("/")[-1], "symbolic link")
    assert victim.read_text() == VICTIM
    assert sorted(os.listdir(victim.parent)) == ["victim.txt"]
    assert not (run / "report.html").exists() or (run / "report.html").is_symlink()


@pytest.mark.parametrize("name", [".lock", "results.jsonl", "logs", "logs/worker-ort-cpu.log"])
def test_resume_refuses_a_run_directory_holding_a_link(tmp_path, victim, name):
    """`.lock -> file` had the file replaced by a pid; `results.jsonl -> file` truncated it (a torn last line
    is cut before appending); `logs -> folder` appended worker logs there."""
    run = _run(tmp_path)
    if name == "results.jsonl":
        victim.write_text(VICTIM + "torn")  # what repair would cut
        (run / name).unlink()
        target = victim
    elif name == "logs":
        target = victim.parent
    elif name.startswith("logs/"):
        (run / "logs").mkdir(exist_ok=True)
        target = victim
    else:
        target = victim
    (run / name).symlink_to(target)
    before = victim.read_text()
    p = run_cli("bench", "--resume", str(run), "--build-dir", str(tmp_path / "b"))
    assert_one_line_error(p, name.split("/")[-1], "symbolic link")
    assert victim.read_text() == before
    assert sorted(os.listdir(victim.parent)) == ["victim.txt"]


def test_every_writer_refuses_a_link_at_its_name_and_leaves_its_target(tmp_path, victim):
    """The primitives every writer goes through (harness/core/safefs.py)."""
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(ConvtxError, match="symbolic link"):
        safefs.write_atomic(link, "x")
    with pytest.raises(ConvtxError, match="symbolic link"):
        safefs.open_append(link)
    with pytest.raises(ConvtxError, match="symbolic link"):
        safefs.open_fd(link, os.O_RDWR | os.O_CREAT)
    assert victim.read_text() == VICTIM and link.is_symlink()
    tmp = safefs.private_tmp(tmp_path / "lib.so")
    assert tmp.suffix == ".so" and tmp.stat().st_size == 0 and tmp.parent == tmp_path
    assert safefs.private_tmp(tmp_path / "lib.so") != tmp  # fresh each time, not a guessable name


@pytest.mark.parametrize(
    "name", ["../../evil", "a/b", "..", ".", "", "x\ny", "-rf", "trailing ", "/abs", "ok\x1b[2K", "c:x", "a" * 300]
)
def test_a_name_from_a_file_becomes_a_path_component_only_when_it_is_one(name):
    with pytest.raises(ConvtxError, match="cannot be a file name"):
        safefs.component(name, "model name", "run.json")


@pytest.mark.parametrize("name", ["unet", "segnet_noidx", "cae@32", "znver4", "x86-64-v3", "my.model+v2", "my model"])
def test_ordinary_names_pass(name):
    assert safefs.component(name, "model name", "run.json") == name


def _meta(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _resumable(tmp_path) -> Path:
    """A real (tiny) run to resume: one ORT case of a hand model."""
    from ..helpers import make_convtranspose_model

    m = make_convtranspose_model(tmp_path / "m.onnx")
    run = tmp_path / "received" / "run-r"
    p = run_cli(
        "bench", "--models", str(m), "--backends", "ort-cpu", "--lowerings", "native", "--no-calibrate",
        "--no-report", "--out", str(run), "--build-dir", str(tmp_path / "b"), "--threads", "1",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    return run


def test_resume_refuses_a_model_name_that_is_not_a_file_name(tmp_path):
    run = _resumable(tmp_path)
    meta = _meta(run)
    meta["plan"]["refs"][0]["name"] = "../../../escaped"
    (run / "run.json").write_text(json.dumps(meta))
    (run / "results.jsonl").write_text("")
    p = run_cli("bench", "--resume", str(run), "--build-dir", str(tmp_path / "b"))
    assert_one_line_error(p, "run.json", "cannot be a file name")
    assert not list(tmp_path.rglob("escaped*"))


def test_resume_does_not_contact_a_tracker_the_command_line_did_not_name(tmp_path):
    """A received run.json naming an RPC tracker: resuming it would send libraries to that host. The tracker
    must be given again on the command line (the same one), or the resume is refused."""
    run = _resumable(tmp_path)
    meta = _meta(run)
    meta["config"]["rpc"] = {"tracker": "203.0.113.7:9190", "key": "k"}
    (run / "run.json").write_text(json.dumps(meta))
    p = run_cli("bench", "--resume", str(run), "--build-dir", str(tmp_path / "b"))
    assert_one_line_error(p, "203.0.113.7:9190", "--rpc-tracker", "confirm")


def test_run_json_keeps_model_paths_relative_to_the_working_folder(tmp_path):
    """A shared run.json does not carry the absolute paths of the machine it ran on (models under the working
    folder are stored relative to it; --resume from that folder finds them)."""
    from ..helpers import make_convtranspose_model

    make_convtranspose_model(tmp_path / "m.onnx")
    run = tmp_path / "run"
    p = run_cli(
        "bench", "--models", "m.onnx", "--backends", "ort-cpu", "--lowerings", "native", "--no-calibrate",
        "--no-report", "--out", "run", "--build-dir", "b", "--threads", "1", cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    assert [r["path"] for r in _meta(run)["plan"]["refs"]] == ["m.onnx"]
    assert str(tmp_path) not in (run / "run.json").read_text()
    (run / "results.jsonl").write_text("")
    p = run_cli("bench", "--resume", "run", "--build-dir", "b", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]


def test_a_bad_results_line_is_one_line_naming_file_and_line(tmp_path):
    run = _run(tmp_path)
    with open(run / "results.jsonl", "a") as f:
        f.write('{"not": "a record"}\n')
    n = len((run / "results.jsonl").read_text().splitlines())
    p = run_cli("report", str(run))
    assert_one_line_error(p, f"results.jsonl:{n}")


def test_tune_refuses_a_target_whose_cpu_name_is_not_a_file_name(tmp_path):
    p = run_cli("tune", "cae@32", "--target", json.dumps({"kind": "llvm", "mcpu": "../../x"}), "--trials", "1")
    assert_one_line_error(p, "mcpu", "cannot be a file name")
    from ..helpers import ROOT

    # before: the database went to tuning/tvm-V/llvm-../../x-xc, i.e. tuning/tvm-V/x-xc (seen here)
    assert not list((ROOT / "tuning").glob("*/x-xc")) and not list((ROOT / "tuning").glob("*/llvm-.."))


def test_make_quotes_the_run_folder(tmp_path):
    """RUN='z;echo …;#' was executed by the shell; now it is one argument of `convtx report`."""
    import subprocess

    p = subprocess.run(
        ["make", "-n", "report", f"RUN=z;touch {tmp_path}/PWNED;#"], capture_output=True, text=True, check=False
    )
    line = next(ln for ln in p.stdout.splitlines() if "convtx report" in ln)
    assert f"'z;touch {tmp_path}/PWNED;#'" in line, line


def test_a_restored_cache_entry_that_is_a_link_is_not_trusted_nor_written_through(tmp_path, victim):
    """A build cache restored by CI holding `entry -> file` (and its digest): not a hit, the link is removed
    (not its target), and the rebuilt entry is a file of its own."""
    from harness.core import cache

    d = tmp_path / "compiled"
    d.mkdir()
    entry = d / "model-tvm-abc.so"
    entry.symlink_to(victim)
    (d / "model-tvm-abc.so.sha256").write_text(cache._digest(victim) + "\n")
    assert not cache.is_valid(entry)
    assert not entry.exists() and victim.read_text() == VICTIM
    tmp = cache.tmp_path(entry)
    tmp.write_bytes(b"library")
    cache.commit(tmp, entry)
    assert cache.is_valid(entry) and not entry.is_symlink() and victim.read_text() == VICTIM


def test_a_remote_s_cpu_name_cannot_steer_the_tuning_database_s_folder():
    pytest.importorskip("tvm")
    from harness.backends.tvm.tuning import db_dir

    assert db_dir({"kind": "llvm", "mcpu": "znver2", "num-cores": 2}, "0.27").name == "llvm-znver2-2c"
    with pytest.raises(ConvtxError, match="mcpu"):
        db_dir({"kind": "llvm", "mcpu": "../../../etc", "num-cores": 2}, "0.27")
