"""Every registered backend through the same contract: compile -> run -> compare -> time."""

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from harness.backends import BACKENDS, ModelArtifact, get_backend
from harness.backends.base import UnsupportedModel
from harness.checking.numerics import compare
from harness.checking.reference import zoo_reference
from harness.core.config import CPU_BACKENDS, CUDA_BACKENDS, RunConfig, TimingConfig
from harness.measure import cuda
from models import get_model

from ..helpers import make_col2im_model

# the tuned TVM configuration only compiles workloads its database covers: tests/backends/test_tuning.py
DEFAULT_BACKENDS = [b for b in BACKENDS if BACKENDS[b].file_default]
FILE_BACKENDS = [b for b in DEFAULT_BACKENDS if not BACKENDS[b].zoo_only]
CFG = RunConfig(threads=2)
TIMING = TimingConfig(warmup=1, min_repeats=3, min_time_s=0.0, max_time_s=2.0)


@pytest.mark.parametrize("backend_id", CPU_BACKENDS)
def test_every_cpu_backend_is_available_here(backend_id):
    a = get_backend(backend_id).availability()
    assert a.available, a.reason


GPU = cuda.probe().runnable
NO_GPU_WHY = cuda.probe().reason or "a CUDA GPU is present"


@pytest.mark.skipif(GPU, reason="the no-GPU contract; on this machine a GPU is present (its test runs instead)")
@pytest.mark.parametrize("backend_id", CUDA_BACKENDS)
def test_without_a_gpu_cuda_backends_say_why_they_cannot_run(backend_id):
    """tvm-cuda and iree-cuda are available everywhere (they build here; their cases are "built, not run" without a
    GPU);
    ort-cuda needs onnxruntime-gpu and a device. Without a GPU each names the missing driver or device."""
    a = get_backend(backend_id).availability()
    p = cuda.probe()
    assert not p.runnable and p.reason and ("driver" in p.reason or "device" in p.reason)
    assert p.reason in a.reason
    assert a.available == (backend_id in ("tvm-cuda", "iree-cuda"))
    if backend_id in ("tvm-cuda", "iree-cuda"):
        assert a.reason == f"builds here; cannot run: {p.reason}"


@pytest.mark.skipif(not GPU, reason=f"needs a CUDA GPU: {NO_GPU_WHY}")
@pytest.mark.parametrize("backend_id", CUDA_BACKENDS)
def test_with_a_gpu_cuda_backends_are_available_with_no_excuse(backend_id):
    """On a GPU machine both CUDA backends run (the cuda extra installs onnxruntime-gpu): a missing piece
    here is a failure that names it, never a skip."""
    a = get_backend(backend_id).availability()
    assert a.available and a.reason == "", a.reason


@pytest.mark.skipif(GPU, reason="the no-GPU contract; on this machine a GPU is present (its test runs instead)")
def test_without_a_gpu_tvm_cuda_builds_and_says_built_not_run(hand_artifact, tmp_path):
    from harness.backends.tvm.common import BuiltNotRun

    art = dataclasses.replace(hand_artifact[0], cache_dir=str(tmp_path))
    with pytest.raises(BuiltNotRun) as e:
        get_backend("tvm-cuda").compile(art, CFG)
    assert str(e.value) == f"built, not run: {cuda.probe().reason}"
    assert e.value.info["kernels"] > 0 and e.value.info["target"]["kind"] == "cuda"
    assert e.value.info["fast_math"] is False and "device" not in e.value.info
    lib = Path(e.value.info["library"])
    assert lib.parent == tmp_path and lib.stat().st_size > 0 and lib.with_suffix(".cu").read_text().count("__global__")


@pytest.mark.skipif(not GPU, reason=f"needs a CUDA GPU: {NO_GPU_WHY}")
@pytest.mark.parametrize("backend_id", CUDA_BACKENDS)
def test_with_a_gpu_cuda_backends_run_on_the_device_and_match_reference(backend_id, hand_artifact, tmp_path):
    art, feeds, refs = hand_artifact
    art = dataclasses.replace(art, cache_dir=str(tmp_path))
    compiled = get_backend(backend_id).compile(art, RunConfig(threads=2, tf32=False))
    assert compiled.info["device"] == cuda.probe().devices[0]
    c = compare(compiled.run(feeds), refs)
    assert c, c.reason
    assert compiled.info["device_check"].startswith("outputs on") and "cuda" in compiled.info["device_check"]
    samples = compiled.time(feeds, TIMING)
    assert len(samples) >= 3 and all(s > 0 for s in samples)


@pytest.mark.parametrize("backend_id", FILE_BACKENDS)
def test_hand_written_grouped_convtranspose_matches_reference(backend_id, hand_artifact):
    art, feeds, refs = hand_artifact
    if backend_id.startswith("iree"):  # asymmetric pads: IREE refuses the node, a known limitation it names
        from harness.backends.iree import IreeFailure
        from harness.checking.known import graph_matches

        with pytest.raises(IreeFailure, match="onnx.ConvTranspose"):
            get_backend(backend_id).compile(art, CFG)
        assert [e.id for e in graph_matches(backend_id, "native", onnx.load(art.onnx_path))] == [
            "iree-convtranspose-unconverted"
        ]
        return
    compiled = get_backend(backend_id).compile(art, CFG)
    outs = compiled.run(feeds)
    c = compare(outs, refs)
    assert c, c.reason
    samples = compiled.time(feeds, TIMING)
    assert len(samples) >= 3 and all(s > 0 for s in samples)
    assert compiled.info["engine_version"]


@pytest.mark.parametrize("backend_id", DEFAULT_BACKENDS)
def test_zoo_model_matches_pytorch_float64(backend_id, tmp_path):
    from harness.pipeline.export import export_zoo

    spec = get_model("cae")
    exp = export_zoo(spec, 16, 1, 0, tmp_path)
    feeds = {"x": np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)}
    art = ModelArtifact(exp.path, {"x": (1, 3, 16, 16)}, {"x": "float32"}, zoo_model="cae", zoo_size=16)
    outs = get_backend(backend_id).compile(art, CFG).run(feeds)
    c = compare(outs, zoo_reference(spec, 16, feeds, 0))
    assert c, c.reason


def test_torch_backend_refuses_files(hand_artifact):
    with pytest.raises(UnsupportedModel, match="zoo models only"):
        get_backend("torch-cpu").compile(hand_artifact[0], CFG)


def test_tvm_unsupported_op_is_named(tmp_path):
    path = make_col2im_model(tmp_path / "col2im.onnx")
    art = ModelArtifact(str(path), {"X": (1, 4, 9)}, {"X": "float32"})
    with pytest.raises(UnsupportedModel, match="Col2Im"):
        get_backend("tvm-llvm").compile(art, CFG)


def test_tvm_target_is_this_host():
    from tvm.target import codegen

    from harness.backends.tvm.common import cpu_target, host_target

    # mcpu: LLVM's own name for this host's CPU (a different query than the target detection under test)
    system_cpu = codegen.llvm_get_system_cpu()
    assert system_cpu not in ("", "generic", "native")
    assert codegen.llvm_is_valid_cpu(system_cpu, codegen.llvm_get_system_triple())
    t = host_target(3)  # not the default thread count (2) nor this machine's core count: it must flow through
    assert t == {"kind": "llvm", "mcpu": system_cpu, "num-cores": 3}
    assert cpu_target(RunConfig(threads=1)) == {"kind": "llvm", "mcpu": system_cpu, "num-cores": 1}


def test_missing_input_is_refused(hand_artifact):
    compiled = get_backend("ort-cpu").compile(hand_artifact[0], CFG)
    with pytest.raises(ValueError, match="missing inputs"):
        compiled.run({})


def test_tvm_maxpool_indices_is_unsupported_with_the_reason(tmp_path):
    """TVM 0.27's MaxPool converter has no Indices output (segnet); that is a skip naming it, not a crash."""
    from onnx import TensorProto, helper

    node = helper.make_node("MaxPool", ["X"], ["Y", "I"], kernel_shape=[2, 2], strides=[2, 2])
    g = helper.make_graph(
        [node],
        "mp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 4, 4])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 2, 2]),
            helper.make_tensor_value_info("I", TensorProto.INT64, [1, 1, 2, 2]),
        ],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    path = tmp_path / "mp.onnx"
    import onnx

    onnx.save(m, str(path))
    art = ModelArtifact(str(path), {"X": (1, 1, 4, 4)}, {"X": "float32"})
    with pytest.raises(UnsupportedModel, match="no MaxPool Indices output"):
        get_backend("tvm-llvm").compile(art, RunConfig(threads=1))


def test_openvino_missing_is_unavailable_with_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    a = get_backend("openvino-cpu").availability()
    assert not a and "openvino" in a.reason and ".[openvino]" in a.reason


def test_openvino_unsupported_op_is_named(tmp_path):
    import onnx
    from onnx import helper

    path = tmp_path / "maxunpool.onnx"
    x = helper.make_node("MaxUnpool", ["X", "I"], ["Y"], kernel_shape=[2, 2], strides=[2, 2])
    g = helper.make_graph(
        [x],
        "mu",
        [helper.make_tensor_value_info("X", 1, [1, 1, 2, 2]), helper.make_tensor_value_info("I", 7, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("Y", 1, [1, 1, 4, 4])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, str(path))
    art = ModelArtifact(str(path), {"X": (1, 1, 2, 2), "I": (1, 1, 2, 2)}, {"X": "float32", "I": "int64"})
    with pytest.raises(UnsupportedModel, match="openvino: No conversion rule found for operations: MaxUnpool"):
        get_backend("openvino-cpu").compile(art, CFG)
