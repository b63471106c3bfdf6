"""ConvTranspose exactly as the ONNX spec (opset 11+) defines it.

`resolve()` turns a node's attributes plus the input/weight shapes into explicit parameters: the shared
first step of every lowering. `conv_transpose()` is the float64 reference, written from the spec's scatter
definition  y[n, m, o] += x[n, c, i] * w[c, m', k]  at  o = i*stride - pad_begin + k*dilation.

Spec-exact means: a negative total padding under SAME_* or `output_shape` is kept (the output grows,
filled from the scatter), not clamped to 0 as ONNX Runtime and TVM do.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvTransposeParams:
    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    output_padding: tuple[int, ...]
    group: int
    output_spatial: tuple[int, ...]  # spatial shape of the output

    @property
    def pads(self) -> tuple[int, ...]:
        """ONNX layout: [x1_begin, x2_begin, ..., x1_end, x2_end, ...]."""
        return self.pads_begin + self.pads_end


class InvalidConvTranspose(ValueError):
    """A ConvTranspose the spec forbids; `rule` is the key in RULES it breaks."""

    def __init__(self, rule: str, message: str):
        super().__init__(f"invalid ConvTranspose (rule {rule}: {RULES[rule]}): {message}")
        self.rule, self.detail = rule, message


# The spec's constraints on one node (opset 11+, plus ONNX Runtime's documented rank+2 `output_shape`), in the
# order they are checked: one validation shared by every lowering, the reference, the fuzzer and `validate`.
RULES: dict[str, str] = {
    "rank": "X and W have the same rank, at least 3",
    "group": "group >= 1 divides C, and W.shape[0] = C",
    "kernel_shape": "kernel_shape equals W's spatial dimensions",
    "strides": "one stride >= 1 per spatial axis",
    "dilations": "one dilation >= 1 per spatial axis",
    "pads": "2 pads >= 0 per spatial axis",
    "output_padding": "one output_padding per spatial axis, 0 <= value < max(stride, dilation)",
    "output_shape": "one output_shape value >= 1 per spatial axis (or N, C and those)",
    "auto_pad": "auto_pad is NOTSET, SAME_UPPER, SAME_LOWER or VALID",
    "bias": "B has shape (M,), M = W.shape[1] * group",
    "output_size": "every output spatial size is >= 1",
}


def _ints(attrs: dict, name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    v = attrs.get(name)
    return default if v is None or (not isinstance(v, int) and len(v) == 0) else tuple(int(x) for x in v)


def resolve(
    attrs: dict,
    x_shape: tuple,
    w_shape: tuple[int, ...],
    b_shape: tuple[int, ...] | None = None,
) -> ConvTransposeParams:
    """Explicit parameters from ONNX attributes (names as in the spec) and static shapes, or
    InvalidConvTranspose naming the first rule of RULES the node breaks.

    x: N x C x D1 x ... (N may be symbolic: any non-int); w: C x M/group x k1 x ...; b: (M,) or None (no bias).
    """
    if len(x_shape) < 3 or len(w_shape) != len(x_shape):
        raise InvalidConvTranspose("rank", f"input rank {len(x_shape)}, weight rank {len(w_shape)}")
    nd = len(x_shape) - 2
    group = int(attrs.get("group", 1))
    if group < 1 or x_shape[1] != w_shape[0] or x_shape[1] % group:
        raise InvalidConvTranspose("group", f"{x_shape[1]} input channels, weight {list(w_shape)}, group {group}")
    kernel = _ints(attrs, "kernel_shape", tuple(w_shape[2:]))
    if kernel != tuple(w_shape[2:]):
        raise InvalidConvTranspose("kernel_shape", f"kernel_shape {list(kernel)} vs weight shape {list(w_shape)}")
    strides = _ints(attrs, "strides", (1,) * nd)
    dilations = _ints(attrs, "dilations", (1,) * nd)
    pads = _ints(attrs, "pads", (0,) * (2 * nd))
    out_pad = _ints(attrs, "output_padding", (0,) * nd)
    for name, v, n in (("strides", strides, nd), ("dilations", dilations, nd), ("pads", pads, 2 * nd)):
        if len(v) != n or min(v) < (0 if name == "pads" else 1):
            raise InvalidConvTranspose(name, f"{name} {list(v)} for {nd} spatial axes")
    # the spec: "less than the corresponding stride/dilation"; read as the larger of the two
    # (every engine here demands less than the stride: harness/checking/known.py records that)
    if len(out_pad) != nd or any(op < 0 or op >= max(st, dl) for op, st, dl in zip(out_pad, strides, dilations)):
        raise InvalidConvTranspose(
            "output_padding",
            f"output_padding {list(out_pad)} with max(stride, dilation) = "
            f"{[max(a, b) for a, b in zip(strides, dilations)]}",
        )
    out_shape_attr = _ints(attrs, "output_shape", ())
    if len(out_shape_attr) == nd + 2:  # tolerated: N, C given too (ORT accepts this form)
        out_shape_attr = out_shape_attr[2:]
    if out_shape_attr and (len(out_shape_attr) != nd or min(out_shape_attr) < 1):
        raise InvalidConvTranspose("output_shape", f"output_shape {list(out_shape_attr)} for {nd} spatial axes")
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise InvalidConvTranspose("auto_pad", f"auto_pad {auto_pad!r}")
    m = int(w_shape[1]) * group
    if b_shape is not None and tuple(b_shape) != (m,):
        raise InvalidConvTranspose("bias", f"B of shape {list(b_shape)} for M = {m} output channels")

    in_sp = x_shape[2:]
    # the un-padded full extent: stride*(in-1) + output_padding + (k-1)*dilation + 1
    full = tuple(
        s * (i - 1) + op + (k - 1) * d + 1 for s, i, op, k, d in zip(strides, in_sp, out_pad, kernel, dilations)
    )
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") or out_shape_attr:
        target = out_shape_attr or tuple(i * s for i, s in zip(in_sp, strides))
        total = tuple(f - t for f, t in zip(full, target))
        if auto_pad == "SAME_UPPER":
            begin = tuple(t // 2 for t in total)  # python floor == spec's integer division
            end = tuple(t - t // 2 for t in total)
        else:  # SAME_LOWER, and NOTSET/VALID with output_shape (the spec's "Else" branch)
            begin = tuple(t - t // 2 for t in total)
            end = tuple(t // 2 for t in total)
    elif auto_pad == "VALID":
        begin = end = (0,) * nd
    else:
        begin, end = pads[:nd], pads[nd:]
    out_sp = tuple(f - b - e for f, b, e in zip(full, begin, end))
    if any(o <= 0 for o in out_sp):
        raise InvalidConvTranspose("output_size", f"output spatial shape {list(out_sp)}")
    return ConvTransposeParams(kernel, strides, dilations, tuple(begin), tuple(end), out_pad, group, out_sp)


def rule_broken(attrs: dict, x_shape: tuple, w_shape: tuple, b_shape: tuple | None = None) -> str | None:
    """The first rule of RULES the node breaks, or None when it is valid."""
    try:
        resolve(attrs, x_shape, w_shape, b_shape)
    except InvalidConvTranspose as e:
        return e.rule
    return None


def node_shapes(model) -> dict[str, tuple]:
    """Static-or-symbolic shapes of every tensor `model` (already through shape inference) declares, its
    initializers and its Constant nodes' outputs: {name: (dim, ...)}, a dim an int or None."""
    out: dict[str, tuple] = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    for t in g.initializer:
        out[t.name] = tuple(int(d) for d in t.dims)
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = tuple(int(d) for d in a.t.dims)
    return out


def invalid_nodes(model) -> list[tuple[str, InvalidConvTranspose]]:
    """(node label, the rule it breaks) of every ConvTranspose of `model`'s main graph the spec forbids.
    Judged on the shapes `model` declares (run shape inference first): a node whose input, weight or bias
    rank is unknown is checked on its attributes alone, with input sizes that cannot empty the output."""
    from onnx import helper

    shapes = node_shapes(model)
    bad = []
    for node in model.graph.node:
        if node.op_type != "ConvTranspose":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        w = shapes.get(node.input[1]) if len(node.input) > 1 else None
        x = shapes.get(node.input[0])
        b = shapes.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if w is None or any(d is None for d in w):
            continue  # nothing to check the attributes against
        if x is None:
            x = (None,) * len(w)
        if len(x) == len(w):  # unknown sizes: the weight's channels, and an input too large to empty the output
            x = (1, w[0] if x[1] is None else x[1]) + tuple(1 << 20 if d is None else d for d in x[2:])
        if b is not None and any(d is None for d in b):
            b = None
        try:
            resolve(attrs, tuple(x), tuple(w), b)
        except InvalidConvTranspose as e:
            bad.append((node.name or node.output[0], e))
    return bad


def conv_transpose(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, p: ConvTransposeParams) -> np.ndarray:
    """Float64 ConvTranspose by the scatter definition; x: N x C x D..., w: C x M/g x K... -> N x M x O..."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, c = x.shape[:2]
    nd = x.ndim - 2
    g = p.group
    cg, mg = c // g, w.shape[1]
    y = np.zeros((n, mg * g, *p.output_spatial), dtype=np.float64)
    in_sp = x.shape[2:]
    for k in itertools.product(*(range(kk) for kk in p.kernel_shape)):
        # for this kernel tap, input i lands on o = i*s - pad_begin + k*d; keep 0 <= o < O
        src: list[slice] = []
        dst: list[slice] = []
        for ax in range(nd):
            s, o0, out_n = p.strides[ax], -p.pads_begin[ax] + k[ax] * p.dilations[ax], p.output_spatial[ax]
            i_lo = 0 if o0 >= 0 else (-o0 + s - 1) // s  # smallest i with o0 + i*s >= 0
            i_hi = min(in_sp[ax] - 1, (out_n - 1 - o0) // s)  # largest i with o0 + i*s <= O-1
            if i_hi < i_lo:
                break
            src.append(slice(i_lo, i_hi + 1))
            start = o0 + i_lo * s
            dst.append(slice(start, start + (i_hi - i_lo) * s + 1, s))
        else:
            for gi in range(g):
                xs = x[(slice(None), slice(gi * cg, (gi + 1) * cg), *src)]  # N x C/g x I'...
                tap: tuple[slice | int, ...] = (slice(gi * cg, (gi + 1) * cg), slice(None), *k)
                wk = w[tap]  # C/g x M/g
                contrib = np.tensordot(xs, wk, axes=([1], [0]))  # N x I'... x M/g
                contrib = np.moveaxis(contrib, -1, 1)  # N x M/g x I'...
                y[(slice(None), slice(gi * mg, (gi + 1) * mg), *dst)] += contrib
    if b is not None:
        y += np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * nd)
    return y
