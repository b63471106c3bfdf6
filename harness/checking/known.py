"""The ledger of known engine divergences from the ONNX spec: {id: reason + minimal reproducer}.

Each entry says which (backend, lowering) it concerns and which ConvTranspose configurations trigger it.
A case that fails and matches an entry is a *known* divergence, not a new one; the sweep also reports
entries that matched no failure at all, so a fixed upstream bug shows up (the ledger is then stale).
Reproducers live in docs/upstream/ and run on their own (numpy + the engine): each prints one verdict line
and exits 0 "REPRODUCED: ..." (the bug shows), 1 "FIXED: ..." (the engine agrees with the spec: drop the
entry) or 2 "CANNOT RUN: ..." (e.g. no GPU); see docs/upstream/_verdict.py. tests/checking/test_known.py
runs every reproducer named here as a strict expected failure, so a fixed bug shows as an unexpected pass.
Entries about TVM's ONNX frontend name tvm-cuda beside tvm-llvm: both import the model through the same
`relax_module`, so a model the frontend refuses or mis-imports is refused or mis-imported for either target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.core.config import ALL_LOWERINGS
from harness.core.convtranspose import ConvTransposeParams


@dataclass(frozen=True)
class KnownDivergence:
    id: str
    backends: tuple[str, ...]
    lowerings: tuple[str, ...]
    applies: Callable[[dict, ConvTransposeParams | None], bool]  # (attributes, resolved params or None)
    reason: str
    reproducer: str  # path in the repo
    always: bool = True  # every matching case fails (strict); False: some matching cases pass by chance
    kinds: tuple[str, ...] = ()  # fuzz failure kinds it explains (empty: any)
    rules: tuple[str, ...] = ()  # about invalid nodes: the RULES (harness.core.convtranspose) they break; such an
    # entry matches only invalid nodes that break one of these, an entry without rules only valid ones


def _negative_same(attrs: dict, p: ConvTransposeParams | None) -> bool:
    if p is None:
        return False
    ap = attrs.get("auto_pad", "NOTSET")
    return ap in ("SAME_UPPER", "SAME_LOWER") and any(b + e < 0 for b, e in zip(p.pads_begin, p.pads_end))


def _output_shape(attrs: dict, p: ConvTransposeParams) -> bool:
    return bool(attrs.get("output_shape"))


def _negative_output_shape(attrs: dict, p: ConvTransposeParams | None) -> bool:
    return (
        p is not None
        and bool(attrs.get("output_shape"))
        and attrs.get("auto_pad", "NOTSET") in ("NOTSET", "VALID")
        and any(b + e < 0 for b, e in zip(p.pads_begin, p.pads_end))
    )


def _col2im_3d_dilated(attrs: dict, p: ConvTransposeParams | None) -> bool:
    return (
        p is not None and len(p.kernel_shape) == 3 and any(d > 1 and k > 1 for d, k in zip(p.dilations, p.kernel_shape))
    )


def _output_padding_nonzero(attrs: dict, p: ConvTransposeParams | None) -> bool:
    return p is not None and any(op > 0 for op in p.output_padding)


def _output_padding_ge_stride(attrs: dict, p: ConvTransposeParams | None) -> bool:
    return p is not None and any(op >= s for op, s in zip(p.output_padding, p.strides))


def _any(attrs: dict, p: ConvTransposeParams | None) -> bool:
    return True


def _same_any(attrs: dict, p: ConvTransposeParams | None) -> bool:
    return attrs.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER")


def _output_shape_odd_padding(attrs: dict, p: ConvTransposeParams | None) -> bool:
    return bool(attrs.get("output_shape")) and (attrs.get("group", 1) > 1 or any(attrs.get("output_padding", [])))


LEDGER: tuple[KnownDivergence, ...] = (
    KnownDivergence(
        "output-padding-ge-stride-rejected",
        ("ort-cpu", "tvm-llvm", "tvm-cuda"),
        ("native",),
        _output_padding_ge_stride,
        "the spec allows output_padding below 'the corresponding stride/dilation' (the larger of the two, as "
        "convtx reads it); ONNX Runtime and TVM demand output_padding < stride and refuse the model (every "
        "lowering computes it)",
        "build/fuzz (class rejects_valid)",
        kinds=("rejects_valid",),
    ),
    KnownDivergence(
        "tvm-accepts-invalid-convtranspose",
        ("tvm-llvm", "tvm-cuda"),
        ALL_LOWERINGS,
        _any,
        "TVM 0.27 runs ConvTranspose nodes the spec forbids and returns a tensor: kernel_shape that is not W's "
        "spatial shape (its 4 values for a 4-D W), a stride list of the wrong length, negative dilations or pads, "
        "pads of the wrong length, negative or too many output_padding values, an output_shape of the wrong "
        "length, a bias longer than M (the output then has B's length in channels), an output size of 0; "
        "lowerings decline an invalid node, so the engine's native ConvTranspose runs",
        "docs/upstream/tvm_accepts_invalid_convtranspose.py",
        always=False,
        kinds=("accepts_invalid",),
        rules=("kernel_shape", "strides", "dilations", "pads", "output_padding", "output_shape", "bias", "output_size"),
    ),
    KnownDivergence(
        "tvm-internal-error-on-invalid-convtranspose",
        ("tvm-llvm", "tvm-cuda"),
        ALL_LOWERINGS,
        _any,
        "TVM 0.27 refuses some invalid ConvTranspose nodes only by failing inside: group 0 ('Check failed: "
        "groups > 0'), a zero dilation ('Divide by zero'), too many strides or output_padding values ('Check "
        "failed: strides.size() == 2', '... output_padding.size() == 2'), a negative output size (std::bad_alloc, or 'cannot "
        "make uint from negative value') instead of a clean error naming the attribute",
        "docs/upstream/tvm_internal_error_on_invalid_convtranspose.py",
        always=False,
        kinds=("internal_error_on_invalid", "crash_on_invalid"),
        rules=("group", "strides", "dilations", "output_padding", "output_size"),
    ),
    KnownDivergence(
        "same-negative-total-padding-clamped",
        ("ort-cpu", "tvm-llvm", "tvm-cuda", "openvino-cpu"),
        ("native",),
        _negative_same,
        "under SAME_UPPER/SAME_LOWER with a kernel extent smaller than the stride the spec's total padding is "
        "negative (output = input*stride); ONNX Runtime, TVM and OpenVINO clamp it to 0 and return a shorter "
        "output",
        "docs/upstream/same_negative_padding.py",
    ),
    KnownDivergence(
        "tvm-ignores-output-shape",
        ("tvm-llvm", "tvm-cuda"),
        ("native",),
        _output_shape,
        "TVM 0.27's ONNX frontend ignores ConvTranspose `output_shape`: wrong output shape or values "
        "(the explicit_pads lowering fixes it)",
        "docs/upstream/tvm_output_shape.py",
        always=False,
    ),
    KnownDivergence(
        "ort-rejects-negative-output-shape-padding",
        ("ort-cpu",),
        ("native",),
        _negative_output_shape,
        "an `output_shape` larger than the full result (negative total padding, zero-filled on both sides "
        "by the spec) is refused by ONNX Runtime ('Explicit output_shape is inconsistent') or zero-filled "
        "at the end only (right by coincidence when the spec's fill is at the end too)",
        "docs/upstream/same_negative_padding.py",
        always=False,
    ),
    KnownDivergence(
        "ort-col2im-3d-dilation",
        ("ort-cpu",),
        ("gemm_col2im",),
        _col2im_3d_dilated,
        "onnxruntime 1.32's Col2Im is wrong for many 3-D inputs with dilation > 1 (2-D and undilated 3-D "
        "are right); some dilated cases come out right by coincidence",
        "docs/upstream/ort_col2im_3d_dilation.py",
        always=False,
    ),
    KnownDivergence(
        "openvino-accepts-invalid-convtranspose",
        ("openvino-cpu",),
        ALL_LOWERINGS,
        _any,
        "OpenVINO 2026.4 runs ConvTranspose nodes the spec forbids and returns a tensor: group 0, kernel_shape that "
        "is not W's spatial shape, pads of the wrong length, output_padding >= max(stride, dilation) or negative, "
        "an output size of 0; lowerings decline an invalid node, so the engine's native ConvTranspose runs",
        "docs/upstream/openvino_accepts_invalid_convtranspose.py",
        always=False,
        kinds=("accepts_invalid",),
        rules=("group", "kernel_shape", "pads", "output_padding", "output_size"),
    ),
    KnownDivergence(
        "openvino-same-autopad-dynamic-batch",
        ("openvino-cpu",),
        ("native",),
        _same_any,
        "with a symbolic batch dimension OpenVINO ignores SAME_UPPER/SAME_LOWER padding and returns the full, "
        "unpadded ConvTranspose result (a static batch is right); only the symbolic-batch cases fail",
        "docs/upstream/openvino_same_dynamic_batch.py",
        always=False,
    ),
    KnownDivergence(
        "openvino-output-shape-odd-padding",
        ("openvino-cpu",),
        ("native",),
        _output_shape_odd_padding,
        "for a ConvTranspose with output_shape that is grouped or has output_padding, OpenVINO puts the whole "
        "total padding at the end (begin 0): a grouped node is wrong for any padding, even totals included "
        "(group 2, total 2: the spec crops 1 at each end), one with output_padding where the spec puts the odd unit "
        "at the beginning; group 1 without output_padding is right",
        "docs/upstream/openvino_output_shape_group.py",
        always=False,
    ),
    KnownDivergence(
        "openvino-negative-output-shape-padding",
        ("openvino-cpu",),
        ("native",),
        _negative_output_shape,
        "an output_shape larger than the full result (negative total padding, zero-filled on both sides by the "
        "spec) is zero-filled elsewhere by OpenVINO (e.g. x 1, k 1, output_shape 6: the spec puts the value at "
        "index 3)",
        "build/fuzz (class wrong_values, output_shape + negative_total_padding)",
        always=False,
    ),
    KnownDivergence(
        "openvino-output-shape-dynamic-batch",
        ("openvino-cpu",),
        ("native",),
        _output_shape,
        "with a symbolic batch dimension OpenVINO places the total padding of `output_shape` at the end (group 1 "
        "included: x 3, k 1, output_shape 2 gives full[0:2] where the spec takes full[1:3]); a static batch is "
        "right; only the symbolic-batch cases fail (found by `convtx fuzz --seed 0`)",
        "docs/upstream/openvino_output_shape_dynamic_batch.py",
        always=False,
    ),
    KnownDivergence(
        "iree-accepts-invalid-convtranspose",
        ("iree-cpu", "iree-cpu-cl", "iree-cuda"),
        ALL_LOWERINGS,
        _any,
        "IREE 3.13 runs ConvTranspose nodes the spec forbids and returns a tensor: a zero stride, negative "
        "dilations, pads of the wrong length, output_padding >= max(stride, dilation) or negative, an output size "
        "of 0; lowerings decline an invalid node, so the engine's native ConvTranspose runs",
        "docs/upstream/iree_accepts_invalid_convtranspose.py",
        always=False,
        kinds=("accepts_invalid",),
        rules=("strides", "dilations", "pads", "output_padding", "output_size"),
    ),
    KnownDivergence(
        "tvm-cuda-output-padding-dlight",
        ("tvm-cuda",),
        ("native", "explicit_pads"),
        _output_padding_nonzero,
        "UNVERIFIED HERE (no GPU): apache/tvm#19524 reports Relax conv2d_transpose on CUDA with output_padding "
        "> 0 under dlight's Fallback schedule giving wrong values (May 2026, closed, fix not identified); the "
        "lowerings replace the op, so only native/explicit_pads can hit it. On a GPU the reproducer decides: "
        "REPRODUCED (exit 0) confirms, FIXED (exit 1) means the entry is stale",
        "docs/upstream/tvm_cuda_output_padding.py",
        always=False,
        kinds=("wrong_values",),
    ),
)


def matches(
    backend: str,
    lowering: str,
    attrs: dict,
    p: ConvTransposeParams | None,
    kind: str | None = None,
    rule: str | None = None,
) -> tuple[KnownDivergence, ...]:
    """Every entry about this (backend, lowering) whose configurations include `attrs` and, when `kind` is given,
    that explains a failure of that kind (an entry without `kinds` explains any). `rule`: the node is invalid
    and breaks that rule (p is then None); only entries naming the rule match it."""
    return tuple(
        entry
        for entry in LEDGER
        if backend in entry.backends
        and lowering in entry.lowerings
        and (kind is None or not entry.kinds or kind in entry.kinds)
        and ((rule in entry.rules) if rule is not None else (not entry.rules and entry.applies(attrs, p)))
    )


def match(*args, **kwargs) -> KnownDivergence | None:
    """The first of `matches` (same arguments), or None."""
    return next(iter(matches(*args, **kwargs)), None)


@dataclass(frozen=True)
class GraphDivergence:
    """A divergence that a node's attributes alone do not show: it needs the graph around the node (what
    produces its input). Matched on the model a case ran; a mismatching case that matches says so."""

    id: str
    backends: tuple[str, ...]
    lowerings: tuple[str, ...]
    applies: Callable[[object], bool]  # the ONNX model (onnx.ModelProto) the case ran
    reason: str
    reproducer: str


def _zero_pad_into_strided_convtranspose(model) -> bool:
    """A constant-mode Pad (zero: no value input, or none given) whose output is a ConvTranspose's data input,
    the ConvTranspose with a stride above 1."""
    producer = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type != "ConvTranspose":
            continue
        strides = next((list(a.ints) for a in n.attribute if a.name == "strides"), [])
        pad = producer.get(n.input[0])
        if pad is None or pad.op_type != "Pad" or not any(s > 1 for s in strides):
            continue
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        value = next((a.f for a in pad.attribute if a.name == "value"), 0.0)
        if mode == b"constant" and value == 0.0 and (len(pad.input) < 3 or not pad.input[2]):
            return True
    return False


def _depth_to_space_on_zero_size(model) -> bool:
    """A DepthToSpace in a model with a zero-size input dimension (an empty batch): its input is empty too."""
    empty = any(
        d.HasField("dim_value") and d.dim_value == 0 for vi in model.graph.input for d in vi.type.tensor_type.shape.dim
    )
    return empty and any(n.op_type == "DepthToSpace" for n in model.graph.node)


def _grouped_conv_without_leading_pad(model) -> bool:
    """A Conv with group > 1, more than one output channel per group and no leading (begin) pad: the kernel TVM's
    CUDA Reduction rule schedules with its spatial split below the cross-thread reduction."""
    from onnx import helper

    inits = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        att = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        group = int(att.get("group", 1))
        if group <= 1 or att.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        pads = list(att.get("pads", []))
        if any(pads[: len(pads) // 2]):
            continue
        w = inits.get(n.input[1]) if len(n.input) > 1 else None
        cout = int(w.dims[0]) if w is not None else None
        if w is None:  # a weight computed in the graph: its shape from the value info, when known
            vi = {v.name: v for v in (*model.graph.value_info, *model.graph.input)}.get(n.input[1])
            dims = vi.type.tensor_type.shape.dim if vi is not None else []
            cout = dims[0].dim_value if dims and dims[0].HasField("dim_value") else None
        if cout is not None and cout // group > 1:
            return True
    return False


def _inferred_dims(model) -> dict[str, list[int | None]]:
    """Every tensor's dimensions by ONNX shape inference (None where unknown); {} when inference fails."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 — unknown, then
        return {}
    return {
        vi.name: [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)
    }


def _depth_to_space_crd_over_two(model) -> bool:
    """A DepthToSpace in CRD mode whose input has more than 2·blocksize² channels (IREE's wrong answer)."""
    from onnx import helper

    if not any(n.op_type == "DepthToSpace" for n in model.graph.node):
        return False
    shapes = _inferred_dims(model)
    for n in model.graph.node:
        if n.op_type != "DepthToSpace":
            continue
        att = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if att.get("mode", b"DCR") not in (b"CRD", "CRD"):
            continue
        b = int(att.get("blocksize", 1))
        dims = shapes.get(n.input[0]) or []
        c = dims[1] if len(dims) > 1 else None
        if c is None or c > 2 * b * b:
            return True
    return False


def _depthwise_convtranspose(model) -> bool:
    """A ConvTranspose with group = C > 1 and one output channel per group (W: C x 1 x k...)."""
    from onnx import helper

    inits = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type != "ConvTranspose":
            continue
        group = int(next((helper.get_attribute_value(a) for a in n.attribute if a.name == "group"), 1))
        w = inits.get(n.input[1]) if len(n.input) > 1 else None
        if group > 1 and w is not None and int(w.dims[0]) == group and int(w.dims[1]) == 1:
            return True
    return False


def _iree_unconverted_convtranspose(model) -> bool:
    """A ConvTranspose IREE's ONNX -> torch conversion leaves unconverted: auto_pad SAME_*, output_shape or
    asymmetric pads."""
    from onnx import helper

    for n in model.graph.node:
        if n.op_type != "ConvTranspose":
            continue
        att = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        auto_pad = att.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        pads = list(att.get("pads", []))
        half = len(pads) // 2
        if auto_pad in ("SAME_UPPER", "SAME_LOWER") or att.get("output_shape") or pads[:half] != pads[half:]:
            return True
    return False


def _grouped_convtranspose_bias_single_position(model) -> bool:
    """A grouped ConvTranspose with a bias whose output has one position per channel (every spatial extent 1)."""
    from onnx import helper

    shapes = _inferred_dims(model)
    for n in model.graph.node:
        if n.op_type != "ConvTranspose" or len(n.input) < 3 or not n.input[2]:
            continue
        group = int(next((helper.get_attribute_value(a) for a in n.attribute if a.name == "group"), 1))
        out = shapes.get(n.output[0]) or []
        if group > 1 and len(out) > 2 and all(d == 1 for d in out[2:]):
            return True
    return False


def _col2im(model) -> bool:
    return any(n.op_type == "Col2Im" for n in model.graph.node)


IREE_BACKENDS = ("iree-cpu", "iree-cpu-cl", "iree-cuda")

GRAPH_LEDGER: tuple[GraphDivergence, ...] = (
    GraphDivergence(
        "openvino-pad-fused-into-strided-convtranspose",
        ("openvino-cpu",),
        ("native", "explicit_pads"),  # the lowerings without a ConvTranspose feed the Pad to a Conv: exact
        _zero_pad_into_strided_convtranspose,
        "OpenVINO fuses a zero Pad in front of a ConvTranspose into the node's pads as for a Conv, wrong with "
        "stride > 1: the output is shorter by (stride - 1) x the padding (1-D x 3, Pad 1+1, w 2, stride 2, "
        "pads 1+1: length 6 instead of 8)",
        "docs/upstream/openvino_pad_convtranspose_fusion.py",
    ),
    GraphDivergence(
        "tvm-depth-to-space-zero-size",
        ("tvm-llvm", "tvm-cuda"),
        ("phase", "phase_split"),  # the lowerings that emit DepthToSpace (2-D, equal strides)
        _depth_to_space_on_zero_size,
        "TVM 0.27's ONNX frontend cannot import DepthToSpace on a tensor with a zero-size dimension ('The type is "
        "not populated'): the phase and phase_split lowerings of a ConvTranspose with an empty batch fails to compile on TVM, where "
        "ONNX Runtime and OpenVINO run it",
        "docs/upstream/tvm_depth_to_space_zero_size.py",
    ),
    GraphDivergence(
        "tvm-cuda-grouped-conv-cross-thread-reduction",
        ("tvm-cuda",),
        ALL_LOWERINGS,  # any graph holding such a Conv (phase_split's last phase of a grouped layer emits one)
        _grouped_conv_without_leading_pad,
        "TVM 0.27's CUDA default schedule (dlight Reduction) cannot build a grouped Conv with more than one output "
        "channel per group and no leading pad: it splits the output channels and leaves the spatial split below "
        "the threadIdx.x reduction loop ('Cross-thread reduction requires all the reduction-related loops to be "
        "the deepest'); dwdecoder@256/phase_split's 96 -> 48, group 4, pads [0, 0, 1, 1] phase",
        "docs/upstream/tvm_cuda_grouped_conv_cross_thread_reduction.py",
    ),
    GraphDivergence(
        "iree-depth-to-space-crd",
        IREE_BACKENDS,
        ALL_LOWERINGS,  # the model's own DepthToSpace (PixelShuffle): convtx's phase avoids it on IREE
        _depth_to_space_crd_over_two,
        "IREE 3.13 computes DepthToSpace in CRD mode wrongly when C / blocksize² > 2 (a silent wrong answer; DCR is "
        "right): subpixel@256's PixelShuffle comes out with rel L2 0.81",
        "docs/upstream/iree_depth_to_space_crd.py",
    ),
    GraphDivergence(
        "iree-depthwise-convtranspose",
        IREE_BACKENDS,
        ALL_LOWERINGS,  # a lowering that keeps the ConvTranspose (native, explicit_pads) or declines the node
        _depthwise_convtranspose,
        "IREE 3.13 cannot compile a depthwise ConvTranspose (group = C > 1, one output channel per group): "
        "'tensor.collapse_shape' op expected reassociation map #0 to have size equal to the expanded rank",
        "docs/upstream/iree_depthwise_convtranspose.py",
    ),
    GraphDivergence(
        "iree-convtranspose-unconverted",
        IREE_BACKENDS,
        ("native", "explicit_pads"),  # the lowerings that keep a ConvTranspose (explicit_pads: asymmetric pads)
        _iree_unconverted_convtranspose,
        "IREE 3.13's ONNX import converts ConvTranspose only with symmetric explicit pads: auto_pad "
        "SAME_UPPER/SAME_LOWER, asymmetric pads and an output_shape whose padding is uneven stay unconverted ('failed to legalize operation torch.operator ... onnx.ConvTranspose'), and an output_shape "
        "it does take with a negative total padding comes out wrong; the other lowerings compute them",
        "docs/upstream/iree_convtranspose_attributes.py",
    ),
    GraphDivergence(
        "iree-grouped-convtranspose-bias",
        IREE_BACKENDS,
        ("native", "explicit_pads"),
        _grouped_convtranspose_bias_single_position,
        "IREE 3.13 cannot compile a grouped ConvTranspose with a bias whose output is one position per channel: "
        "'linalg.generic op write affecting operations on global resources are restricted to workgroup "
        "distributed contexts'",
        "docs/upstream/iree_grouped_convtranspose_bias.py",
    ),
    GraphDivergence(
        "iree-col2im",
        IREE_BACKENDS,
        ALL_LOWERINGS,  # gemm_col2im emits it
        _col2im,
        "IREE 3.13 cannot compile ONNX Col2Im: its sizes stay torch constants iree-compile cannot legalise "
        "('failed to legalize operation torch.constant.int')",
        "docs/upstream/iree_col2im.py",
    ),
)


def graph_matches(backend: str, lowering: str, model) -> tuple[GraphDivergence, ...]:
    """Every graph-ledger entry about this (backend, lowering) whose pattern the model holds."""
    return tuple(e for e in GRAPH_LEDGER if backend in e.backends and lowering in e.lowerings and e.applies(model))


# Known failures of the CUDA build (`convtx build`, `make build-cuda`): (id, case-id glob, substring of the nvcc
# error, explanation, reproducer). A failure that matches is reported as known and does not fail the command;
# an unmatched one does.
CUDA_BUILD_LEDGER: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "tvm-cuda-conv1d-shared-memory",
        "wave1d@*/*/tvm-cuda/*",
        "uses too much shared data",
        "TVM 0.27's dlight schedules a long Conv1d (wave1d's final Conv1d(16->1, k7) + Tanh over 8192 samples) "
        "with the whole input cached in shared memory (512 KiB, over the target's 48 KiB): ptxas refuses the "
        "kernel, so on a GPU these libraries would fail to load",
        "docs/upstream/tvm_cuda_conv1d_shared_memory.py",
    ),
)


def match_cuda_build(case_id: str, error: str) -> tuple[str, str, str] | None:
    """(id, explanation, reproducer) of the known CUDA build failure this is, or None."""
    from fnmatch import fnmatchcase

    for kid, glob, needle, why, repro in CUDA_BUILD_LEDGER:
        if fnmatchcase(case_id, glob) and needle in error:
            return kid, why, repro
    return None


# Upstream bugs the harness works around rather than reports per case (a pass that aborts where it should do
# nothing): (id, explanation, where convtx works around it, reproducer). Kept so that the day upstream fixes
# one, its reproducer's unexpected pass says the workaround can go.
WORKAROUND_LEDGER: tuple[tuple[str, str, str, str], ...] = (
    (
        "tvm-split-layout-rewrite-opaque-kernel",
        "TVM 0.27's SplitLayoutRewritePreproc aborts on a module holding any PrimFunc without a root block of "
        "compute blocks (legalised cumsum, in segnet's index-free unpooling), even with nothing to split in it",
        "harness/backends/tvm/defaults.py prepack: the pass sees only the Relax functions and the kernels it splits",
        "docs/upstream/tvm_split_layout_rewrite_opaque_kernel.py",
    ),
)

# Upstream performance cliffs convtx measured: not wrong answers, so no case's verdict changes; the report's
# per-layer profiles show them. (id, what was measured, where it shows, reproducer): the day a reproducer says
# FIXED, the entry goes (tests/checking/test_known.py runs each).
PERFORMANCE_LEDGER: tuple[tuple[str, str, str, str], ...] = (
    (
        "openvino-maxpool-indices-reference-kernel",
        "OpenVINO 2026.4 runs a MaxPool whose Indices output is used on its reference implementation (a "
        "'Reference' node, ref_f32), about 100x the JIT kernel it uses without Indices (MaxPool 2x2 on "
        "1x16x256x256: 0.38 ms against 39.6 ms)",
        "unpool_max@256 on openvino-cpu: its four MaxPools with Indices take 155 ms of 160 ms (ort-cpu: 8.2 ms "
        "for the model; the maxpool_indices rewrite, which computes the Indices without them, brings it to 34 ms); "
        "segnet@256 on openvino-cpu is 18.6x ort-cpu for the same reason",
        "docs/upstream/openvino_maxpool_indices_reference_kernel.py",
    ),
)
