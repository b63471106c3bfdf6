"""`zero_insert`: insert (stride-1) zeros between input elements, pad by dilation*(k-1) - pad (crop where
that is negative), and run an ordinary Conv with the spatially flipped kernel, in/out channels swapped per
group. Wastes about 1 - 1/prod(stride) of its multiplies on the inserted zeros."""

from __future__ import annotations

import numpy as np

from harness.lowerings.common import ConvTransposeNode, Decline, Emitter, bias, group_swap


def conv_weight(w: np.ndarray, group: int) -> np.ndarray:
    """C x M/g x K...  ->  M x C/g x K... (per group: in/out swapped), spatially flipped."""
    c = w.shape[0]
    cg = c // group
    nd = w.ndim - 2
    parts = [np.swapaxes(w[gi * cg : (gi + 1) * cg], 0, 1) for gi in range(group)]
    return np.ascontiguousarray(np.flip(np.concatenate(parts, axis=0), axis=tuple(range(2, 2 + nd))))


def insert_zeros(em: Emitter, x: str, channels: int, in_sp, strides) -> str:
    """N x C x I... -> N x C x (I*s)...: each element followed by s-1 zeros (Reshape, Pad, Reshape)."""
    if all(s == 1 for s in strides):
        return x
    dims, ends = [channels], [0, 0]
    for i, s in zip(in_sp, strides):
        dims.append(i)
        ends.append(0)
        if s > 1:
            dims.append(1)
            ends.append(s - 1)
    t = em.reshape(x, dims, "split_axes")
    t = em.pad(t, [0] * len(ends), ends, "zeros")
    return em.reshape(t, [channels] + [i * s for i, s in zip(in_sp, strides)], "zero_inserted")


def lower(em: Emitter, ct: ConvTransposeNode) -> None:
    p = ct.p
    z = insert_zeros(em, ct.x, ct.channels_in, ct.in_spatial, p.strides)
    lz = [i * s for i, s in zip(ct.in_spatial, p.strides)]
    # conv output index j == o - pad_begin when z is padded by d*(k-1) - pad_begin at the start
    begin = [d * (k - 1) - pb for d, k, pb in zip(p.dilations, p.kernel_shape, p.pads_begin)]
    end = [o + pb - n for o, pb, n in zip(p.output_spatial, p.pads_begin, lz)]
    axes, starts, stops = [], [], []
    for ax, (b, e, n) in enumerate(zip(begin, end, lz)):
        if b < 0 or e < 0:
            lo, hi = max(-b, 0), n + min(e, 0)
            if hi <= lo:
                raise Decline("the output window holds no product of input and kernel (pads beyond the result)")
            axes.append(2 + ax)
            starts.append(lo)
            stops.append(hi)
    if axes:
        z = em.slice(z, axes, starts, stops, "crop_input")
    if ct.w is not None:
        w = em.const(conv_weight(ct.w, p.group), "W_flipped")
    else:  # computed at run time: the same transform in the graph (per-group swap, then a reversing Slice)
        w = group_swap(em, ct.w_name, ct.w_shape, p.group, "W_swapped")
        axes = list(range(2, 2 + ct.nd))
        big = np.iinfo(np.int64).max
        w = em.op(
            "Slice",
            [w, em.ints([-1] * ct.nd, "starts"), em.ints([-big] * ct.nd, "ends"), em.ints(axes, "axes"),
             em.ints([-1] * ct.nd, "steps")],
            "W_flipped",
        )  # fmt: skip
    inputs = [z, w]
    if ct.has_bias:
        inputs.append(bias(em, ct, base="B"))
    em.op(
        "Conv",
        inputs,
        out=ct.out,
        kernel_shape=list(p.kernel_shape),
        dilations=list(p.dilations),
        group=p.group,
        pads=[max(b, 0) for b in begin] + [max(e, 0) for e in end],
        strides=[1] * ct.nd,
    )
