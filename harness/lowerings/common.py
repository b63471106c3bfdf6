"""The machinery every lowering shares.

`rewrite(model, lower_fn)` finds each ConvTranspose, resolves its attributes exactly as the ONNX spec
defines them (`harness.core.convtranspose.resolve`: auto_pad and output_shape become explicit begin/end pads,
possibly negative), and asks `lower_fn` for an equivalent subgraph. A node a lowering cannot handle is left
native and reported with the reason (`LoweringResult.declined`); nothing is changed silently.

Coordinates: every lowering computes some contiguous range of the *full* transposed convolution
(positions o_full = i*stride + k*dilation, 0 <= o_full < F, F = stride*(in-1) + dilation*(k-1) + 1),
and `finish()` cuts the spec's output window [pad_begin, pad_begin + out) out of it, filling positions the
full result does not cover (negative pads, output_padding) with zeros, then adds the bias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.core.convtranspose import ConvTransposeParams, InvalidConvTranspose, resolve

MIN_OPSET = 13  # Split/Squeeze/Unsqueeze/Pad/Slice with tensor inputs


class Decline(Exception):
    """This lowering cannot rewrite this node; the reason is reported and the node stays native."""


@dataclass(frozen=True)
class ConvTransposeNode:
    """A ConvTranspose with everything a lowering needs resolved."""

    name: str
    x: str  # input tensor name
    out: str  # output tensor name (the replacement must produce it)
    x_shape: tuple  # N x C x D...; N may be symbolic (str/None)
    w: np.ndarray | None  # C x M/group x K...; None: computed at run time (the tensor `w_name`)
    b: np.ndarray | None  # M; None: no bias, or one computed at run time (`b_name`)
    p: ConvTransposeParams
    opset: int
    w_name: str = ""  # a weight computed at run time (a graph input, DequantizeLinear of int8, ...)
    b_name: str = ""  # a bias computed at run time
    w_dims: tuple[int, ...] = ()  # the run-time weight's (static) shape

    @property
    def nd(self) -> int:
        return len(self.p.kernel_shape)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in (self.w.shape if self.w is not None else self.w_dims))

    @property
    def has_bias(self) -> bool:
        return self.b is not None or bool(self.b_name)

    @property
    def channels_in(self) -> int:
        return self.w_shape[0]

    @property
    def channels_out(self) -> int:
        return self.w_shape[1] * self.p.group

    @property
    def in_spatial(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.x_shape[2:])

    @property
    def full(self) -> tuple[int, ...]:
        """Extent of the full (un-cropped) transposed convolution per spatial axis."""
        p = self.p
        return tuple(
            s * (i - 1) + d * (k - 1) + 1 for s, i, d, k in zip(p.strides, self.in_spatial, p.dilations, p.kernel_shape)
        )


@dataclass(frozen=True)
class LoweringResult:
    model: object  # onnx.ModelProto
    lowered: tuple[str, ...] = ()  # names of the rewritten ConvTranspose nodes
    declined: tuple[tuple[str, str], ...] = ()  # (node name, reason) left native
    total: int = 0  # ConvTranspose nodes in the input model
    options: tuple[tuple[str, str], ...] = ()  # the engine's lowering options that applied (LOWERING_OPTIONS)

    def summary(self) -> dict:
        d = {
            "convtranspose_nodes": self.total,
            "lowered": len(self.lowered),
            "declined": [{"node": n, "reason": r} for n, r in self.declined],
        }
        if self.options:
            d["options"] = dict(self.options)
        return d


# Options an engine may ask of the lowerings (`Backend.lowering_options`), each name -> its values, the first the
# default. depth_to_space: how `phase` interleaves its phases in 2-D: DepthToSpace(CRD), or Reshape/Transpose/Reshape
# (for an engine whose DepthToSpace CRD is wrong: IREE 3.13, harness/checking/known.py).
LOWERING_OPTIONS: dict[str, tuple[str, ...]] = {"depth_to_space": ("crd", "reshape")}


def check_options(options: dict | None) -> dict:
    """`options` with every name and value checked against LOWERING_OPTIONS."""
    for k, v in (options or {}).items():
        if k not in LOWERING_OPTIONS or v not in LOWERING_OPTIONS[k]:
            raise ValueError(f"lowering option {k}={v!r}: known are {LOWERING_OPTIONS}")
    return dict(options or {})


class Emitter:
    """Builds the replacement subgraph of one node: unique names, constants as initializers."""

    def __init__(self, prefix: str, taken: set[str], options: dict | None = None):
        self.prefix, self.taken = prefix, taken
        self.nodes: list = []
        self.inits: list = []
        self.options = options or {}  # the engine's lowering options (LOWERING_OPTIONS)
        self.used: set[str] = set()  # the options this node's lowering read

    def option(self, name: str) -> str:
        """The value of lowering option `name` (its default when the engine gave none), noted as used."""
        self.used.add(name)
        return self.options.get(name, LOWERING_OPTIONS[name][0])

    def name(self, base: str) -> str:
        n, i = f"{self.prefix}/{base}", 0
        while n in self.taken:
            i += 1
            n = f"{self.prefix}/{base}_{i}"
        self.taken.add(n)
        return n

    def const(self, arr, base: str) -> str:
        from onnx import numpy_helper

        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def ints(self, values, base: str) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), base)

    def op(self, op_type: str, inputs: list[str], base: str | None = None, out: str | None = None, **attrs) -> str:
        from onnx import helper

        o = out or self.name(base or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [o], name=self.name(f"{op_type}"), **attrs))
        return o

    # ---- shape helpers (batch dimension kept symbolic via Reshape's 0 = copy)
    def reshape(self, t: str, dims: list[int], base: str = "reshape") -> str:
        return self.op("Reshape", [t, self.ints([0] + list(dims), "shape")], base)

    def reshape_all(self, t: str, dims: list[int], base: str = "reshape") -> str:
        """Reshape to exactly `dims` (no batch axis kept): for weights computed at run time."""
        return self.op("Reshape", [t, self.ints(list(dims), "shape")], base)

    def pad(self, t: str, begin: list[int], end: list[int], base: str = "pad") -> str:
        if not any(begin) and not any(end):
            return t
        assert min(begin + end) >= 0
        return self.op("Pad", [t, self.ints(list(begin) + list(end), "pads")], base, mode="constant")

    def slice(self, t: str, axes: list[int], starts: list[int], ends: list[int], base: str = "crop") -> str:
        return self.op(
            "Slice", [t, self.ints(starts, "starts"), self.ints(ends, "ends"), self.ints(axes, "axes")], base
        )


def weight_value(model, name: str) -> np.ndarray | None:
    """The value of an initializer or a Constant node's output, else None."""
    from onnx import numpy_helper

    for t in model.graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
    return None


def _shapes(model) -> dict[str, tuple]:
    import onnx

    try:
        m = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 — without inferred shapes a node is declined later, with its reason
        m = model
    out = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            out[vi.name] = (
                tt.elem_type,
                tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim),
            )
    return out


def opset_of(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def extract(model, node, shapes: dict) -> ConvTransposeNode:
    """Resolve one ConvTranspose node, or Decline with the reason."""
    from onnx import helper

    opset = opset_of(model)
    if opset < MIN_OPSET:
        raise Decline(f"model opset {opset} < {MIN_OPSET} (lowerings emit opset-13 forms of Pad/Slice/Split)")
    w = weight_value(model, node.input[1])
    w_name, w_dims = ("", ()) if w is not None else (node.input[1], _runtime_shape(node.input[1], "weight", shapes))
    b, b_name, b_dims = None, "", None
    if len(node.input) > 2 and node.input[2]:
        b = weight_value(model, node.input[2])
        if b is None:
            b_name, b_dims = node.input[2], _runtime_shape(node.input[2], "bias", shapes)
        else:
            b_dims = tuple(b.shape)
    if node.input[0] not in shapes:
        raise Decline(f"the shape of input {node.input[0]!r} is unknown (shape inference found none)")
    elem, x_shape = shapes[node.input[0]]
    if elem != 1 or (w is not None and w.dtype != np.float32) or (b is not None and b.dtype != np.float32):
        raise Decline("only float32 ConvTranspose is lowered")
    w_rank = w.ndim if w is not None else len(w_dims)
    if len(x_shape) != w_rank or len(x_shape) < 3:
        raise Decline(str(InvalidConvTranspose("rank", f"input rank {len(x_shape)}, weight rank {w_rank}")))
    if any(not isinstance(d, int) or d <= 0 for d in x_shape[1:]):
        raise Decline(
            f"input {node.input[0]!r} has shape {list(x_shape)}; channels and spatial dims must be "
            f"static (only the batch may be symbolic)"
        )
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    try:
        p = resolve(attrs, (1,) + tuple(x_shape[1:]), tuple(w.shape) if w is not None else w_dims, b_dims)
    except InvalidConvTranspose as e:  # the batch does not matter
        raise Decline(str(e)) from None
    return ConvTransposeNode(
        node.name or node.output[0],
        node.input[0],
        node.output[0],
        tuple(x_shape),
        w,
        b,
        p,
        opset,
        w_name,
        b_name,
        tuple(w_dims),
    )


def _runtime_shape(name: str, what: str, shapes: dict) -> tuple[int, ...]:
    """The static shape of a weight or bias computed at run time, or Decline: a lowering builds its transform in
    the graph (Reshape, Transpose, Slice, Gather), which needs the shape."""
    elem, dims = shapes.get(name, (None, None))
    if dims is None or any(not isinstance(d, int) for d in dims):
        raise Decline(
            f"{what} {name!r} is computed at run time and its shape is not static "
            f"({'unknown' if dims is None else list(dims)}); a lowering transforms it in the graph by its shape"
        )
    if elem != 1:
        raise Decline(f"only float32 ConvTranspose is lowered ({what} {name!r} has ONNX element type {elem})")
    return tuple(dims)


def rewrite(
    model,
    lower_fn: Callable[[Emitter, ConvTransposeNode], None],
    only: frozenset[str] | None = None,
    options: dict | None = None,
) -> LoweringResult:
    """Replace every ConvTranspose (or those whose label — name, else first output — is in `only`) by
    `lower_fn`'s subgraph (which must write the node's output name). `options`: the engine's lowering options
    (LOWERING_OPTIONS); those a lowering read are in the result."""
    options = check_options(options)
    used: set[str] = set()
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    shapes = _shapes(m)
    taken = {n for node in m.graph.node for n in list(node.input) + list(node.output) + [node.name]}
    taken |= {t.name for t in m.graph.initializer} | {vi.name for vi in m.graph.input}
    new_nodes, new_inits, lowered, declined, total = [], [], [], [], 0
    for node in m.graph.node:
        if node.op_type != "ConvTranspose":
            new_nodes.append(node)
            continue
        total += 1
        label = node.name or node.output[0]
        if only is not None and label not in only:
            new_nodes.append(node)
            continue
        try:
            ct = extract(m, node, shapes)
            em = Emitter(f"{label}/lowered", taken, options)
            lower_fn(em, ct)
            used |= em.used
            if not em.nodes or em.nodes[-1].output[0] != ct.out:
                raise AssertionError("a lowering must end by writing the node's output")
        except Decline as e:
            declined.append((label, str(e)))
            new_nodes.append(node)
            continue
        new_nodes.extend(em.nodes)
        new_inits.extend(em.inits)
        lowered.append(label)
    set_nodes(m, new_nodes, new_inits)
    _drop_unused_initializers(m)
    applied = tuple(sorted((k, options[k]) for k in used if k in options))  # what the engine asked, and it mattered
    return LoweringResult(m, tuple(lowered), tuple(declined), total, applied)


def set_nodes(m, nodes: list, inits: list) -> None:
    """The graph's nodes become `nodes` (in order) and `inits` join its initializers."""
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    m.graph.initializer.extend(inits)


def _drop_unused_initializers(m) -> None:
    """Weights of lowered nodes are replaced by rewritten copies: drop the originals nobody reads."""
    used = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
    for a in (at for n in m.graph.node for at in n.attribute if at.type == at.GRAPH):
        used |= {i for n in a.g.node for i in n.input}
    dropped = {t.name for t in m.graph.initializer if t.name not in used}
    if dropped:
        keep = [t for t in m.graph.initializer if t.name not in dropped]
        inputs = [vi for vi in m.graph.input if vi.name not in dropped]  # old-style: weights listed as inputs
        del m.graph.initializer[:]
        m.graph.initializer.extend(keep)
        del m.graph.input[:]
        m.graph.input.extend(inputs)


# ------------------------------------------------------------------------------------ weights and bias


def weight(em: Emitter, ct: ConvTransposeNode, base: str = "W") -> str:
    """The weight as it is (C x M/group x K...): a constant of the rewrite, or the run-time tensor."""
    return em.const(ct.w, base) if ct.w is not None else ct.w_name


def bias(
    em: Emitter, ct: ConvTransposeNode, shape: tuple[int, ...] = (-1,), repeat: int = 1, base: str = "bias"
) -> str:
    """The bias (M), each value repeated `repeat` times in a row (M*repeat: per phase), reshaped to `shape`:
    a constant, or the run-time tensor through Reshape/Expand."""
    if ct.b is not None:
        return em.const(np.repeat(ct.b, repeat).reshape(shape), base)
    t = ct.b_name
    if repeat > 1:
        t = em.reshape_all(t, [-1, 1], "bias_column")
        t = em.op("Expand", [t, em.ints([1, repeat], "repeat")], "bias_repeated")
    return em.reshape_all(t, list(shape), "bias") if tuple(shape) != (-1,) or repeat > 1 else t


def group_swap(em: Emitter, t: str, shape: tuple[int, ...], group: int, base: str) -> str:
    """C x M/g x R... -> M x C/g x R... (per group: in and out channels swapped), R any trailing dims."""
    c, mg, rest = shape[0], shape[1], list(shape[2:])
    t = em.reshape_all(t, [group, c // group, mg] + rest, f"{base}_groups")
    t = em.op("Transpose", [t], f"{base}_swapped", perm=[0, 2, 1] + list(range(3, 3 + len(rest))))
    return em.reshape_all(t, [group * mg, c // group] + rest, base)


# ---------------------------------------------------------------------------------------------- windows


def clamped_crop(ct: ConvTransposeNode) -> tuple[list[int], list[int], list[int]]:
    """Non-negative crops (begin, end) of the full result that an op with explicit pads can apply, and the
    length that leaves per axis; `finish` adds what is missing (negative pads, output_padding) as zeros.
    Where the window misses the result entirely, the whole result is kept (finish then zeroes it)."""
    p = ct.p
    cb = [max(b, 0) for b in p.pads_begin]
    ce = [max(f - b - o, 0) for f, b, o in zip(ct.full, p.pads_begin, p.output_spatial)]
    for ax, f in enumerate(ct.full):
        if f - cb[ax] - ce[ax] < 1:
            cb[ax] = ce[ax] = 0
    return cb, ce, [f - b - e for f, b, e in zip(ct.full, cb, ce)]


def window_fill_needed(ct: ConvTransposeNode, have_start, have_len) -> bool:
    """Whether the spec's output window reaches outside the computed range (so zeros must be added)."""
    want = zip(ct.p.pads_begin, ct.p.output_spatial)
    return any(ws < hs or ws + wl > hs + hl for (ws, wl), hs, hl in zip(want, have_start, have_len))


def finish(em: Emitter, ct: ConvTransposeNode, t: str, have_start, have_len, bias_folded: bool) -> None:
    """Cut the output window [pad_begin, pad_begin + out) out of `t`, which holds full coordinates
    [have_start, have_start + have_len) on each spatial axis; zeros where `t` has nothing; then bias.
    The last node written produces the ConvTranspose's output name."""
    axes, starts, ends, fill_b, fill_e = [], [], [], [0, 0], [0, 0]
    empty = False  # the window misses every product on some axis: the output is the bias alone
    for ax, (ws, wl, hs, hl) in enumerate(zip(ct.p.pads_begin, ct.p.output_spatial, have_start, have_len)):
        lo, hi = max(ws, hs), min(ws + wl, hs + hl)
        if hi <= lo:
            empty = True
            axes.append(2 + ax)
            starts.append(0)
            ends.append(1)
            fill_b.append(0)
            fill_e.append(wl - 1)
            continue
        if lo > hs or hi < hs + hl:
            axes.append(2 + ax)
            starts.append(lo - hs)
            ends.append(hi - hs)
        fill_b.append(lo - ws)
        fill_e.append(ws + wl - hi)
    steps: list[tuple[str, list[str], dict]] = []
    if axes:
        steps.append(("Slice", [em.ints(starts, "starts"), em.ints(ends, "ends"), em.ints(axes, "axes")], {}))
    if empty:  # keep one element per such axis, zero it, and let Pad grow it to the window
        steps.append(("Mul", [em.const(np.zeros((), np.float32), "zero")], {}))
    if any(fill_b + fill_e):
        steps.append(("Pad", [em.ints(fill_b + fill_e, "pads")], {"mode": "constant"}))
    if ct.has_bias and not bias_folded:
        steps.append(("Add", [bias(em, ct, (-1,) + (1,) * ct.nd)], {}))
    if not steps:  # `t` is already the output: let its producer write the output name
        producer = em.nodes[-1] if em.nodes else None
        if producer is not None and producer.output[0] == t:
            producer.output[0] = ct.out
            return
        steps.append(("Identity", [], {}))
    for i, (op, extra, attrs) in enumerate(steps):
        t = em.op(op, [t] + extra, out=ct.out if i == len(steps) - 1 else None, **attrs)


def interleave(em: Emitter, t: str, m: int, strides, q) -> tuple[str, tuple[int, ...]]:
    """N x M x s1..sD x Q1..QD  ->  N x M x Q1*s1 x .. x QD*sD  (phase r of row q lands at q*s + r)."""
    nd = len(strides)
    perm = [0, 1] + [a for d in range(nd) for a in (2 + nd + d, 2 + d)]
    t = em.op("Transpose", [t], "interleave", perm=perm)
    return em.reshape(t, [m] + [qq * s for qq, s in zip(q, strides)]), tuple(qq * s for qq, s in zip(q, strides))


def phase_taps(k: int, s: int, d: int) -> tuple[int, list[list[tuple[int, int]]]]:
    """Per axis: T (taps of the common phase kernel) and, for each phase r in [0, s), the (t, k) pairs
    with k*d = t*s + r:  y_full[q*s + r] = sum_t x[q - t] * w[k]."""
    T = (k - 1) * d // s + 1
    phases: list[list[tuple[int, int]]] = [[] for _ in range(s)]
    for kk in range(k):
        t, r = divmod(kk * d, s)
        phases[r].append((t, kk))
    return T, phases
