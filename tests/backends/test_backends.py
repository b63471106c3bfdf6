"""Every registered backend through the same contract: compile -> run -> compare -> time."""

import numpy as np
import pytest

from harness.backends import BACKENDS, ModelArtifact, get_backend
from harness.backends.base import UnsupportedModel
from harness.checking.numerics import compare
from harness.checking.reference import zoo_reference
from harness.core.config import CPU_BACKENDS, CUDA_BACKENDS, RunConfig, TimingConfig
from models import get_model

from .conftest import make_col2im_model

# the tuned TVM configuration only compiles workloads its database covers: tests/backends/test_tuning.py
DEFAULT_BACKENDS = [b for b in BACKENDS if BACKENDS[b].file_default]
FILE_BACKENDS = [b for b in DEFAULT_BACKENDS if not BACKENDS[b].zoo_only]
CFG = RunConfig(threads=2)
TIMING = TimingConfig(warmup=1, min_repeats=3, min_time_s=0.0, max_time_s=2.0)


@pytest.mark.parametrize("backend_id", CPU_BACKENDS)
def test_every_cpu_backend_is_available_here(backend_id):
    a = get_backend(backend_id).availability()
    assert a.available, a.reason


@pytest.mark.parametrize("backend_id", CUDA_BACKENDS)
def test_cuda_backends_run_only_with_a_gpu_and_say_why_not(backend_id):
    """tvm-cuda is available everywhere (it builds here; its cases are "built, not run" without a GPU);
    ort-cuda needs onnxruntime-gpu and a device. Without a GPU each names the missing driver or device."""
    from harness.measure import cuda

    a = get_backend(backend_id).availability()
    p = cuda.probe()
    if not p.runnable:
        assert p.reason in a.reason
        assert a.available == (backend_id == "tvm-cuda")


@pytest.mark.parametrize("backend_id", FILE_BACKENDS)
def test_hand_written_grouped_convtranspose_matches_reference(backend_id, hand_artifact):
    art, feeds, refs = hand_artifact
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
    from harness.backends.tvm.common import host_target

    t = host_target(2)
    assert t["kind"] == "llvm" and t["num-cores"] == 2 and t["mcpu"] not in ("", "native")


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
