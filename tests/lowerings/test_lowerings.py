"""Every lowering computes the ONNX spec's ConvTranspose: golden cases, random attribute sets (hypothesis),
declines with reasons, symbolic batch, and the zoo."""

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.audit.equivalence import build_model, random_config
from harness.audit.fuzz import kind_of
from harness.audit.invalid import examples
from harness.checking.known import KnownDivergence, matches
from harness.checking.numerics import compare
from harness.checking.reference import onnx_reference
from harness.core.convtranspose import conv_transpose, resolve
from harness.lowerings import LOWERINGS, get_lowering

from ..helpers import ROOT, convtranspose_model, ct_configs
from .conftest import run_on

REWRITES = [n for n in LOWERINGS if n != "native"]
# The seeds' worked examples, with values checked by hand (see the comments).
GOLDEN = {
    # 2x2 input, 2x2 kernel of ones, stride 1, pad 0 -> 3x3: each output sums the inputs that reach it
    "2x2_k2_s1_p0": (np.array([[1, 2], [3, 4]]), np.ones((2, 2)), {}, np.array([[1, 3, 2], [4, 10, 6], [3, 7, 4]])),
    # 2x2 input, 3x3 kernel 1..9, stride 2, pad 1 -> 3x3: full 5x5 scatter cropped by one on each side,
    # e.g. centre = x00*w22 + x01*w20 + x10*w02 + x11*w00 = 9 + 14 + 9 + 4 = 36
    "2x2_k3_s2_p1": (
        np.array([[1, 2], [3, 4]]),
        np.arange(1, 10).reshape(3, 3),
        {"strides": [2, 2], "pads": [1, 1, 1, 1]},
        np.array([[5, 14, 10], [14, 36, 24], [15, 34, 20]]),
    ),
    # 4x4 input of ones, 3x3 kernel of ones, stride 1 -> 6x6: the count of (i, k) pairs per axis, 1 2 3 3 2 1
    "4x4_k3_s1": (np.ones((4, 4)), np.ones((3, 3)), {}, np.outer([1, 2, 3, 3, 2, 1], [1, 2, 3, 3, 2, 1])),
}


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden_reference(case):
    x, w, attrs, expected = GOLDEN[case]
    x4, w4 = x.reshape(1, 1, *x.shape).astype(float), w.reshape(1, 1, *w.shape).astype(float)
    y = conv_transpose(x4, w4, None, resolve(attrs, x4.shape, w4.shape))
    np.testing.assert_array_equal(y[0, 0], expected)


@pytest.mark.parametrize("backend", ["ort-cpu", "tvm-llvm"])
@pytest.mark.parametrize("lowering", list(LOWERINGS))
@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden_through_every_lowering_and_engine(case, lowering, backend, tmp_path):
    x, w, attrs, expected = GOLDEN[case]
    model = convtranspose_model((1, 1, *x.shape), w.reshape(1, 1, *w.shape), **attrs)
    lowered = get_lowering(lowering).apply(model)
    assert lowered.total == 1 and len(lowered.lowered) == (0 if lowering == "native" else 1)
    if (lowering, backend) == ("gemm_col2im", "tvm-llvm"):
        # TVM 0.27's ONNX frontend has no Col2Im converter: the engine must say so (a skipped case in sweeps).
        # When TVM gains one this fails, and this lowering joins the others on TVM.
        from harness.backends.base import UnsupportedModel

        with pytest.raises(UnsupportedModel, match="Col2Im"):
            run_on(backend, lowered.model, {"X": x.reshape(1, 1, *x.shape).astype(np.float32)}, tmp_path)
        return
    (y,) = run_on(backend, lowered.model, {"X": x.reshape(1, 1, *x.shape).astype(np.float32)}, tmp_path)
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-6)


ENGINE_PACKAGES = ("onnxruntime", "tvm", "tvm_ffi", "openvino")


def _engine_failure(e: BaseException) -> bool:
    """Whether `e` is the engine's own refusal or failure, not the harness's: a backend's UnsupportedModel, an
    exception class of an engine's package, or one raised below the harness inside an engine (TVM's FFI raises
    built-in ValueError/TypeError from C++): the frame the repository's innermost frame called is an engine's.
    A TypeError in harness code is none of these."""
    from harness.backends.base import UnsupportedModel

    if isinstance(e, UnsupportedModel) or type(e).__module__.split(".")[0] in ENGINE_PACKAGES:
        return True
    frames, tb = [], e.__traceback__
    while tb is not None:
        frames.append(Path(tb.tb_frame.f_code.co_filename))
        tb = tb.tb_next
    ours = [i for i, f in enumerate(frames) if f.is_relative_to(ROOT) and "site-packages" not in f.parts]
    below = frames[ours[-1] + 1].parts if ours and ours[-1] + 1 < len(frames) else ()
    return "site-packages" in below and below[below.index("site-packages") + 1] in ENGINE_PACKAGES


def _engine_failure_kind(e: BaseException) -> str:
    """The fuzz's failure kind of an engine failure on a valid model: internal_error or rejects_valid."""
    return kind_of("error", f"{type(e).__name__}: {e}", valid=True)


def _explains(entry: KnownDivergence, kind: str, why: str) -> bool:
    """Whether the ledger entry describes this failure: an entry that names its failure kinds lists this one
    (`matches` checked it); one that does not describes a wrong result, or a refusal it quotes ('...')."""
    if entry.kinds or kind in ("wrong_shape", "wrong_values"):
        return True
    return any(q in why for q in re.findall(r"(?<!\w)'([^']+)'(?!\w)", entry.reason))  # not the 's of spec's


def _check_config(cfg, seed: int, backends, lowerings, tmp_path):
    model = build_model(cfg, seed=seed)
    x = np.random.default_rng(seed + 1).standard_normal(cfg.x_shape).astype(np.float32)
    ref = onnx_reference(model, {"X": x})
    p = resolve(cfg.attrs, cfg.x_shape, cfg.w_shape)
    for lw in lowerings:
        result = get_lowering(lw).apply(model)
        assert not result.declined, result.declined
        onnx.checker.check_model(result.model)
        for b in backends:
            if (lw, b) == ("gemm_col2im", "tvm-llvm"):
                continue
            try:
                outs = run_on(b, result.model, {"X": x}, tmp_path, f"{lw}")
            except Exception as e:  # only an engine's own failure is a finding; the rest re-raises
                if not _engine_failure(e):
                    raise
                kind, why = _engine_failure_kind(e), f"{type(e).__name__}: {e}"
            else:
                c = compare(outs, ref)
                if c.passed:
                    continue
                kind, why = kind_of("mismatch", c.reason, valid=True), c.reason
            known = [k for k in matches(b, lw, cfg.attrs, p, kind) if _explains(k, kind, why)]
            assert known, f"{lw} on {b} diverges on {cfg} ({kind}), and no ledger entry explains it: {why}"


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=ct_configs(), seed=st.integers(0, 2**31 - 1))
def test_random_attributes_every_lowering_on_ort(cfg, seed, tmp_path):
    """Random configurations (1-3 D, groups, dilations, asymmetric pads, output_padding, output_shape,
    auto_pad, bias, symbolic batch): every lowering on ort-cpu matches the float64 spec reference, except
    divergences already in the ledger (harness/checking/known.py)."""
    _check_config(cfg, seed, ["ort-cpu"], list(LOWERINGS), tmp_path)


@pytest.mark.heavy  # six random ConvTransposes x seven lowerings built by TVM: 45 s; the golden cases run every
# lowering on TVM in the fast tier
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=ct_configs(), seed=st.integers(0, 2**31 - 1))
def test_random_attributes_every_lowering_on_tvm(cfg, seed, tmp_path):
    _check_config(cfg, seed, ["tvm-llvm"], list(LOWERINGS), tmp_path)


@pytest.mark.parametrize("lowering", REWRITES)
def test_symbolic_batch_is_kept(lowering, tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    model = convtranspose_model(
        (1, 4, 3, 5),
        w,
        b=np.arange(6),
        dim_param="N",
        strides=[2, 3],
        group=2,
        pads=[1, 0, 0, 1],
        output_padding=[1, 0],
    )
    lowered = get_lowering(lowering).apply(model).model
    for batch in (1, 3):
        x = rng.standard_normal((batch, 4, 3, 5)).astype(np.float32)
        assert compare(run_on("ort-cpu", lowered, {"X": x}, tmp_path), onnx_reference(model, {"X": x}))


@pytest.mark.parametrize("lowering", REWRITES)
@pytest.mark.parametrize("rule,cfg", examples(), ids=[f"{r}-{c.name}" for r, c in examples()])
def test_every_lowering_declines_every_invalid_node_naming_the_rule(lowering, rule, cfg):
    """A node the spec forbids is never rewritten into a graph that runs: declined, with the rule it breaks."""
    model = build_model(cfg, seed=0)
    result = get_lowering(lowering).apply(model)
    assert result.lowered == () and len(result.declined) == 1, result.summary()
    assert f"rule {rule}:" in result.declined[0][1], result.declined[0][1]
    assert [n.op_type for n in result.model.graph.node] == ["ConvTranspose"]


def _runtime_weights(model, how: str, rng: np.random.Generator):
    """`model` (build_model's: initializers W and maybe B) with its weights computed at run time: `input` — W and
    B become graph inputs (a weight-tied decoder's shape of the problem), fed with their values; `dq` — W is
    DequantizeLinear of an int8 initializer (a QDQ-quantised decoder), B stays a constant. (model, extra feeds)."""
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    feeds = {}
    if how == "input":
        for name in ("W", "B"):
            if name in inits:
                m.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(inits[name].shape)))
                feeds[name] = inits[name]
        keep = [t for t in m.graph.initializer if t.name not in feeds]
    else:
        w = inits["W"]
        q = rng.integers(-127, 128, w.shape).astype(np.int8)
        keep = [t for t in m.graph.initializer if t.name != "W"]
        keep += [numpy_helper.from_array(q, "W_q"), numpy_helper.from_array(np.float32(0.05), "W_scale")]
        m.graph.node.insert(0, helper.make_node("DequantizeLinear", ["W_q", "W_scale"], ["W"], name="dq"))
        m.opset_import[0].version = 21  # onnx's reference evaluator implements DequantizeLinear from opset 19
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    onnx.checker.check_model(m)
    return m, feeds


@pytest.mark.parametrize("how", ["input", "dq"])
@pytest.mark.parametrize("lowering", REWRITES)
def test_runtime_weights_are_lowered_and_exact(lowering, how, tmp_path):
    """W (and B) computed at run time: every rewrite builds its weight transform in the graph (Reshape,
    Transpose, Slice, Pad, Gather) instead of declining, and matches the float64 reference on ORT over the
    attribute space (1-3 D, groups, dilations, strides, pads, output_padding, output_shape, auto_pad, bias)."""
    rng = np.random.default_rng(7)
    checked = 0
    for i in range(24):
        cfg = random_config(rng, f"rt{i}")
        model, wfeeds = _runtime_weights(build_model(cfg, seed=i), how, rng)
        result = get_lowering(lowering).apply(model)
        assert result.lowered == ("convt",), result.summary()
        assert "ConvTranspose" not in {n.op_type for n in result.model.graph.node} or lowering == "explicit_pads"
        x = rng.standard_normal(cfg.x_shape).astype(np.float32)
        feeds = {"X": x, **wfeeds}
        got = run_on("ort-cpu", result.model, feeds, tmp_path, f"{lowering}-{how}-{i}")
        c = compare(got, onnx_reference(model, feeds))
        if not c.passed:  # only a ledger entry about ORT explains a miss (the same as for constant weights)
            p = resolve(cfg.attrs, cfg.x_shape, cfg.w_shape, cfg.b_shape)
            kind = kind_of("mismatch", c.reason, valid=True)
            assert matches("ort-cpu", lowering, cfg.attrs, p, kind), f"{cfg}: {c.reason}"
            continue
        checked += 1
    assert checked >= 16  # gemm_col2im: some 3-D dilated cases meet ORT's Col2Im bug (ort-col2im-3d-dilation)


def test_a_runtime_weight_of_unknown_shape_is_declined():
    from onnx import TensorProto, helper

    node = helper.make_node("ConvTranspose", ["X", "Wdyn"], ["Y"], name="dyn", strides=[2, 2])
    g = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 3, 3]),
            helper.make_tensor_value_info("Wdyn", TensorProto.FLOAT, [2, 1, "k", 2]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 6, 6])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    for lowering in REWRITES:
        result = get_lowering(lowering).apply(model)
        assert result.lowered == () and result.declined[0][0] == "dyn"
        assert "computed at run time and its shape is not static ([2, 1, 'k', 2])" in result.declined[0][1]
        assert [n.op_type for n in result.model.graph.node] == ["ConvTranspose"]


def test_col2im_declines_below_opset_18_and_others_below_13():
    w = np.ones((1, 1, 2, 2), np.float32)
    m17 = convtranspose_model((1, 1, 3, 3), w, opset=17, strides=[2, 2])
    r = get_lowering("gemm_col2im").apply(m17)
    assert r.declined and "opset 18" in r.declined[0][1]
    assert get_lowering("phase").apply(m17).lowered == ("ct",)
    m11 = convtranspose_model((1, 1, 3, 3), w, opset=11, strides=[2, 2])
    r = get_lowering("zero_insert").apply(m11)
    assert r.declined and "opset 11 < 13" in r.declined[0][1]


def test_a_model_without_convtranspose_is_unchanged():
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["X"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    before = model.SerializeToString()  # an independent copy: `native` returns the very object it was given
    for lw in LOWERINGS:
        r = get_lowering(lw).apply(model)
        assert r.total == 0 and r.lowered == () and r.declined == ()
        assert r.model.graph.SerializeToString() == onnx.ModelProto.FromString(before).graph.SerializeToString()
        assert model.SerializeToString() == before, f"{lw} changed its input model"


def test_phase_never_multiplies_inserted_zeros_and_zero_insert_does():
    """Performed vs useful FLOPs on a k2 s2 layer (the zoo's): phase does exactly the useful products,
    zero insertion about stride^2 = 4 times as many."""
    from harness.measure.flops import count_flops

    w = np.ones((8, 4, 2, 2), np.float32)
    model = convtranspose_model((1, 8, 16, 16), w, strides=[2, 2])
    fixed = onnx.shape_inference.infer_shapes(model)
    useful = count_flops(fixed, useful=True)
    assert useful == 2 * 16 * 16 * 8 * 4 * 4
    ratios = {
        lw: count_flops(onnx.shape_inference.infer_shapes(get_lowering(lw).apply(model).model)) / useful
        for lw in ("phase", "phase_split", "zero_insert", "gemm_col2im", "explicit_pads")
    }
    assert ratios["phase"] == ratios["phase_split"] == ratios["gemm_col2im"] == ratios["explicit_pads"] == 1.0
    assert 3.5 < ratios["zero_insert"] <= 4.0


@pytest.mark.parametrize(
    "x_shape, w_shape, attrs, phase_ratio",
    [
        ((1, 16, 8, 8), (16, 8, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, 2.45),
        ((1, 16, 4, 4), (16, 8, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, 2.04),
    ],
    ids=["vae-k3s2-ragged", "dcgan-k4s2-small-grid"],
)
def test_phase_split_multiplies_no_zero_tap_and_no_grid_row_outside_the_window(x_shape, w_shape, attrs, phase_ratio):
    """Where `phase` pads ragged phases with zero taps and computes in + T - 1 grid rows per phase, phase_split
    multiplies exactly what gemm_col2im does (useful products plus those at the input's border)."""
    from harness.measure.flops import count_flops

    model = convtranspose_model(x_shape, np.ones(w_shape, np.float32), **attrs)
    useful = count_flops(onnx.shape_inference.infer_shapes(model), useful=True)

    def ratio(lw):
        return count_flops(onnx.shape_inference.infer_shapes(get_lowering(lw).apply(model).model)) / useful

    assert ratio("phase") == pytest.approx(phase_ratio, abs=0.01)
    assert ratio("phase_split") == ratio("gemm_col2im") < 1.35


def test_useful_flops_exclude_products_cropped_by_pads():
    from harness.measure.flops import count_flops

    # 1-D: in 3, k 3, s 1, pads 1/1: of 9 (i, k) pairs, the 2 landing at o = -1 and o = 3 are cropped
    model = convtranspose_model((1, 1, 3), np.ones((1, 1, 3), np.float32), pads=[1, 1])
    assert count_flops(onnx.shape_inference.infer_shapes(model), useful=True) == 2 * 7
    assert count_flops(onnx.shape_inference.infer_shapes(model), useful=False) == 2 * 9


@pytest.mark.parametrize("lowering", REWRITES)
@pytest.mark.parametrize(
    "attrs",
    [
        {"strides": [2], "output_shape": [1], "output_padding": [1]},  # found by the fuzzer: the window holds
        {"strides": [3, 1], "output_padding": [2, 0]},  # no product on an axis: bias alone
    ],
)
def test_windows_without_any_product_are_lowered_not_declined(lowering, attrs, tmp_path):
    nd = len(attrs["strides"])
    model = convtranspose_model((1, 1) + (1,) * nd, np.ones((1, 1) + (1,) * nd, np.float32), b=[0.5], **attrs)
    result = get_lowering(lowering).apply(model)
    assert result.declined == ()
    x = np.full((1, 1) + (1,) * nd, 2.0, np.float32)
    assert compare(run_on("ort-cpu", result.model, {"X": x}, tmp_path), onnx_reference(model, {"X": x}))


@pytest.mark.parametrize("backend", ["tvm-llvm", "openvino-cpu"])
def test_runtime_weights_through_the_compilers(backend, tmp_path):
    """The in-graph weight transforms on the other engines: one grouped, strided, dilated 2-D node with a bias and
    its weight DequantizeLinear(int8), every rewrite the engine runs, against the float64 reference."""
    from harness.audit.equivalence import CTConfig

    cfg = CTConfig("rt", (1, 4, 5, 4), (4, 3, 3, 2), {"strides": [2, 3], "dilations": [2, 1], "group": 2,
                   "pads": [1, 0, 0, 2], "output_padding": [1, 0]}, True, False)  # fmt: skip
    rng = np.random.default_rng(3)
    model, _ = _runtime_weights(build_model(cfg, seed=3), "dq", rng)
    x = rng.standard_normal(cfg.x_shape).astype(np.float32)
    ref = onnx_reference(model, {"X": x})
    for lowering in REWRITES:
        if lowering == "gemm_col2im" and backend == "tvm-llvm":
            continue  # TVM 0.27 has no Col2Im converter (conformance ledger)
        lowered = get_lowering(lowering).apply(model)
        assert lowered.lowered == ("convt",)
        c = compare(run_on(backend, lowered.model, {"X": x}, tmp_path, lowering), ref)
        assert c.passed, f"{lowering} on {backend}: {c.reason}"


def test_an_empty_batch_is_valid_and_phase_on_tvm_is_a_known_failure(tmp_path):
    """N = 0 is valid: every lowering runs it on ORT (an empty result); TVM cannot import phase's DepthToSpace on
    an empty tensor, and the graph ledger names that (tvm-depth-to-space-zero-size) for the model the case ran."""
    from harness.checking.known import graph_matches

    w = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    model = convtranspose_model((0, 2, 3, 3), w, strides=[2, 2], pads=[1, 1, 1, 1])
    x = np.zeros((0, 2, 3, 3), np.float32)
    for lowering in REWRITES:
        lowered = get_lowering(lowering).apply(model).model
        (y,) = run_on("ort-cpu", lowered, {"X": x}, tmp_path, lowering)
        assert y.shape == (0, 3, 6, 6), (lowering, y.shape)
    phase = get_lowering("phase").apply(model).model
    assert [e.id for e in graph_matches("tvm-llvm", "phase", phase)] == ["tvm-depth-to-space-zero-size"]
    split = get_lowering("phase_split").apply(model).model
    assert [e.id for e in graph_matches("tvm-llvm", "phase_split", split)] == ["tvm-depth-to-space-zero-size"]
    with pytest.raises(Exception, match="type is not populated"):
        run_on("tvm-llvm", split, {"X": x}, tmp_path, "phase-split-empty")
    assert (
        graph_matches("tvm-llvm", "phase", get_lowering("phase").apply(convtranspose_model((1, 2, 3, 3), w)).model)
        == ()
    )
    with pytest.raises(Exception, match="type is not populated"):
        run_on("tvm-llvm", phase, {"X": x}, tmp_path, "phase-empty")


def test_grouped_phase_conv_without_leading_pad_is_the_known_tvm_cuda_build_failure():
    """phase_split lowers a grouped ConvTranspose with two output channels per group (dwdecoder's first layer) to
    phase Convs, one without a leading pad: the graph ledger names the TVM CUDA build failure such a Conv meets
    (tvm-cuda-grouped-conv-cross-thread-reduction, reproduced by its script), and only for tvm-cuda; a depthwise
    layer (one output channel per group) does not match."""
    from harness.checking.known import graph_matches

    rng = np.random.default_rng(0)
    grouped = convtranspose_model(
        (1, 8, 4, 4), rng.standard_normal((8, 2, 4, 4)), group=4, strides=[2, 2], pads=[1, 1, 1, 1]
    )
    split = get_lowering("phase_split").apply(grouped).model
    assert [e.id for e in graph_matches("tvm-cuda", "phase_split", split)] == [
        "tvm-cuda-grouped-conv-cross-thread-reduction"
    ]
    assert graph_matches("tvm-llvm", "phase_split", split) == ()
    depthwise = convtranspose_model(
        (1, 8, 4, 4), rng.standard_normal((8, 1, 4, 4)), group=8, strides=[2, 2], pads=[1, 1, 1, 1]
    )
    assert graph_matches("tvm-cuda", "phase_split", get_lowering("phase_split").apply(depthwise).model) == ()
