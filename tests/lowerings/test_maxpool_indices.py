"""The maxpool_indices rewrite (harness/lowerings/maxpool_indices.py): MaxPool's Indices recomputed without
that output must equal ONNX Runtime's own Indices exactly — ties included — for 1-D, 2-D and 3-D pooling; any
MaxPool outside what it proves exact is declined with its reason and left as it was; and a SegNet exported by
PyTorch (MaxPool with indices, then ScatterND) runs on TVM through it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from harness.lowerings import maxpool_indices as M


def _pool_model(shape, kernel, strides=None, **attrs):
    """X -> MaxPool (values Y and Indices I both graph outputs) -> and a consumer of I (so it is 'used')."""
    node = helper.make_node(
        "MaxPool", ["X"], ["Y", "I"], name="pool", kernel_shape=kernel, strides=strides or kernel, **attrs
    )
    st = strides or kernel
    pads = attrs.get("pads", [0] * 2 * len(kernel))
    dil = attrs.get("dilations", [1] * len(kernel))
    n = len(kernel)
    out = list(shape[:2]) + [
        (d + pads[i] + pads[i + n] - dil[i] * (k - 1) - 1) // s + 1
        for i, (d, k, s) in enumerate(zip(shape[2:], kernel, st))
    ]
    g = helper.make_graph(
        [node, helper.make_node("Identity", ["I"], ["I2"], name="use")],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(shape))],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, out),
            helper.make_tensor_value_info("I2", TensorProto.INT64, out),
        ],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": x})


@pytest.mark.parametrize(
    "shape,kernel",
    [
        ((2, 3, 8, 12), [2, 2]),
        ((1, 4, 9, 6), [3, 2]),
        ((1, 2, 8, 8), [1, 1]),  # PyTorch's exporter uses a 1x1 pool for the planes' offsets
        ((2, 3, 16), [4]),
        ((1, 2, 4, 6, 8), [2, 3, 2]),
    ],
)
@pytest.mark.parametrize("ties", [False, True])
def test_the_recomputed_indices_equal_onnx_runtimes(shape, kernel, ties):
    m = _pool_model(shape, kernel)
    res = M.rewrite(m)
    assert res.rewritten == ("pool",) and not res.declined
    onnx.checker.check_model(res.model)
    onnx.shape_inference.infer_shapes(res.model, strict_mode=True)
    pool = next(n for n in res.model.graph.node if n.op_type == "MaxPool")
    assert list(pool.output) == ["Y"], "the MaxPool keeps only its values"
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    if ties:  # few distinct values: most windows hold their maximum more than once
        x = np.round(x).astype(np.float32)
    want, got = _run(m, x), _run(res.model, x)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    if ties:
        assert (x == 0).mean() > 0.2  # the test really had ties


@pytest.mark.parametrize(
    "kernel,attrs,why",
    [
        ([3, 3], {"strides": [2, 2]}, "overlapping"),
        ([2, 2], {"pads": [1, 1, 1, 1]}, "padded"),
        ([2, 2], {"dilations": [2, 2]}, "dilated"),
        ([2, 2], {"storage_order": 1}, "storage_order"),
        ([3, 3], {}, "not divisible"),
    ],
)
def test_what_it_cannot_prove_exact_is_declined_and_left_alone(kernel, attrs, why):
    m = _pool_model((1, 2, 8, 8), kernel, **attrs)
    res = M.rewrite(m)
    assert res.rewritten == () and len(res.declined) == 1
    assert res.declined[0][0] == "pool" and why in res.declined[0][1]
    pool = next(n for n in res.model.graph.node if n.op_type == "MaxPool")
    assert list(pool.output) == ["Y", "I"]


def test_it_applies_only_where_the_indices_are_read():
    m = _pool_model((1, 2, 8, 8), [2, 2])
    assert M.applies(m)
    del m.graph.node[1]
    del m.graph.output[1]
    assert not M.applies(m)
    assert M.rewrite(m).rewritten == ()


def test_a_rewritten_pool_runs_on_tvm_and_gives_onnx_runtimes_indices(tmp_path):
    """The fast tier's TVM check of the rewrite: TVM 0.27's frontend has no MaxPool Indices output; the rewritten
    graph compiles on tvm-llvm and its values and indices equal ONNX Runtime's on the original (ties included)."""
    pytest.importorskip("tvm")
    from .conftest import run_on

    m = _pool_model((1, 3, 8, 8), [2, 2])
    x = np.random.default_rng(0).integers(0, 3, (1, 3, 8, 8)).astype(np.float32)  # many ties
    want = _run(m, x)
    got = run_on("tvm-llvm", M.rewrite(m).model, {"X": x}, tmp_path, "pool")
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.heavy  # a whole SegNet built by TVM: 30 s of default-schedule measurements here
def test_segnet_with_indices_runs_on_tvm_through_the_rewrite(tmp_path):
    """The zoo's SegNet (PyTorch's MaxPool-with-indices + ScatterND) — refused by TVM's frontend as exported —
    validates on tvm-llvm; its record names the rewrite and every MaxPool it rewrote."""
    pytest.importorskip("tvm")
    import json

    from ..helpers import run_cli

    out = tmp_path / "r.json"
    p = run_cli(
        "validate",
        "segnet@32",
        "--backends",
        "tvm-llvm",
        "--lowerings",
        "native",
        "--threads",
        "1",
        "--build-dir",
        str(tmp_path / "build"),
        "--json",
        str(out),
    )
    assert p.returncode == 0, p.stderr
    (rec,) = json.loads(out.read_text())
    assert rec["status"] == "ok", rec["reason"]
    (rw,) = rec["details"]["rewrites"]
    assert rw["rewrite"] == "maxpool_indices" and len(rw["rewritten"]) == 6 and not rw["declined"]
