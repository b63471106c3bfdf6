"""The unpooling family (models/unpool.py): the worked 2x2 -> 4x4 examples of docs/lowerings.md as golden cases on
every path a layer takes (PyTorch, ONNX as exported and as written by hand, the ONNX reference, ORT, OpenVINO, the
ConvTranspose forms under every lowering), the two forms of a network equal bit for bit, and the forms check
of harness/checking/forms.py."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from harness.checking import forms
from harness.core.config import ALL_LOWERINGS
from harness.core.convtranspose import conv_transpose, resolve
from harness.core.tables import plain
from harness.lowerings import get_lowering
from models import MODELS, get_model
from models.unpool import Unpool, bed_of_nails, unpool_kernel
from tests.helpers import convtranspose_model, run_cli
from tests.lowerings.conftest import run_on

X = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)  # the decoder's values
A = np.array([[1, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]], np.float32)  # the encoder's, before pooling
GOLDEN = {
    "nearest": [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]],
    "nails": [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]],
    "max": [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]],
}
INDICES = np.array([[5, 2], [12, 15]], np.int64)  # MaxPool 2x2 of A: maxima 5, 6, 7, 8


def _golden(mode: str) -> np.ndarray:
    return np.array(GOLDEN[mode.removesuffix("_ct")], np.float32)[None, None]


def test_the_pooling_of_the_worked_example_finds_the_documented_indices():
    vals, idx = torch.nn.functional.max_pool2d(torch.from_numpy(A)[None, None], 2, 2, return_indices=True)
    assert vals[0, 0].tolist() == [[5, 6], [7, 8]]
    assert np.array_equal(idx[0, 0].numpy(), INDICES)


@pytest.mark.parametrize("mode", ["nearest", "nearest_ct", "nails", "nails_ct", "max"])
def test_each_unpooling_layer_gives_the_worked_example_in_pytorch(mode):
    layer = Unpool(mode, 1)
    idx = torch.from_numpy(INDICES)[None, None] if mode == "max" else None
    for dtype in (torch.float32, torch.float64):
        y = layer(torch.from_numpy(X).to(dtype)[None, None], idx)
        assert np.array_equal(y.numpy(), _golden(mode)), (mode, dtype, y)


def test_bed_of_nails_is_zero_insertion_at_any_scale_and_channel_count():
    x = torch.randn(2, 3, 4, 5)
    for s in (2, 3):
        y = bed_of_nails(x, s)
        assert y.shape == (2, 3, 4 * s, 5 * s)
        assert torch.equal(y[:, :, ::s, ::s], x)
        mask = torch.ones_like(y, dtype=torch.bool)
        mask[:, :, ::s, ::s] = False
        assert not y[mask].any()


def _ct_layer(mode: str) -> onnx.ModelProto:
    """The ConvTranspose form of one one-channel unpooling layer, as the exporter writes it (group = C, k = s = 2);
    its input is "X"."""
    return convtranspose_model(
        (1, 1, 2, 2), unpool_kernel(mode, 1).numpy(), group=1, strides=[2, 2], kernel_shape=[2, 2]
    )


def _base_layer(mode: str) -> onnx.ModelProto:
    """The base form of one layer in ONNX, written as docs/lowerings.md gives it: Resize (nearest), Reshape + Pad
    + Reshape (bed of nails), MaxUnpool by given indices (max)."""
    init = []
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])]
    if mode == "nearest":
        init.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
        nodes = [
            helper.make_node(
                "Resize",
                ["x", "", "scales"],
                ["y"],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        ]
    elif mode == "nails":
        init += [
            numpy_helper.from_array(np.array([1, 1, 2, 1, 2, 1], np.int64), "spread"),
            numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1], np.int64), "pads"),
            numpy_helper.from_array(np.array([1, 1, 4, 4], np.int64), "out"),
        ]
        nodes = [
            helper.make_node("Reshape", ["x", "spread"], ["s"]),
            helper.make_node("Pad", ["s", "pads"], ["p"]),
            helper.make_node("Reshape", ["p", "out"], ["y"]),
        ]
    else:
        inputs.append(helper.make_tensor_value_info("i", TensorProto.INT64, [1, 1, 2, 2]))
        nodes = [helper.make_node("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    g = helper.make_graph(
        nodes, "base", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], init
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("mode", ["nearest", "nails", "max"])
def test_the_base_forms_give_the_worked_example_in_onnx_and_ort(mode, tmp_path):
    from onnx.reference import ReferenceEvaluator

    m = _base_layer(mode)
    onnx.checker.check_model(m, full_check=True)
    feeds = {"x": X[None, None]}
    if mode == "max":
        feeds["i"] = INDICES[None, None]
    assert np.array_equal(ReferenceEvaluator(m).run(None, feeds)[0], _golden(mode))
    import onnxruntime as ort

    path = tmp_path / f"{mode}.onnx"
    onnx.save(m, str(path))
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.array_equal(out, _golden(mode))


@pytest.mark.parametrize("backend", ["ort-cpu", "openvino-cpu"])
@pytest.mark.parametrize("mode", ["nearest_ct", "nails_ct"])
def test_the_convtranspose_forms_give_the_worked_example_under_every_lowering(mode, backend, tmp_path):
    """Bit for bit: the float64 spec reference, and every lowering of the layer on the engine."""
    from harness.backends import get_backend

    if not get_backend(backend).availability():
        pytest.skip(f"{backend}: {get_backend(backend).availability().reason}")
    w = unpool_kernel(mode, 1).numpy().astype(np.float64)
    x64 = X[None, None].astype(np.float64)
    params = resolve({"strides": [2, 2], "kernel_shape": [2, 2], "group": 1}, x64.shape, w.shape)
    assert np.array_equal(conv_transpose(x64, w, None, params), _golden(mode))
    feeds = {"X": X[None, None]}
    for lw in ALL_LOWERINGS:
        res = get_lowering(lw).apply(_ct_layer(mode))
        assert lw == "native" or res.lowered, (lw, res.declined)
        out = run_on(backend, res.model, feeds, tmp_path, name=f"{mode}-{lw}")[0]
        assert np.array_equal(out, _golden(mode)), (mode, lw, backend, out)


def test_the_forms_of_each_network_are_equal_bit_for_bit_in_pytorch():
    """The same weights; every value crosses an unpooling as x * 1 (or next to exact zeros): equal outputs."""
    x = torch.randn(2, 3, 32, 32)
    for base, form in (("unpool_nearest", "unpool_nearest_ct"), ("unpool_nails", "unpool_nails_ct")):
        assert MODELS[form].form_of == base
        with torch.inference_mode():
            a, b = get_model(base).build(32)(x), get_model(form).build(32)(x)
        assert torch.equal(a, b), (base, form)
    # and the variants are different functions of the same network
    with torch.inference_mode():
        outs = [get_model(f"unpool_{m}").build(32)(x) for m in ("nearest", "nails", "max")]
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2])


# --- harness/checking/forms.py --------------------------------------------------------------------------------


def test_forms_compare_says_bitwise_and_counts_what_differs():
    a = [np.arange(6, dtype=np.float32).reshape(2, 3)]
    r = [np.arange(6, dtype=np.float64).reshape(2, 3)]
    same = forms.compare(a, r, [a[0].copy()], [r[0].copy()])
    assert same["bitwise"] and same["reference_bitwise"] and same["differing"] == 0 and same["elements"] == 6
    b = a[0].copy()
    b[1, 2] += 0.5
    diff = forms.compare(a, r, [b], [r[0] + 1])
    assert not diff["bitwise"] and diff["differing"] == 1 and diff["max_abs"] == 0.5
    assert not diff["reference_bitwise"]
    nan = a[0].copy()
    nan[0, 0] = np.nan
    both = forms.compare([nan], r, [nan.copy()], r)
    assert both["bitwise"] and both["differing"] == 0  # the same NaN in both: no difference
    one = forms.compare(a, r, [nan], r)
    assert not one["bitwise"] and one["differing"] == 1 and one["max_abs"] == float("inf")
    shape = forms.compare(a, r, [a[0].reshape(3, 2)], r)
    assert not shape["bitwise"] and not shape["shapes_agree"]


@pytest.mark.parametrize("base_first", [True, False])
def test_forms_check_compares_whichever_case_runs_second(base_first, tmp_path):
    out = [np.ones((1, 5, 4, 4), np.float32)]
    ref = [np.ones((1, 5, 4, 4), np.float64)]
    other = [out[0].copy()]
    other[0][0, 0, 0, 0] = 2.0

    def cid(m, lw):
        return f"{m}@4/{lw}/ort-cpu/b1"

    def run(model, lowering, outs):
        return forms.check(model, 4, 1, lowering, "ort-cpu", outs, ref, tmp_path, "run1", cid)

    assert forms.check("cae", 4, 1, "native", "ort-cpu", out, ref, tmp_path, "run1", cid) == []  # in no pair
    if base_first:
        assert run("unpool_nearest", "native", out) == []
        first = run("unpool_nearest_ct", "phase", out)
        second = run("unpool_nearest_ct", "zero_insert", other)
        found = first + second
    else:
        assert run("unpool_nearest_ct", "phase", out) == []
        assert run("unpool_nearest_ct", "zero_insert", other) == []
        found = run("unpool_nearest", "native", out)
    by_form = {c["form"]: c for c in found}
    assert set(by_form) == {cid("unpool_nearest_ct", "phase"), cid("unpool_nearest_ct", "zero_insert")}
    assert all(c["base"] == cid("unpool_nearest", "native") for c in found)
    assert by_form[cid("unpool_nearest_ct", "phase")]["bitwise"]
    bad = by_form[cid("unpool_nearest_ct", "zero_insert")]
    assert not bad["bitwise"] and bad["differing"] == 1 and bad["max_abs"] == 1.0
    # another engine's outputs are never compared with these
    assert forms.check("unpool_nearest_ct", 4, 1, "phase", "tvm-llvm", out, ref, tmp_path, "run1", cid) == []
    forms.clear(tmp_path, "run1")
    assert not (tmp_path / forms.FORMS_DIR / "run1").exists()


def test_a_bench_of_the_family_compares_the_forms_and_reports_them(tmp_path):
    """The sweep end to end on ORT: the form's cases carry the comparison with the base form's native case
    (bit for bit under every lowering), the report's section shows both forms and who wins, and the saved
    outputs are gone when the run is over."""
    out = tmp_path / "run"
    models = "unpool_nearest@32,unpool_nearest_ct@32,unpool_nails_ct@32,unpool_nails@32,unpool_max@32"
    p = run_cli(
        "bench", "--suite", "unpool", "--models", models, "--backends", "ort-cpu",
        "--lowerings", "native,zero_insert,phase", "--no-calibrate", "--build-dir", str(tmp_path / "build"),
        "--out", str(out),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    recs = {r["case_id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    for form, base in (("unpool_nearest_ct", "unpool_nearest"), ("unpool_nails_ct", "unpool_nails")):
        for lw in ("native", "zero_insert", "phase"):
            # nails_ct runs before its base: the comparisons are on the base's native case
            holder = (
                recs[f"{form}@32/{lw}/ort-cpu/b1"]
                if form == "unpool_nearest_ct"
                else recs[f"{base}@32/native/ort-cpu/b1"]
            )
            found = [c for c in holder["details"]["forms"] if c["form"] == f"{form}@32/{lw}/ort-cpu/b1"]
            assert len(found) == 1, (form, lw, holder["details"].get("forms"))
            assert found[0]["bitwise"] and found[0]["reference_bitwise"], found[0]
            assert found[0]["base"] == f"{base}@32/native/ort-cpu/b1"
    assert "forms" not in recs["unpool_max@32/native/ort-cpu/b1"]["details"]
    report = (out / "report.md").read_text()
    section = report.split("## Unpooling variants and their ConvTranspose forms")[1].split("\n## ")[0]
    row = next(ln for ln in section.splitlines() if "| ort-cpu |" in ln)
    assert row.count("bitwise (3/3)") == 2 and row.count(" ok") == 5, row
    assert ("ConvT " in row or "nearest " in row) and ("ConvT " in row or "nails " in row)
    assert not (tmp_path / "build" / forms.FORMS_DIR).exists() or not any(
        (tmp_path / "build" / forms.FORMS_DIR).iterdir()
    )


@pytest.mark.heavy
@pytest.mark.parametrize("mode", ["nearest_ct", "nails_ct"])
def test_the_convtranspose_forms_give_the_worked_example_under_every_lowering_on_tvm(mode, tmp_path):
    """tvm-llvm builds each lowering of the layer (about 2 s each): bit for bit, except Col2Im, which TVM's ONNX
    frontend does not have (the case is then refused, not wrong)."""
    from harness.backends import get_backend
    from harness.backends.base import UnsupportedModel

    if not get_backend("tvm-llvm").availability():
        pytest.skip(f"tvm-llvm: {get_backend('tvm-llvm').availability().reason}")
    feeds = {"X": X[None, None]}
    ran = []
    for lw in ALL_LOWERINGS:
        res = get_lowering(lw).apply(_ct_layer(mode))
        try:
            out = run_on("tvm-llvm", res.model, feeds, tmp_path, name=f"{mode}-{lw}")[0]
        except UnsupportedModel as e:
            assert lw == "gemm_col2im" and "Col2Im" in str(e), (lw, e)
            continue
        assert np.array_equal(out, _golden(mode)), (mode, lw, out)
        ran.append(lw)
    assert len(ran) == len(ALL_LOWERINGS) - 1


def test_the_faster_form_is_a_tie_where_the_medians_confidence_intervals_overlap():
    from dataclasses import replace

    from harness.measure.timing import latency_of
    from harness.report.sections import _faster_form
    from tests.helpers import case_key

    def rec(cid, ms, ci):
        lat = replace(latency_of(np.full(20, ms)), ci95=ci)
        return case_key("r", cid, 2).record("ok", "", latency_ms=lat)

    base = rec("unpool_nails@256/native/ort-cpu/b1", 6.0, (5.9, 6.1))
    fast = rec("unpool_nails_ct@256/phase/ort-cpu/b1", 2.0, (1.95, 2.05))
    near = rec("unpool_nails_ct@256/zero_insert/ort-cpu/b1", 6.05, (6.0, 6.2))
    slow = rec("unpool_nails_ct@256/native/ort-cpu/b1", 12.0, (11.8, 12.2))
    assert plain(_faster_form(base, fast, "nails").content) == "ConvT 3.00×"
    assert plain(_faster_form(base, slow, "nails").content) == "nails 2.00×"
    tie = _faster_form(base, near, "nails")
    assert plain(tie.content) == "tie (nails 1.01×)" and "CIs overlap" in tie.tip
