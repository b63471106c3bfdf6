"""CUDA backends on a machine that may have no GPU: the zoo builds for CUDA here (TVM's generated kernels are
compiled by nvcc to cubins), the cases say precisely why they cannot run, and nothing passes silently.
Where a GPU is present the same tests expect the cases to run on it."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.checking.numerics import POLICY
from harness.measure import cuda

from ..helpers import assert_one_line_error, run_cli

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


@pytest.mark.heavy
@pytest.mark.requires_nvcc
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
        "--build-dir",
        str(tmp_path / "build"),
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
    p = run_cli(
        "build", "cae@16", "--backends", "ort-cpu", "--out", str(tmp_path / "x"), "--build-dir", str(tmp_path / "build")
    )
    assert_one_line_error(p, "ahead of time")
    p = run_cli(
        "build", "cae@16", "--cuda-arch", "ampere", "--out", str(tmp_path / "x"), "--build-dir", str(tmp_path / "build")
    )
    assert_one_line_error(p, "--cuda-arch")


def _validate_cuda(tmp_path) -> dict:
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
        "--build-dir",
        str(tmp_path / "build"),
        timeout=600,
    )
    return {r["case_id"]: r for r in json.loads(f.read_text())}


@pytest.mark.skipif(GPU, reason="the no-GPU contract; on this machine a GPU is present (its test runs instead)")
def test_cuda_cases_are_built_not_run_here_and_say_why(tmp_path):
    """validate: tvm-cuda compiles the model (same code as on a GPU) and the record says why it did not run;
    ort-cuda names every missing piece."""
    recs = _validate_cuda(tmp_path)
    for lw in ("native", "phase"):
        t, o = recs[f"cae@16/{lw}/tvm-cuda/b1"], recs[f"cae@16/{lw}/ort-cuda/b1"]
        assert t["status"] == "skipped" and t["reason"] == f"built, not run: {cuda.probe().reason}"
        assert t["details"]["kernels"] > 0 and t["details"]["target"]["kind"] == "cuda"
        assert t["details"]["fast_math"] is False and t["compile_s"] is not None
        assert o["status"] == "skipped" and cuda.probe().reason in o["reason"]
        if shutil.which("nvidia-smi") is None:
            assert "onnxruntime-gpu is not installed" in o["reason"]


@pytest.mark.skipif(not GPU, reason=f"needs a CUDA GPU: {cuda.probe().reason}")
def test_cuda_cases_run_on_the_gpu_and_pass(tmp_path):
    """validate on a GPU machine: both CUDA backends run every case on device 0, the outputs were checked
    to live on the device, they pass the reference, and the build's facts are still recorded."""
    recs = _validate_cuda(tmp_path)
    dev = cuda.probe().devices[0]
    for lw in ("native", "phase"):
        for b in ("tvm-cuda", "ort-cuda"):
            r = recs[f"cae@16/{lw}/{b}/b1"]
            assert r["status"] == "ok", r
            assert r["details"]["device"] == dev and "cuda" in r["details"]["device_check"], r["details"]
            assert r["numerics"]["passed"], r["numerics"]
            assert r["compile_s"] is not None
        t = recs[f"cae@16/{lw}/tvm-cuda/b1"]
        assert t["details"]["kernels"] > 0 and t["details"]["target"]["arch"] == dev["arch"]
        assert t["details"]["fast_math"] is False


def _bench_cuda(run) -> str:
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
        "--build-dir",
        str(run.parent / "build"),
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    md = (run / "report.md").read_text()
    assert "## CUDA backends" in md and "CUDA backends" in (run / "report.html").read_text()
    return md


@pytest.mark.skipif(GPU, reason="the no-GPU contract; on this machine a GPU is present (its test runs instead)")
def test_bench_require_gpu_refuses_without_one_and_the_report_lists_cuda(tmp_path):
    p = run_cli(
        "bench",
        "--suite",
        "cuda",
        "--require-gpu",
        "--out",
        str(tmp_path / "r"),
        "--build-dir",
        str(tmp_path / "build"),
    )
    assert_one_line_error(p, "no CUDA GPU")
    assert not (tmp_path / "r" / "results.jsonl").exists()
    md = _bench_cuda(tmp_path / "run")
    row = next(ln for ln in md.splitlines() if ln.startswith("| tvm-cuda |"))
    assert "| 1 | 0 | 1 |" in row and cuda.probe().reason in row
    assert "built, not run" in md


@pytest.mark.skipif(not GPU, reason=f"needs a CUDA GPU: {cuda.probe().reason}")
def test_bench_on_a_gpu_times_the_cuda_cases_and_the_report_lists_them(tmp_path):
    run = tmp_path / "run"
    md = _bench_cuda(run)
    recs = [json.loads(ln) for ln in (run / "results.jsonl").read_text().splitlines() if ln.strip()]
    for b in ("tvm-cuda", "ort-cuda"):
        mine = [r for r in recs if r.get("backend") == b]
        assert mine, f"no {b} record"
        for r in mine:
            assert r["status"] == "ok" and r["numerics"]["passed"], r
            assert r["details"]["device"] == cuda.probe().devices[0] and "cuda" in r["details"]["device_check"]
            assert r["latency_ms"]["n"] >= 1 and r["latency_ms"]["median"] > 0, r["latency_ms"]
    assert "built, not run" not in md and next(ln for ln in md.splitlines() if ln.startswith("| tvm-cuda |"))


def _fuzz_cuda(tmp_path) -> tuple[dict, str]:
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
        "--build-dir",
        str(tmp_path / "build"),
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    s = json.loads((tmp_path / "fz" / "summary.json").read_text())
    assert s["cases"] == 6 and not s["unexplained"], s["unexplained"]
    return s, (tmp_path / "fz" / "summary.md").read_text()


@pytest.mark.skipif(GPU, reason="the no-GPU contract; on this machine a GPU is present (its test runs instead)")
def test_fuzz_on_tvm_cuda_compiles_and_counts_what_it_could_not_judge(tmp_path):
    s, md = _fuzz_cuda(tmp_path)
    nr = s["built_not_run"]["tvm-cuda"]
    # the rest are findings at compile time (e.g. a refused valid model) or invalid models rightly refused
    assert nr["count"] + s["failing_cases"] <= s["cases"] and nr["count"] > 0
    assert cuda.probe().reason in nr["reason"]
    assert "compiled but not run" in md


@pytest.mark.skipif(not GPU, reason=f"needs a CUDA GPU: {cuda.probe().reason}")
def test_fuzz_on_tvm_cuda_judges_every_compiled_case_on_the_gpu(tmp_path):
    s, md = _fuzz_cuda(tmp_path)
    assert "tvm-cuda" not in s["built_not_run"], s["built_not_run"]
    assert "compiled but not run" not in md


def test_tf32_policy_is_looser_and_named():
    assert POLICY["tf32"].rel_l2 > POLICY["float32"].rel_l2 and POLICY["tf32"].atol > POLICY["float32"].atol


@pytest.mark.skipif(GPU, reason="the unavailable message is for machines without a GPU")
def test_list_says_tvm_cuda_builds_but_cannot_run():
    p = run_cli("list")
    line = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("tvm-cuda"))
    assert "builds here; cannot run" in line and "driver" in line
    line = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("ort-cuda"))
    assert "unavailable" in line


@pytest.mark.skipif(not GPU, reason=f"needs a CUDA GPU: {cuda.probe().reason}")
def test_list_says_both_cuda_backends_are_available_on_a_gpu():
    p = run_cli("list")
    for b in ("tvm-cuda", "ort-cuda"):
        line = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith(b))
        assert line.split() == [b, "available"], line
