"""CUDA backends on a machine that may have no GPU: the zoo builds for CUDA here (TVM's generated kernels are
compiled by nvcc to cubins), the cases say precisely why they cannot run, and nothing passes silently.
Where a GPU is present the same tests expect the cases to run on it."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.checking.numerics import POLICY
from harness.measure import cuda
from tests.conftest import run_cli

GPU = cuda.probe().runnable
TVM_LOWERINGS = ["native", "explicit_pads", "zero_insert", "phase", "gemm_overlap_add"]  # TVM has no Col2Im


def test_probe_says_why_there_is_no_gpu_and_picks_a_stated_arch():
    p = cuda.probe()
    if p.runnable:
        assert p.devices[0]["arch"].startswith("sm_") and cuda.arch_for(None)[0] == p.devices[0]["arch"]
    else:
        assert p.reason and ("driver" in p.reason or "device" in p.reason)
        arch, why = cuda.arch_for(None)
        assert arch == cuda.DEFAULT_ARCH == "sm_80" and p.reason in why
    assert cuda.arch_for("sm_90a") == ("sm_90a", "--cuda-arch")


def test_build_the_seed_autoencoder_and_a_segmentation_decoder_for_cuda(tmp_path):
    """Every lowering TVM supports, for cae (seed autoencoder) and unet (segmentation decoder): library,
    kernel source and (nvcc) cubin for sm_80."""
    out = tmp_path / "art"
    p = run_cli(
        "build",
        "cae@16",
        "unet@32",
        "--backends",
        "tvm-cuda",
        "--lowerings",
        "all",
        "--cuda-arch",
        "sm_80",
        "--out",
        str(out),
        timeout=900,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    data = json.loads((out / "build.json").read_text())
    cases = {c["case_id"]: c for c in data["cases"]}
    for model in ("cae@16", "unet@32"):
        for lw in TVM_LOWERINGS:
            c = cases[f"{model}/{lw}/tvm-cuda/b1"]
            assert c["status"] == "ok" and c["target"]["arch"] == "sm_80" and c["kernels"] > 0, c
            src = (out / f"{model.replace('@', '-')}_{lw}_tvm-cuda_b1" / "kernels.cu").read_text()
            assert src.count('extern "C" __global__') == c["kernels"]
            assert (out / f"{model.replace('@', '-')}_{lw}_tvm-cuda_b1" / "model.so").stat().st_size > 0
            if data["nvcc"]:
                assert c["nvcc"]["status"] == "ok", c["nvcc"]
                assert (out / f"{model.replace('@', '-')}_{lw}_tvm-cuda_b1" / "kernels.cubin").stat().st_size > 0
        col = cases[f"{model}/gemm_col2im/tvm-cuda/b1"]
        assert col["status"] == "skipped" and "Col2Im" in col["reason"]
    assert "nvcc" in p.stdout or data["nvcc"] is None


def test_build_refuses_engines_that_compile_at_session_creation(tmp_path):
    p = run_cli("build", "cae@16", "--backends", "ort-cpu", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "ahead of time" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run_cli("build", "cae@16", "--cuda-arch", "ampere", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "--cuda-arch" in p.stderr


def test_cuda_cases_are_built_not_run_here_and_say_why(tmp_path):
    """validate: tvm-cuda compiles the model (same code as on a GPU) and the record says why it did not run;
    ort-cuda names every missing piece. On a GPU machine both run and pass."""
    f = tmp_path / "v.json"
    run_cli(
        "validate",
        "cae@16",
        "--backends",
        "tvm-cuda,ort-cuda",
        "--lowerings",
        "native,phase",
        "--json",
        str(f),
        timeout=600,
    )
    recs = {r["case_id"]: r for r in json.loads(f.read_text())}
    for lw in ("native", "phase"):
        t, o = recs[f"cae@16/{lw}/tvm-cuda/b1"], recs[f"cae@16/{lw}/ort-cuda/b1"]
        if GPU:
            assert t["status"] == "ok" and "device_check" in t["details"]
            continue
        assert t["status"] == "skipped" and t["reason"] == f"built, not run: {cuda.probe().reason}"
        assert t["details"]["kernels"] > 0 and t["details"]["target"]["kind"] == "cuda"
        assert t["details"]["fast_math"] is False and t["compile_s"] is not None
        assert o["status"] == "skipped" and cuda.probe().reason in o["reason"]
        if shutil.which("nvidia-smi") is None:
            assert "onnxruntime-gpu is not installed" in o["reason"]


def test_bench_require_gpu_refuses_without_one_and_the_report_lists_cuda(tmp_path):
    if not GPU:
        p = run_cli("bench", "--suite", "cuda", "--require-gpu", "--out", str(tmp_path / "r"))
        assert p.returncode == 2 and "no CUDA GPU" in p.stderr and len(p.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "r" / "results.jsonl").exists()
    run = tmp_path / "run"
    p = run_cli(
        "bench",
        "--no-calibrate",
        "--suite",
        "quick",
        "--models",
        "cae@16",
        "--backends",
        "ort-cpu,tvm-cuda,ort-cuda",
        "--out",
        str(run),
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    md = (run / "report.md").read_text()
    assert "## CUDA backends" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| tvm-cuda |"))
    if not GPU:
        assert "| 1 | 0 | 1 |" in row and cuda.probe().reason in row
        assert "built, not run" in md and "CUDA backends" in (run / "report.html").read_text()


def test_fuzz_on_tvm_cuda_compiles_and_counts_what_it_could_not_judge(tmp_path):
    p = run_cli(
        "fuzz",
        "--cases",
        "6",
        "--seed",
        "11",
        "--backends",
        "tvm-cuda",
        "--lowerings",
        "native",
        "--out",
        str(tmp_path / "fz"),
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    s = json.loads((tmp_path / "fz" / "summary.json").read_text())
    if not GPU:
        nr = s["built_not_run"]["tvm-cuda"]
        # the rest are findings at compile time (e.g. a refused valid model) or invalid models rightly refused
        assert nr["count"] + s["failing_cases"] <= s["cases"] and nr["count"] > 0
        assert not s["unexplained"], s["unexplained"]
        assert "compiled but not run" in (tmp_path / "fz" / "summary.md").read_text()


def test_output_padding_reproducer_builds_for_cuda_and_only_a_gpu_decides():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "docs" / "upstream" / "tvm_cuda_output_padding.py"
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert "built for sm_80" in p.stdout
    assert p.returncode in ((0, 1) if GPU else (2,)), p.stdout + p.stderr


def test_tf32_policy_is_looser_and_named():
    assert POLICY["tf32"].rel_l2 > POLICY["float32"].rel_l2 and POLICY["tf32"].atol > POLICY["float32"].atol


@pytest.mark.skipif(GPU, reason="the unavailable message is for machines without a GPU")
def test_list_says_tvm_cuda_builds_but_cannot_run():
    p = run_cli("list")
    line = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("tvm-cuda"))
    assert "builds here; cannot run" in line and "driver" in line
    line = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("ort-cuda"))
    assert "unavailable" in line


def test_known_cuda_build_failure_is_matched_narrowly_and_its_reproducer_still_fails():
    """wave1d's long Conv1d gets a 512 KiB shared-memory buffer from dlight (make build-cuda found it): the
    ledger entry explains exactly that failure, and the minimal reproducer still shows it (exit 1) — when TVM
    fixes it, this fails and the entry is to be removed."""
    import subprocess
    import sys
    from pathlib import Path

    from harness.checking.known import match_cuda_build

    err = "ptxas error   : Entry function 'k' uses too much shared data (0x80000 bytes, 0xc000 max)"
    assert match_cuda_build("wave1d@8192/phase/tvm-cuda/b1", err)[0] == "tvm-cuda-conv1d-shared-memory"
    assert match_cuda_build("unet@256/phase/tvm-cuda/b1", err) is None
    assert match_cuda_build("wave1d@8192/phase/tvm-cuda/b1", "ptxas error: too many resources") is None
    script = Path(__file__).resolve().parents[2] / "docs" / "upstream" / "tvm_cuda_conv1d_shared_memory.py"
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "largest __shared__ buffer 524288 bytes" in p.stdout, p.stdout + p.stderr


def test_conformance_ledger_entry_for_explicit_pads_on_cuda_still_reproduces():
    """`convtx conformance --backends tvm-cuda` found dlight failing on ConvTranspose + Pad (explicit_pads);
    the ledger explains those three cases, and the reproducer shows the failure (exit 1) until TVM fixes it."""
    import subprocess
    import sys
    from pathlib import Path

    from harness.audit.conformance import LEDGER

    assert sum(e.backend == "tvm-cuda" and e.pattern.endswith(".const/explicit_pads") for e in LEDGER) == 3
    script = Path(__file__).resolve().parents[2] / "docs" / "upstream" / "tvm_cuda_explicit_pads_cache_write.py"
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and "LLVM: builds" in p.stdout and "not properly inlined" in p.stdout, p.stdout
