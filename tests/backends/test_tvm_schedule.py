"""The default CPU schedule (harness/backends/tvm/schedule.py) and the per-kernel decision to use it
(harness/backends/tvm/defaults.py): what the rules do to a conv, that a scheduled kernel which disagrees with
the loop nest or is not faster is refused, that decisions are kept per machine, and that `tvm-llvm` builds
models that agree with the float64 reference. No latency thresholds here: the speed is the benchmark's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from harness.backends import get_backend
from harness.checking.numerics import compare
from harness.checking.reference import onnx_reference
from harness.core.config import RunConfig
from harness.core.onnx_io import graph_inputs

from ..helpers import artifact_of, convtranspose_model

pytest.importorskip("tvm")


def _conv_model(tmp_path, relu=True):
    """X (1x8x16x16) -> ConvTranspose stride 2 -> Relu: legalised, it holds a padded/dilated input, a flipped
    kernel, a reduction and an epilogue."""
    rng = np.random.default_rng(0)
    m = convtranspose_model(
        (1, 8, 16, 16),
        rng.standard_normal((8, 16, 3, 3)),
        rng.standard_normal(16),
        relu=relu,
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        output_padding=[1, 1],
    )
    path = tmp_path / "ct.onnx"
    onnx.save(m, str(path))
    return path


def _kernels(path, target):
    from harness.backends.tvm.common import relax_module
    from harness.backends.tvm.tuning import extract

    m = onnx.load(str(path))
    specs = graph_inputs(m)
    mod = relax_module(str(path), {s.name: tuple(s.shape) for s in specs}, {s.name: s.dtype for s in specs})
    return {t.task_name: t.dispatched[0]["main"] for t in extract(mod, target)}


@pytest.fixture
def target():
    from harness.backends.tvm.common import host_target

    return host_target(1)


def test_the_reduction_becomes_a_vectorised_register_block_with_its_epilogue(tmp_path, target):
    from harness.backends.tvm.schedule import SCHEDULED, schedule_func

    kernels = _kernels(_conv_model(tmp_path), target)
    conv = next(f for n, f in kernels.items() if "conv2d_transpose" in n)
    sched, outcome = schedule_func(conv, target)
    assert sched is not None and sched.attrs[SCHEDULED]
    rules = outcome.blocks
    red = next(v for v in rules.values() if v.startswith("reduction:"))
    assert red.startswith("reduction: register block") and "epilogue fused" in red and "parallel" in red, rules
    assert rules.get("data_pad", "").startswith("spatial:"), "the reduction's padded input stays a buffer"
    text = sched.script()
    assert "T.vectorized" in text and "T.parallel" in text and "T.unroll" in text


def _odd_grid_conv(tmp_path, cumsum=False):
    """A phase lowering's kind of conv: 32 output channels over a 17x17 grid (16 + 1: no whole vector along the
    width on any ISA), weight 32x8x2x2; `cumsum`: followed by a CumSum along the width (TVM's CPU pipeline
    makes it an opaque scan kernel, as in segnet's index-free unpooling)."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(2).standard_normal((32, 8, 2, 2)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["X", "W"], ["C" if cumsum else "Y"], pads=[1, 1, 1, 1])]
    if cumsum:
        nodes.append(helper.make_node("CumSum", ["C", "axis"], ["Y"]))
    g = helper.make_graph(
        nodes,
        "odd",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8, 16, 16])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 32, 17, 17])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(3, dtype=np.int64), "axis")],
    )
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_an_odd_grid_takes_the_channels_form_packed_weight_and_all(tmp_path, target):
    """The channels form: vectors along the output channels, the weight packed so they are contiguous, a
    register block of grid positions; the decision measures both forms, and whichever it keeps agrees with the
    loop nest (the check is on every form it times)."""
    from harness.backends.tvm import defaults
    from harness.backends.tvm.schedule import schedule_func, vector_lanes

    name, conv = next((n, f) for n, f in _kernels(_odd_grid_conv(tmp_path), target).items() if "conv2d" in n)
    sched, outcome = schedule_func(conv, target, "channels")
    assert sched is not None, outcome.blocks
    red = next(v for v in outcome.blocks.values() if v.startswith("reduction:"))
    lanes = vector_lanes(target)
    assert red.startswith("reduction: channels: weight packed, register block 17x") and red.count(f"x{lanes},")
    text = sched.script()
    # the packed weight and the blocked accumulator: the channel split by the lanes, the lanes innermost
    assert "T.vectorized(" in text and f"_global[v0 // T.int64({lanes}), v1, v2, v3, v0 % T.int64({lanes})] = " in text
    assert f"conv2d_nchw_global[v0, v1 // T.int64({lanes}), v2, v3, v1 % T.int64({lanes})]" in text
    spatial_only, _ = schedule_func(conv, target, "spatial")
    assert spatial_only is not None and "channels" not in spatial_only.script()
    dec = defaults.decide(name, conv, target)
    assert dec.form in ("spatial", "channels") and dec.rel_err is not None and dec.rel_err <= defaults.RTOL, dec
    assert set((dec.others or {}) | {dec.form: 0}) == {"spatial", "channels"}, dec


def test_a_wide_output_takes_two_vectors_per_row_and_every_form_is_measured(tmp_path, target):
    """Form wide: where the output's innermost axis holds two vectors (32 wide at 16 lanes, 16 at 8), the
    register block is rows x 2 vectors; the decision measures it beside the first form, and whichever it keeps
    agrees with the loop nest."""
    from harness.backends.tvm import defaults
    from harness.backends.tvm.schedule import WIDE, schedule_func, vector_lanes

    name, conv = next((n, f) for n, f in _kernels(_conv_model(tmp_path), target).items() if "conv2d_transpose" in n)
    sched, outcome = schedule_func(conv, target, "wide")
    lanes = vector_lanes(target)
    assert sched is not None, outcome.blocks
    red = next(v for v in outcome.blocks.values() if v.startswith("reduction:"))
    assert red.startswith("reduction: wide: register block ") and f"x{WIDE[lanes]}x{lanes}," in red, red
    dec = defaults.decide(name, conv, target)
    assert dec.rel_err is not None and dec.rel_err <= defaults.RTOL, dec
    assert set((dec.others or {}) | {dec.form: 0}) == {"spatial", "wide"}, dec


def test_a_square_grid_has_no_channels_form(tmp_path, target):
    """Where the output's innermost axis gives whole vectors, the first form is the only one."""
    from harness.backends.tvm.schedule import schedule_func

    conv = next(f for n, f in _kernels(_conv_model(tmp_path), target).items() if "conv2d_transpose" in n)
    sched, outcome = schedule_func(conv, target, "channels")
    assert sched is None and any("whole vectors" in v for v in outcome.blocks.values()), outcome.blocks


def test_a_scheduled_kernel_that_disagrees_with_the_loop_nest_is_refused(tmp_path, target, monkeypatch):
    """The check is real: a 'schedule' that computes something else (here: the kernel of another model with the
    same signature, its epilogue dropped) is measured, found to disagree, and not used."""
    from harness.backends.tvm import defaults, schedule

    path = _conv_model(tmp_path, relu=True)
    (tmp_path / "other").mkdir()
    other = _kernels(_conv_model(tmp_path / "other", relu=False), target)
    kernels = _kernels(path, target)
    name, conv = next((n, f) for n, f in kernels.items() if "conv2d_transpose" in n)
    wrong = next(f for n, f in other.items() if "conv2d_transpose" in n)  # no ReLU: negative values differ
    wrong_sched, _ = schedule.schedule_func(wrong, target)
    monkeypatch.setattr(
        schedule, "schedule_func", lambda f, t, form="spatial": (wrong_sched, schedule.Outcome({"b": "swapped"}))
    )
    dec = defaults.decide(name, conv, target)
    assert not dec.use and "disagrees" in dec.why and dec.rel_err > defaults.RTOL


def test_a_scheduled_kernel_that_is_not_faster_is_refused(tmp_path, target, monkeypatch):
    from harness.backends.tvm import defaults

    kernels = _kernels(_conv_model(tmp_path), target)
    name, conv = next((n, f) for n, f in kernels.items() if "conv2d_transpose" in n)
    real = defaults._timed

    def slower(kernels, dev):
        times, outs = real(kernels, dev)
        return [times[0]] + [times[0] * 2] * (len(times) - 1), outs  # the outputs are real; only the clock is told

    monkeypatch.setattr(defaults, "_timed", slower)
    dec = defaults.decide(name, conv, target)
    assert not dec.use and "not faster" in dec.why
    assert dec.rel_err is not None and dec.rel_err <= defaults.RTOL  # it was right, only slower


def test_decisions_are_kept_per_kernel_and_a_torn_or_corrupt_line_is_measured_again(tmp_path):
    from harness.backends.tvm.defaults import Decision, Decisions

    path = tmp_path / "d.jsonl"
    d = Decisions(path)
    dec = Decision("k", True, "scheduled", 2.0, 0.5, 1e-7, {"b": "rule"})
    d.put("key1", dec)
    d.put("key3", Decision("k3", True, "scheduled", 2.0, 0.5, 1e-7, {}))
    lines = path.read_bytes().splitlines()
    lines[1] = lines[1].replace(b'\\"use\\": true', b'\\"use\\": fals')  # a flipped byte: checksum fails
    path.write_bytes(b"\n".join(lines) + b"\n" + b'{"key": "key2", "kernel": "half' + b"\xff")  # a torn line
    again = Decisions(path)
    assert again.get("key1") == dec
    assert again.get("key2") is None and again.get("key3") is None


def test_a_remote_cpu_is_not_measured_here(target):
    from harness.backends.tvm.defaults import runs_here

    assert runs_here(target)
    assert not runs_here({**target, "mcpu": "cortex-a72", "mtriple": "aarch64-linux-gnu"})
    assert not runs_here({**target, "mcpu": "some-other-cpu"})


def test_tvm_llvm_builds_with_the_default_schedule_and_agrees_with_the_reference(tmp_path):
    """End to end: the backend's record says how many kernels run scheduled, and the output still matches the
    float64 reference under the float32 policy. A second build is a cache hit that reports the same."""
    art, m = artifact_of(_conv_model(tmp_path), tmp_path / "compiled")
    feeds = {"X": np.random.default_rng(1).standard_normal((1, 8, 16, 16)).astype(np.float32)}
    be = get_backend("tvm-llvm")
    c = be.compile(art, RunConfig(threads=1))
    summary = c.info["default_schedule"]
    assert summary["kernels_scheduled"] >= 1, summary
    assert compare(c.run(feeds), onnx_reference(m, feeds), "float32").passed
    assert list((tmp_path / "compiled").glob("default-schedule-*.jsonl")), "decisions are kept beside the cache"
    c.close()
    c2 = be.compile(art, RunConfig(threads=1))
    assert c2.info["compile_cache"] == "hit" and c2.info["default_schedule"] == summary
    c2.close()


def test_the_committed_databases_are_listed_with_their_coverage(tmp_path):
    import json

    from harness.backends.tvm.tuning import databases

    d = tmp_path / "tvm-0.27.0" / "llvm-znver5-2c"
    d.mkdir(parents=True)
    (d / "database_tuning_record.json").write_text("[1]\n[2]\n\n[3]\n")
    (d / "coverage.json").write_text(
        json.dumps(
            {
                "workloads": [
                    {"candidate": True, "untuned_share": 0.3},
                    {"candidate": True, "untuned_share": 0.01},
                    {"candidate": False, "untuned_share": 0.9},  # cannot win: not the goal
                ],
                "tuning_seconds_total": 600.0,
            }
        )
    )
    (tmp_path / "tvm-0.27.0" / "empty").mkdir()  # no records: not a database
    assert databases(tmp_path) == [
        {
            "tvm": "0.27.0",
            "target": "llvm-znver5-2c",
            "records": 3,
            "workloads": 2,
            "worst_untuned_share": 0.3,
            "tuning_seconds_total": 600.0,
        }
    ]


def test_an_invalid_model_is_left_to_tvm_which_says_what_it_says(tmp_path, target):
    """Pads that leave a negative output width (an invalid model): the default schedule measures nothing
    (a negative buffer cannot be allocated) and does not turn TVM's own error into one of ours; the build
    fails with TVM's InternalError, which the fuzz ledger's `tvm-internal-error-on-invalid-convtranspose` names."""
    from harness.backends.tvm import defaults

    rng = np.random.default_rng(0)
    m = convtranspose_model((1, 3, 5, 6), rng.standard_normal((3, 2, 2, 2)), pads=[0, 4, 0, 5])
    path = tmp_path / "neg.onnx"
    onnx.save(m, str(path))
    name, func = next(iter(_kernels(path, target).items()))
    dec = defaults.decide(name, func, target)
    assert not dec.use and "invalid shape" in dec.why and dec.naive_ms is None, dec
    art, _ = artifact_of(path, tmp_path / "compiled")
    with pytest.raises(Exception, match="cannot make uint from negative value"):
        get_backend("tvm-llvm").compile(art, RunConfig(threads=1))


def test_a_database_record_is_used_only_when_it_beats_the_default_here_and_agrees(tmp_path, target, monkeypatch):
    """A record's kernel against tvm-llvm's choice for the same kernel, side by side on this machine: a record
    that computes something else is refused whatever its speed, and the verdict is kept (not measured again)."""
    from harness.backends.tvm import defaults, schedule

    kernels = _kernels(_conv_model(tmp_path, relu=True), target)
    name, conv = next((n, f) for n, f in kernels.items() if "conv2d_transpose" in n)
    (tmp_path / "other").mkdir()
    other = _kernels(_conv_model(tmp_path / "other", relu=False), target)
    wrong = next(f for n, f in other.items() if "conv2d_transpose" in n)  # no ReLU: negative values differ
    decisions = defaults.Decisions(tmp_path / "d.jsonl")
    dec = defaults.decision(name, conv, target, decisions)
    as_record, _ = schedule.schedule_func(conv, target, "spatial")  # a "record": a scheduled kernel of conv itself
    rd = defaults.record_against_default(name, conv, as_record, dec, target, decisions)
    assert rd.form == "record" and rd.naive_ms and rd.scheduled_ms and rd.rel_err <= 2 * defaults.RTOL, rd
    assert rd.use == (rd.scheduled_ms < rd.naive_ms) and (rd.use or "record is not faster" in rd.why), rd
    bad = defaults.record_against_default(name, conv, schedule.schedule_func(wrong, target)[0], dec, target, decisions)
    assert not bad.use and "record disagrees" in bad.why, bad

    def no_timing(*a, **k):
        raise AssertionError("kept verdicts are not measured again")

    monkeypatch.setattr(defaults, "_timed", no_timing)
    again = defaults.Decisions(tmp_path / "d.jsonl")
    assert defaults.record_against_default(name, conv, as_record, dec, target, again) == rd


def test_a_constant_weight_is_packed_once_at_build_time(tmp_path, target):
    """The channels form packs its weight; where the weight is a constant at every call (layout-free), the
    packing block carries TVM's layout-rewrite mark, the kernel is measured as it runs (its compute part on a
    weight packed beforehand, agreeing with the loop nest), and in the model SplitLayoutRewritePreproc +
    FoldConstant leave no packing to run per call — and the model still matches the float64 reference. The
    model also holds a cumsum kernel, on which TVM's pass alone would abort (WORKAROUND_LEDGER)."""
    import tvm
    from tvm import relax

    from harness.backends.tvm import defaults
    from harness.backends.tvm.common import relax_module
    from harness.backends.tvm.schedule import PREPACK, schedule_func, vector_lanes

    path = _odd_grid_conv(tmp_path, cumsum=True)
    m = onnx.load(str(path))
    specs = graph_inputs(m)
    mod = relax_module(str(path), {s.name: tuple(s.shape) for s in specs}, {s.name: s.dtype for s in specs})
    tgt = tvm.target.Target(target)
    fused = defaults.fuse(mod, tgt)
    free = defaults.layout_free(fused)
    gv = next(g for g, f in fused.functions_items() if "conv2d" in g.name_hint)
    assert any("cumsum" in g.name_hint for g, _ in fused.functions_items())
    assert free[gv.name_hint] == [1], free  # W, the constant; X (0) and the output (2) are not
    plain, _ = schedule_func(fused[gv], target, "channels")
    assert PREPACK not in plain.script(), "a weight not known to be constant is packed inside the kernel"
    sched, outcome = schedule_func(defaults.with_layout_free(fused[gv], free[gv.name_hint]), target, "channels")
    assert any("weight packed at build time" in v for v in outcome.blocks.values()), outcome.blocks
    compute, pack, idx = defaults.split_prepack(sched)
    lanes = vector_lanes(target)
    assert idx == (1,)
    args = defaults._random_args(fused[gv].with_attr("global_symbol", "main"))
    rt, packed_args, skip = defaults._runnable(sched, args, tgt)
    assert packed_args[1].shape == (32 // lanes, 8, 2, 2, lanes) and skip == (1,)
    np.testing.assert_array_equal(packed_args[1][1, :, :, :, 3], args[1][lanes + 3])  # W[o] at [o/L, ..., o%L]
    naive = defaults._build_kernel(fused[gv].with_attr("global_symbol", "main"), tgt)
    outs = []
    for kernel, kernel_args in ((naive, args), (rt, packed_args)):  # one call each: the outputs, no timing
        tensors = [tvm.runtime.tensor(a.copy()) for a in kernel_args]
        kernel["main"](*tensors)
        outs.append([t.numpy() for t in tensors])
    assert defaults._agree(outs[0], outs[1], skip) <= defaults.RTOL
    fused[gv] = sched
    summary: dict = {}
    out = defaults.prepack(fused, tgt, summary)
    assert summary == {"weights_packed_at_build": 1}, summary
    assert not [k for k in defaults._calls(out) if k.endswith("_weight_prepack")]
    vm = relax.VirtualMachine(defaults.lower(out, tgt), tvm.cpu())
    feeds = {"X": np.random.default_rng(3).standard_normal((1, 8, 16, 16)).astype(np.float32)}
    got = vm["main"](tvm.runtime.tensor(feeds["X"]))
    got = got.numpy() if hasattr(got, "numpy") else got[0].numpy()
    assert compare([got], onnx_reference(m, feeds), "float32").passed


def test_a_prime_extent_takes_position_blocks_with_a_tail(tmp_path, target):
    """A phase conv whose output is 257 wide (prime: no divisor to block by) takes the channels form with
    blocks of schedule.TAIL positions, the last cut short — and agrees with the loop nest."""
    from onnx import TensorProto, helper, numpy_helper

    from harness.backends.tvm import defaults
    from harness.backends.tvm.schedule import TAIL, schedule_func

    w = np.random.default_rng(4).standard_normal((32, 8, 2)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1])],
        "prime",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8, 256])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 32, 257])],
        [numpy_helper.from_array(w, "W")],
    )
    path = tmp_path / "prime.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    name, conv = next((n, f) for n, f in _kernels(path, target).items() if "conv1d" in n)
    sched, outcome = schedule_func(conv, target, "channels")
    red = next(v for v in outcome.blocks.values() if v.startswith("reduction:"))
    assert f"register block {TAIL}x" in red, red
    dec = defaults.decide(name, conv, target)
    assert dec.rel_err is not None and dec.rel_err <= defaults.RTOL, dec
    assert "channels" in set((dec.others or {}) | {dec.form: 0}), dec


def test_a_short_channel_axis_is_blocked_whole(tmp_path, target):
    """A 1x1 conv to 12 channels: its output channels fit one register block (schedule.WHOLE_ROWS), so each
    input vector is loaded once, not once per block of rows."""
    from onnx import TensorProto, helper, numpy_helper

    from harness.backends.tvm.schedule import REG_BLOCK, WHOLE_ROWS, _factor, schedule_func, vector_lanes

    w = np.random.default_rng(5).standard_normal((12, 24, 1, 1)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["X", "W"], ["Y"])],
        "pointwise",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 24, 32, 32])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 12, 32, 32])],
        [numpy_helper.from_array(w, "W")],
    )
    path = tmp_path / "pw.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    conv = next(f for n, f in _kernels(path, target).items() if "conv2d" in n)
    _, outcome = schedule_func(conv, target, "spatial")
    red = next(v for v in outcome.blocks.values() if v.startswith("reduction:"))
    lanes = vector_lanes(target)
    rows = 12 if WHOLE_ROWS[lanes] >= 12 else _factor(12, REG_BLOCK[lanes])  # AVX2: too few registers for 12
    assert red.startswith(f"reduction: register block {rows}x{lanes}"), red


def _grouped_odd_conv(tmp_path, group: int, out_per_group: int):
    """A grouped conv over a 17x17 grid: 8 input channels per group, `out_per_group` outputs per group."""
    from onnx import TensorProto, helper, numpy_helper

    m = group * out_per_group
    w = np.random.default_rng(6).standard_normal((m, 8, 2, 2)).astype(np.float32)
    g = helper.make_graph(
        [helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1], group=group)],
        "grouped",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8 * group, 16, 16])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, m, 17, 17])],
        [numpy_helper.from_array(w, "W")],
    )
    path = tmp_path / f"g{group}x{out_per_group}.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_grouped_conv_takes_the_channels_form_when_a_block_stays_in_one_group(tmp_path, target):
    """The input of a grouped conv is indexed by the output channel through c // (outputs per group): the
    channels form applies when a block of lanes x v channels lies in one group (one input value serves it),
    and agrees with the loop nest; with fewer outputs per group than lanes it does not apply."""
    from harness.backends.tvm import defaults
    from harness.backends.tvm.schedule import schedule_func, vector_lanes

    lanes = vector_lanes(target)
    name, conv = next(
        (n, f) for n, f in _kernels(_grouped_odd_conv(tmp_path, 2, 3 * lanes), target).items() if "conv2d" in n
    )
    sched, outcome = schedule_func(conv, target, "channels")
    assert sched is not None, outcome.blocks
    red = next(v for v in outcome.blocks.values() if v.startswith("reduction:"))
    assert red.startswith(f"reduction: channels: weight packed, register block 17x1x{lanes}"), red
    dec = defaults.decide(name, conv, target)
    assert dec.rel_err is not None and dec.rel_err <= defaults.RTOL, dec
    assert "channels" in set((dec.others or {}) | {dec.form: 0}), dec
    small = next(f for n, f in _kernels(_grouped_odd_conv(tmp_path, 4, lanes // 2), target).items() if "conv2d" in n)
    none, outcome = schedule_func(small, target, "channels")
    assert none is None and any("no output axis" in v for v in outcome.blocks.values()), outcome.blocks


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh", "Exp"])
def test_transcendentals_become_topi_fast_math_within_a_few_ulps(tmp_path, op):
    """fastmath.py: exp/tanh/sigmoid reach the kernels as topi's polynomial fast_* (vectorisable: no per-lane libm
    call), not as relax.sigmoid/exp/tanh; the whole float32 range stays within 1e-6 relative of float64 (measured
    2.8e-7 at most), and the record says the pass ran. CUDA keeps TVM's own functions."""
    from onnx import TensorProto, helper

    from harness.backends.tvm.common import relax_module

    shape = (3, 32, 32)
    g = helper.make_graph(
        [helper.make_node(op, ["X"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, shape)],
    )
    path = tmp_path / f"{op}.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    text = str(relax_module(str(path), {"X": shape}, {"X": "float32"}))
    assert "fast_exp" in text or "fast_tanh" in text
    assert f"R.{op.lower()}(" not in text
    assert f"R.{op.lower()}(" in str(relax_module(str(path), {"X": shape}, {"X": "float32"}, fast_math=False))
    lim = 80.0 if op == "Exp" else 100.0  # exp overflows float32 past 88.7
    x = np.linspace(-lim, lim, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    x.flat[:200] = np.linspace(-4, 4, 200)  # the steep part, densely
    art, _ = artifact_of(path, tmp_path / "compiled")
    c = get_backend("tvm-llvm").compile(art, RunConfig(threads=1))
    assert "FastMathTransform" in c.info["fast_math"]
    (y,) = c.run({"X": x})
    c.close()
    xd = x.astype(np.float64)
    ref = {"Sigmoid": lambda v: 1 / (1 + np.exp(-v)), "Tanh": np.tanh, "Exp": np.exp}[op](xd)
    big = np.abs(ref) > 1e-30
    assert np.isfinite(y).all()
    assert float((np.abs(y - ref)[big] / np.abs(ref[big])).max()) < 1e-6
    assert float(np.abs(y - ref)[~big].max(initial=0.0)) < 1e-30
