"""The IREE backends (harness/backends/iree.py): compiled and run against the float64 spec reference, the option sets
and the flags recorded, the runtime's worker count checked, the module cached by content, the dispatch profile,
the CUDA build without a GPU, and the ledger's IREE entries matched narrowly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from harness.backends import get_backend
from harness.backends.base import BuiltNotRun
from harness.backends.iree import CHANNELS_LAST, IreeFailure, _dispatch_op
from harness.checking import known
from harness.core.config import RunConfig
from harness.core.convtranspose import conv_transpose, resolve
from harness.lowerings import get_lowering
from tests.helpers import artifact_of, convtranspose_model

pytestmark = pytest.mark.skipif(
    not get_backend("iree-cpu").availability(), reason=get_backend("iree-cpu").availability().reason
)

RNG = np.random.default_rng(3)
X = RNG.standard_normal((1, 4, 5, 5)).astype(np.float32)
W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
ATTRS = {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}


def _expected(x=X, w=W, **attrs):
    attrs = attrs or ATTRS
    return conv_transpose(x, w, None, resolve(attrs, x.shape, w.shape))


def _artifact(tmp_path, model, name="m", cache=True):
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return artifact_of(path, tmp_path / "compiled" if cache else None)[0]


@pytest.mark.parametrize("backend", ["iree-cpu", "iree-cpu-cl"])
def test_iree_compiles_runs_and_records_its_option_set(backend, tmp_path):
    art = _artifact(tmp_path, convtranspose_model(X.shape, W, **ATTRS))
    c = get_backend(backend).compile(art, RunConfig(threads=2))
    (y,) = c.run({"X": X})
    np.testing.assert_allclose(y, _expected(), rtol=1e-4, atol=1e-5)
    assert c.info["target_backend"] == "llvm-cpu" and "--iree-llvmcpu-target-cpu=host" in c.info["flags"]
    assert c.info["option_set"] == ("channels_last" if backend == "iree-cpu-cl" else "default")
    assert (CHANNELS_LAST in c.info["flags"]) == (backend == "iree-cpu-cl")
    assert c.info["threads"] == 2 and c.info["runtime_threads"] == 2  # the local-task workers, counted
    assert c.info["engine_version"].startswith("3.13") and c.info["target_cpu"].startswith("host: ")


def test_the_runtime_worker_count_is_checked_in_a_fresh_process(tmp_path):
    """One process, one count (the driver's executor is shared): asking the same process for another count
    afterwards is refused, not silently run on the first. And TVM's runtime, which pins the calling thread to one
    CPU, does not shrink IREE's executor: the backend widens the creating thread's affinity for it."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    path = tmp_path / "m.onnx"
    onnx.save(convtranspose_model(X.shape, W, **ATTRS), str(path))
    code = f"""
import os
import numpy as np
from harness.backends import get_backend
from harness.core.config import RunConfig
from tests.helpers import artifact_of
art = artifact_of({str(path)!r})[0]
x = {{"X": np.zeros({X.shape}, np.float32)}}
get_backend("tvm-llvm").compile(art, RunConfig(threads=2)).run(x)
print("tvm pinned", len(os.sched_getaffinity(0)))
c = get_backend("iree-cpu").compile(art, RunConfig(threads=2))
c.run(x)
print("ran", c.info["runtime_threads"], "affinity", len(os.sched_getaffinity(0)))
d = get_backend("iree-cpu").compile(art, RunConfig(threads=1))
try:
    d.run(x)
except RuntimeError as e:
    print("refused:", e)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "tvm pinned 1" in p.stdout, p.stdout  # what the backend has to undo
    assert "ran 2 affinity 1" in p.stdout, p.stdout  # two workers, and the calling thread's affinity restored
    assert "refused: iree: asked the local-task driver for 1 worker(s)" in p.stdout, p.stdout


def test_the_module_is_cached_by_content_and_option_set(tmp_path):
    art = _artifact(tmp_path, convtranspose_model(X.shape, W, **ATTRS))
    cfg = RunConfig(threads=2)
    first = get_backend("iree-cpu").compile(art, cfg)
    again = get_backend("iree-cpu").compile(art, cfg)
    other = get_backend("iree-cpu-cl").compile(art, cfg)
    assert (first.info["compile_cache"], again.info["compile_cache"], other.info["compile_cache"]) == (
        "miss",
        "hit",
        "miss",
    )
    assert first.vmfb == again.vmfb != other.vmfb
    np.testing.assert_array_equal(first.run({"X": X})[0], again.run({"X": X})[0])


def test_timing_and_the_dispatch_profile(tmp_path):
    from harness.core.config import TimingConfig

    art = _artifact(tmp_path, convtranspose_model(X.shape, W, relu=True, **ATTRS))
    c = get_backend("iree-cpu").compile(art, RunConfig(threads=2))
    samples = c.time({"X": X}, TimingConfig(warmup=1, min_repeats=3, min_time_s=0.0, max_time_s=1.0))
    assert len(samples) >= 3 and all(s > 0 for s in samples)
    layers = c.profile({"X": X}, runs=3)
    assert layers and all(lt.ms > 0 for lt in layers)
    assert all("dispatch_" in lt.node and "$" not in lt.node for lt in layers)
    assert _dispatch_op("main_graph$async_dispatch_1_conv_16x256x256x3x3x3_f32") == "conv"
    assert _dispatch_op("main_graph$async_dispatch_8_elementwise_transpose_3x16x2x16x2_f32") == "elementwise_transpose"


def test_a_model_iree_cannot_compile_fails_with_its_first_diagnostic(tmp_path):
    w = RNG.standard_normal((4, 1, 2, 2)).astype(np.float32)  # depthwise: iree-depthwise-convtranspose
    model = convtranspose_model((1, 4, 4, 4), w, group=4, strides=[2, 2])
    with pytest.raises(IreeFailure, match=r"^iree-compile: .*collapse_shape"):
        get_backend("iree-cpu").compile(_artifact(tmp_path, model), RunConfig(threads=2))
    assert [e.id for e in known.graph_matches("iree-cpu", "native", model)] == ["iree-depthwise-convtranspose"]
    assert not known.graph_matches("ort-cpu", "native", model)


def test_iree_cuda_is_built_here_and_never_reported_as_run(tmp_path):
    from harness.measure import cuda

    art = _artifact(tmp_path, convtranspose_model(X.shape, W, **ATTRS))
    cfg = RunConfig(threads=2, cuda_arch="sm_80")
    built = get_backend("iree-cuda").compile(art, RunConfig(threads=2, cuda_arch="sm_80", compile_only=True))
    assert built.info["target_backend"] == "cuda" and "--iree-cuda-target=sm_80" in built.info["flags"]
    if cuda.probe().runnable:
        pytest.skip("a GPU is here: the case runs (covered by the cuda suite)")
    with pytest.raises(BuiltNotRun, match="built, not run: "):
        get_backend("iree-cuda").compile(art, cfg)


def test_phase_interleaves_without_depth_to_space_where_the_engine_asks(tmp_path):
    """IREE's lowering option: the phase lowering's Reshape/Transpose form, recorded, and right (ORT as judge)."""
    import onnxruntime as ort

    model = convtranspose_model(X.shape, W, **ATTRS)
    plain = get_lowering("phase").apply(model)
    asked = get_lowering("phase").apply(model, options=get_backend("iree-cpu").lowering_options)
    ops = lambda m: {n.op_type for n in m.graph.node}
    assert "DepthToSpace" in ops(plain.model) and "DepthToSpace" not in ops(asked.model)
    assert asked.summary()["options"] == {"depth_to_space": "reshape"} and "options" not in plain.summary()
    # an option no lowering reads is not recorded
    assert "options" not in get_lowering("zero_insert").apply(model, options={"depth_to_space": "reshape"}).summary()
    path = tmp_path / "asked.onnx"
    onnx.save(asked.model, str(path))
    (y,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"X": X})
    np.testing.assert_allclose(y, _expected(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="lowering option"):
        get_lowering("phase").apply(model, options={"depth_to_space": "dcr"})


def test_the_ledger_names_the_iree_depth_to_space_bug_only_where_it_shows():
    from onnx import TensorProto, helper

    def d2s(c: int, mode: str):
        node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode)
        g = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 4, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c // 4, 8, 8])],
        )
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])

    ids = lambda m, b="iree-cpu": [e.id for e in known.graph_matches(b, "native", m)]
    assert ids(d2s(16, "CRD")) == ["iree-depth-to-space-crd"]
    assert ids(d2s(16, "CRD"), "iree-cpu-cl") == ["iree-depth-to-space-crd"]
    assert ids(d2s(8, "CRD")) == [] and ids(d2s(16, "DCR")) == [] and ids(d2s(16, "CRD"), "ort-cpu") == []


def test_the_ledger_names_col2im_on_iree_only():
    model = get_lowering("gemm_col2im").apply(convtranspose_model(X.shape, W, **ATTRS)).model
    assert [e.id for e in known.graph_matches("iree-cpu", "gemm_col2im", model)] == ["iree-col2im"]
    assert not known.graph_matches("ort-cpu", "gemm_col2im", model)


def test_optimize_chooses_across_lowering_and_option_set(tmp_path):
    """`convtx optimize --backend iree-cpu,iree-cpu-cl`: each option set optimised, the fastest final model written,
    the sidecar saying what each reached; on IREE `phase` is lowered in its Reshape/Transpose form (its
    DepthToSpace(CRD) would fail the check), so it is a candidate that passes."""
    import json

    from tests.helpers import hand_model_two_convtranspose, run_cli

    path = hand_model_two_convtranspose(tmp_path / "two.onnx")
    out = tmp_path / "opt.onnx"
    p = run_cli(
        "optimize", str(path), "--backend", "iree-cpu,iree-cpu-cl", "-o", str(out),
        "--lowerings", "native,phase", "--threads", "2", "--build-dir", str(tmp_path / "b"),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    side = json.loads(out.with_suffix(".json").read_text())
    assert set(side["option_sets"]) == {"iree-cpu", "iree-cpu-cl"}
    assert side["backend"] in side["option_sets"]
    finals = {b: s["final_ms"] for b, s in side["option_sets"].items()}
    assert side["final_ms"] == min(finals.values()) and side["backend"] in side["option_set_decision"]
    assert side["lowering_options"] == {"depth_to_space": "reshape"}
    for n in side["nodes"]:
        assert n["candidates"]["phase"]["status"] == "ok", n  # the CRD form would be a mismatch on IREE
    assert "option set:" in p.stdout


def test_the_compilers_section_puts_iree_beside_the_runtimes():
    """The report's 'ML compilers' table: ORT's best case, each engine's best as a ratio to it, IREE as it comes
    and with its best option set (named), its compile time; an engine with no verified case says what it had."""
    from dataclasses import replace

    from harness.core.tables import plain
    from harness.measure.timing import latency_of
    from harness.report.analysis import RunView
    from harness.report.sections import compilers_section
    from tests.helpers import case_key

    def rec(cid, ms, status="ok", compile_s=None):
        lat = latency_of(np.full(20, ms)) if status == "ok" else None
        r = case_key("r", cid, 2).record(status, "" if status == "ok" else "x", latency_ms=lat)
        return replace(r, compile_s=compile_s)

    records = [
        rec("cae@256/native/ort-cpu/b1", 2.0),
        rec("cae@256/phase/ort-cpu/b1", 2.5),
        rec("cae@256/native/openvino-cpu/b1", 4.0),
        rec("cae@256/phase/tvm-llvm/b1", 1.0),
        rec("cae@256/native/iree-cpu/b1", 3.0, compile_s=1.2),
        rec("cae@256/phase/iree-cpu-cl/b1", 1.5, compile_s=1.7),
        rec("sub@256/native/ort-cpu/b1", 10.0),
        rec("sub@256/native/iree-cpu/b1", 0.0, status="mismatch"),
    ]
    sec = compilers_section(RunView.of({}, records))
    table = sec.blocks[-1]
    rows = [[plain(c.content) for c in row] for row in table.rows]
    assert rows[0] == ["cae@256", "1", "2.000 (native)", "2.00× (native)", "0.50× (phase)", "1.50× (native)",
                       "0.75× (cl, phase)", "1.7"]  # fmt: skip
    assert rows[1][5].startswith("none verified (mismatch)") and rows[1][6].startswith("none verified")
