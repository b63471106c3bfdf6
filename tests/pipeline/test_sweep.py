"""The sweep driver: every case gets a record; crashes, skips and files are handled per case."""

import pytest

from harness.core.config import RunConfig, TimingConfig
from harness.pipeline.sweep import Plan, file_ref, run_plan, zoo_ref

from ..helpers import make_col2im_model, make_convtranspose_model

CFG = RunConfig(threads=2, timing=TimingConfig(warmup=1, min_repeats=3, min_time_s=0.0, max_time_s=2.0))


def _run(plan, tmp_path, cfg=CFG):
    got = []
    recs = run_plan(plan, cfg, "test", tmp_path / "build", tmp_path / "logs", sink=got.append, say=lambda s: None)
    assert recs == got
    return recs


def test_zoo_model_on_all_backends(tmp_path):
    plan = Plan((zoo_ref("cae@16"),), ("native",), ("ort-cpu", "tvm-llvm", "torch-cpu"), (1, 2))
    recs = _run(plan, tmp_path)
    # model by model; within one, the engines that compile at session creation first, then TVM's cases, built
    # ahead in parallel and timed afterwards (harness/pipeline/ahead.py)
    assert [r.case_id for r in recs] == [
        f"cae@16/native/{b}/b{n}" for n in (1, 2) for b in ("ort-cpu", "torch-cpu", "tvm-llvm")
    ]
    for r in recs:
        assert r.status == "ok", r.reason
        assert r.numerics.passed and r.numerics.rel_l2 < 1e-5
        assert r.latency_ms.n >= 3 and r.latency_ms.p10 <= r.latency_ms.median <= r.latency_ms.p90
        assert r.latency_ms.reference.n >= 1 and r.latency_ms.ratio_to_reference > 0
        assert r.compile_s is not None and r.flops and r.gflops > 0 and r.min_bytes > 0
        assert r.input_shapes == {"x": (r.batch, 3, 16, 16)}
    tvm = [r for r in recs if r.backend == "tvm-llvm"][0]
    assert tvm.details["runtime_threads"] == 2  # TVM_NUM_THREADS reached the worker
    from tvm.target import codegen  # the worker's target: this host's CPU as LLVM names it, the configured threads

    assert tvm.details["target"] == {"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu(), "num-cores": CFG.threads}
    assert [r for r in recs if r.backend == "torch-cpu"][0].details["threads"] == 2


def test_file_model_skips_torch_and_unsupported_ops(tmp_path):
    col2im = file_ref(str(make_col2im_model(tmp_path / "col2im.onnx")), {})
    plan = Plan((col2im,), ("native",), ("ort-cpu", "tvm-llvm", "torch-cpu"), (1,))
    by = {r.backend: r for r in _run(plan, tmp_path, RunConfig(threads=1, timing=None))}
    assert by["ort-cpu"].status == "ok" and by["ort-cpu"].latency_ms is None
    assert by["tvm-llvm"].status == "skipped" and "Col2Im" in by["tvm-llvm"].reason
    assert by["torch-cpu"].status == "skipped" and "zoo models only" in by["torch-cpu"].reason
    # the driver's skip record and the worker's records carry the same key: one per case, built once
    keys = {
        (
            r.run_id,
            r.model,
            r.lowering,
            r.batch,
            tuple(r.input_shapes.items()),
            r.dtype,
            r.size,
            r.threads,
            r.flops,
            r.min_bytes,
        )
        for r in by.values()
    }
    assert len(keys) == 1


def test_a_prepare_failure_becomes_error_records_for_its_cases(tmp_path):
    bad = zoo_ref("cae@16")
    path = make_convtranspose_model(tmp_path / "ok.onnx", strides=[2, 2])
    good = file_ref(str(path), {})
    path.unlink()  # vanishes between the check and the worker's prepare
    recs = _run(Plan((good, bad), ("native",), ("ort-cpu",), (1,)), tmp_path, RunConfig(threads=1, timing=None))
    assert recs[0].status == "error" and "prepare" in recs[0].reason and "no such file" in recs[0].reason
    assert recs[1].status == "ok"  # the next model is unaffected


def test_a_case_that_times_out_does_not_lose_the_others(tmp_path):
    cfg = RunConfig(
        threads=1,
        timing=TimingConfig(warmup=0, min_repeats=1, min_time_s=600, max_time_s=600, max_repeats=10**9),
        case_timeout_s=6,
    )
    plan = Plan((zoo_ref("cae@16"),), ("native",), ("ort-cpu",), (1, 2))
    recs = _run(plan, tmp_path, cfg)
    assert [r.status for r in recs] == ["error", "error"]  # each case timed out on its own
    assert all("timed out after 6 s" in r.reason for r in recs)
    assert [r.batch for r in recs] == [1, 2]


@pytest.mark.heavy
def test_every_lowering_agrees_on_the_zoo(tmp_path):
    """Each lowering of the zoo models passes the float64 check on ort-cpu and tvm-llvm (gemm_col2im is a
    skipped case on TVM, which has no Col2Im), and the eager baseline runs once per model."""
    from harness.lowerings import LOWERINGS

    plan = Plan((zoo_ref("cae@16"), zoo_ref("unet@32")), tuple(LOWERINGS), ("ort-cpu", "tvm-llvm", "torch-cpu"), (1,))
    recs = _run(plan, tmp_path, RunConfig(threads=2, timing=None))
    assert len(recs) == 2 * (len(LOWERINGS) * 2 + 1)
    for r in recs:
        if (r.lowering, r.backend) == ("gemm_col2im", "tvm-llvm"):
            assert r.status == "skipped" and "Col2Im" in r.reason
            continue
        assert r.status == "ok", (r.case_id, r.reason)
        low = r.details["lowering"]
        assert low["declined"] == [] and low["lowered"] == (
            0 if r.lowering == "native" or r.backend == "torch-cpu" else low["convtranspose_nodes"]
        )
    zi = [r for r in recs if r.lowering == "zero_insert" and r.model == "cae"][0]
    assert 1.0 < zi.flops_performed / zi.flops  # the zeros it multiplies show in performed FLOPs


def test_prepared_from_arrays_writes_a_cache_entry_and_counts_what_cases_share(tmp_path):
    """The one way an npz of inputs and expected outputs becomes a Prepared (prepare, fuzz, localise,
    conformance): arrays in hand are always written; a function is called only when no valid entry exists."""
    import numpy as np
    import onnx

    from harness.core import cache
    from harness.pipeline.prepare import ModelRef, prepared_from_arrays

    path = make_convtranspose_model(tmp_path / "ct.onnx", strides=[2, 2])
    model = onnx.load(str(path))
    x = np.ones(tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim), np.float32)
    name = model.graph.input[0].name
    ref = ModelRef("ct", path=str(path), shapes=((name, x.shape),))
    data = tmp_path / "data" / "ct.npz"
    prep = prepared_from_arrays(ref, 1, model, str(path), {name: x}, [np.zeros((1, 2, 3), np.float32)], data, "given")
    assert cache.is_valid(data) and prep.data_path == str(data) and prep.reference == "given"
    assert prep.input_shapes == {name: x.shape} and prep.input_dtypes == {name: "float32"}
    assert prep.conv_transpose_nodes == 1 and prep.flops is None
    feeds, refs = prep.load_data()
    assert np.array_equal(feeds[name], x) and [r.shape for r in refs] == [(1, 2, 3)]
    weights = sum(int(np.prod(t.dims)) * 4 for t in model.graph.initializer)
    assert prep.min_bytes == x.nbytes + weights + 6 * 4
    calls = []
    again = prepared_from_arrays(ref, 1, model, str(path), {name: x}, lambda: calls.append(1) or [], data, "given")
    assert calls == [] and again == prep  # a valid entry is reused: the function is not called
    prep = prepared_from_arrays(ref, 1, model, str(path), {name: 2 * x}, [np.ones(4, np.float32)], data, "given")
    assert np.array_equal(prep.load_data()[0][name], 2 * x)  # arrays in hand: rewritten


def test_without_a_gpu_the_default_suite_says_so_for_cuda_cases_without_building_them(tmp_path):
    """build_without_gpu False (the default suite): a CUDA case on a machine without a GPU is skipped at once,
    naming why and where the CUDA builds are (`make build-cuda`); nothing is compiled. The bench CLI sets it
    for the default suite only when --backends does not name the engines."""
    import argparse
    from dataclasses import replace

    from harness.cli.bench import _plan
    from harness.measure import cuda

    if cuda.probe().runnable:
        pytest.skip("a GPU is here: its cases run")
    plan = Plan((zoo_ref("cae@16"),), ("native",), ("tvm-cuda", "ort-cuda"), (1,))
    recs = _run(plan, tmp_path, replace(CFG, build_without_gpu=False))
    assert [r.status for r in recs] == ["skipped", "skipped"]
    tvm = recs[0]
    assert tvm.reason.startswith("no CUDA GPU here (") and "make build-cuda" in tvm.reason
    assert tvm.compile_s is None and not (tmp_path / "build" / "compiled").exists()

    def args(**kw):
        base = dict(
            suite="default", models=None, lowerings=None, backends=None, batches=None, shape=None, profile_runs=None,
            threads=1, memory_cap=None, case_timeout=900.0, seed=0,
        )  # fmt: skip
        return argparse.Namespace(**{**base, **kw})

    assert _plan(args())[2].build_without_gpu is False
    assert _plan(args(backends="tvm-cuda"))[2].build_without_gpu is True
    assert _plan(args(suite="cuda"))[2].build_without_gpu is True
