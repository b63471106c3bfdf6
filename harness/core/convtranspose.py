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


def resolve(attrs: dict, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> ConvTransposeParams:
    """Explicit parameters from ONNX attributes (names as in the spec) and static shapes.

    x: N x C x D1 x ... ; w: C x M/group x k1 x ...
    """
    nd = len(x_shape) - 2
    if nd < 1 or len(w_shape) != nd + 2:
        raise ValueError(f"ConvTranspose: input rank {len(x_shape)} and weight rank {len(w_shape)} do not fit")
    group = int(attrs.get("group", 1))
    if x_shape[1] != w_shape[0] or x_shape[1] % group:
        raise ValueError(f"ConvTranspose: {x_shape[1]} input channels vs weight {w_shape} with group {group}")
    kernel = tuple(int(k) for k in attrs.get("kernel_shape") or w_shape[2:])
    if kernel != tuple(w_shape[2:]):
        raise ValueError(f"ConvTranspose: kernel_shape {kernel} does not match weight shape {w_shape}")
    strides = tuple(int(s) for s in attrs.get("strides") or (1,) * nd)
    dilations = tuple(int(d) for d in attrs.get("dilations") or (1,) * nd)
    out_pad = tuple(int(p) for p in attrs.get("output_padding") or (0,) * nd)
    pads = tuple(int(p) for p in attrs.get("pads") or (0,) * (2 * nd))
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    out_shape_attr = tuple(int(v) for v in attrs.get("output_shape") or ())
    if len(out_shape_attr) == nd + 2:  # tolerated: N, C given too (ORT accepts this form)
        out_shape_attr = out_shape_attr[2:]
    for name, v, n in (
        ("strides", strides, nd),
        ("dilations", dilations, nd),
        ("output_padding", out_pad, nd),
        ("pads", pads, 2 * nd),
    ):
        if len(v) != n:
            raise ValueError(f"ConvTranspose: {name} has {len(v)} values, expected {n}")
    if out_shape_attr and len(out_shape_attr) != nd:
        raise ValueError(f"ConvTranspose: output_shape {out_shape_attr} does not have {nd} spatial dims")
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise ValueError(f"ConvTranspose: unknown auto_pad {auto_pad!r}")

    for op, st, dl in zip(out_pad, strides, dilations):
        # the spec: "less than the corresponding stride/dilation"; read as the larger of the two
        # (every engine here demands less than the stride: harness/checking/known.py records that)
        if op < 0 or op >= max(st, dl):
            raise ValueError(
                f"ConvTranspose: output_padding {list(out_pad)} must be less than "
                f"max(stride, dilation) = {[max(a, b) for a, b in zip(strides, dilations)]}"
            )
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
        raise ValueError(f"ConvTranspose: output spatial shape {out_sp} is empty")
    return ConvTransposeParams(kernel, strides, dilations, tuple(begin), tuple(end), out_pad, group, out_sp)


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
