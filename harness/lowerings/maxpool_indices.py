"""MaxPool's Indices output computed without it: a rewrite for engines whose MaxPool has one output (TVM).

SegNet-style decoders unpool with the encoder's max-pooling indices (MaxUnpool, or ScatterND as PyTorch's
exporter writes it). TVM 0.27's ONNX frontend gives MaxPool one output, so such a graph does not import.
This rewrite keeps every MaxPool for its values and recomputes the Indices tensor from the pooled input,
exactly as ONNX defines it — the flat index into N x C x D1 x ... x Dn (storage_order 0) of the first
maximum of each window in row-major order, the position ORT's and PyTorch's MaxPool report, ties included:

    windows = Reshape/Transpose(X) to [N, C, O1..On, K]            (K = k1*...*kn positions per window)
    first   = (windows == ReduceMax(windows)) and CumSum(that) == 1  (the first position holding the max)
    Indices = ReduceSum(first * (base + offset))                     (base: the window's corner's flat index)

It takes non-overlapping windows (strides == kernel_shape), no padding, dilation 1, and spatial extents the
kernel divides (then ceil_mode changes nothing) — the pooling of every unpooling network; any other MaxPool
whose Indices are used is declined with the reason and stays as it is (the engine then refuses it as before).
A window holding NaN has no maximum equal to itself, so its index is 0 there, where ORT reports the NaN's
position: the values (the MaxPool's first output) are untouched either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.lowerings.common import Decline, Emitter, _shapes, opset_of, set_nodes

NAME = "maxpool_indices"


@dataclass(frozen=True)
class RewriteResult:
    model: object  # onnx.ModelProto
    rewritten: tuple[str, ...] = ()
    declined: tuple[tuple[str, str], ...] = ()

    def summary(self) -> dict:
        return {
            "rewrite": NAME,
            "rewritten": list(self.rewritten),
            "declined": [{"node": n, "reason": r} for n, r in self.declined],
        }


def applies(model) -> bool:
    """Whether the model has a MaxPool whose Indices output something reads."""
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    return any(n.op_type == "MaxPool" and len(n.output) > 1 and n.output[1] in used for n in model.graph.node)


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _indices(em: Emitter, node, shape: tuple, opset: int) -> None:
    """Emit the subgraph writing node.output[1] (see the module docstring), or Decline."""
    from onnx import TensorProto

    a = _attrs(node)
    if any(not isinstance(d, int) or d <= 0 for d in shape):
        raise Decline(f"input shape {list(shape)} is not static")
    n_sp = len(shape) - 2
    k = list(a.get("kernel_shape", []))
    s = list(a.get("strides", [1] * n_sp))
    if len(k) != n_sp:
        raise Decline("kernel_shape does not match the input's rank")
    if s != k:
        raise Decline(f"overlapping or gapped windows (strides {s}, kernel {k})")
    if any(a.get("pads", [0] * 2 * n_sp)) or (a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID")):
        raise Decline("padded pooling")
    if any(d != 1 for d in a.get("dilations", [1] * n_sp)):
        raise Decline("dilated pooling")
    if a.get("storage_order", 0) != 0:
        raise Decline("storage_order 1 (column-major indices)")
    sp = list(shape[2:])
    if any(d % kk for d, kk in zip(sp, k)):
        raise Decline(f"spatial extents {sp} not divisible by the kernel {k}")
    n, c = shape[0], shape[1]
    o = [d // kk for d, kk in zip(sp, k)]
    big = int(np.prod([kk for kk in k]))
    # [N, C, O1, k1, ..., On, kn] -> [N, C, O1..On, k1..kn] -> [N, C, O1..On, K]
    split = [n, c] + [v for pair in zip(o, k) for v in pair]
    t = em.op("Reshape", [node.input[0], em.ints(split, "split")], "split")
    perm = [0, 1] + [2 + 2 * i for i in range(n_sp)] + [3 + 2 * i for i in range(n_sp)]
    t = em.op("Transpose", [t], "windows", perm=perm)
    win = em.op("Reshape", [t, em.ints([n, c, *o, big], "flat")], "windows")
    last = len(o) + 2
    if opset >= 18:
        mx = em.op("ReduceMax", [win, em.ints([last], "axes")], "max", keepdims=1)
    else:
        mx = em.op("ReduceMax", [win], "max", axes=[last], keepdims=1)
    eq = em.op("Cast", [em.op("Equal", [win, mx], "is_max")], "is_max_f", to=TensorProto.FLOAT)
    run = em.op("CumSum", [eq, em.const(np.array(last, dtype=np.int64), "axis")], "running")
    once = em.op(
        "Cast", [em.op("Equal", [run, em.const(np.array(1.0, np.float32), "one")], "once")], to=TensorProto.FLOAT
    )
    first = em.op("Cast", [em.op("Mul", [eq, once], "first")], "first_i", to=TensorProto.INT64)
    # flat index of each window position: corner (per n, c and output position) + offset within the window
    plane = int(np.prod(sp))
    strides_el = [int(np.prod(sp[i + 1 :])) for i in range(n_sp)]
    base = (np.arange(n * c, dtype=np.int64) * plane).reshape([n, c] + [1] * (n_sp + 1))
    for i in range(n_sp):
        term = (np.arange(o[i], dtype=np.int64) * k[i] * strides_el[i]).reshape(
            [1, 1] + [o[i] if j == i else 1 for j in range(n_sp)] + [1]
        )
        base = base + term
    grid = np.meshgrid(*[np.arange(kk, dtype=np.int64) for kk in k], indexing="ij")
    offset = sum(g * st for g, st in zip(grid, strides_el)).reshape([1] * (n_sp + 2) + [big])
    pos = em.op("Add", [em.const(base, "corner"), em.const(offset.astype(np.int64), "offset")], "position")
    picked = em.op("Mul", [first, pos], "picked")
    if opset >= 13:
        em.op("ReduceSum", [picked, em.ints([last], "axes")], out=node.output[1], keepdims=0)
    else:
        em.op("ReduceSum", [picked], out=node.output[1], axes=[last], keepdims=0)


def rewrite(model) -> RewriteResult:
    """Every MaxPool whose Indices are read: one output, the indices computed beside it (or declined)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    shapes = _shapes(m)
    used = {i for n in m.graph.node for i in n.input} | {o.name for o in m.graph.output}
    taken = {x for node in m.graph.node for x in [*node.input, *node.output, node.name]}
    taken |= {t.name for t in m.graph.initializer} | {vi.name for vi in m.graph.input}
    nodes, inits, done, declined = [], [], [], []
    for node in m.graph.node:
        if not (node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1] in used):
            nodes.append(node)
            continue
        label = node.name or node.output[0]
        try:
            if node.input[0] not in shapes:
                raise Decline("the input's shape is unknown")
            em = Emitter(f"{label}/indices", taken)
            _indices(em, node, shapes[node.input[0]][1], opset_of(m))
        except Decline as e:
            declined.append((label, str(e)))
            nodes.append(node)
            continue
        values = onnx.NodeProto()
        values.CopyFrom(node)
        del values.output[1:]
        nodes.append(values)
        nodes.extend(em.nodes)
        inits.extend(em.inits)
        done.append(label)
    set_nodes(m, nodes, inits)
    return RewriteResult(m, tuple(done), tuple(declined))
