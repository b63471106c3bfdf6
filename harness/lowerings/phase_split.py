"""`phase_split`: sub-pixel (polyphase) decomposition with one Conv per phase, each with only its own taps and
only the output rows it owns. Output position o of the spec's window is full position f = pad_begin + o; its
phase is f mod s and it reads x[f // s - t] * w[k] for the phase's taps k*d = t*s + r (`phase_taps`). Sorted
by o mod s, every phase is a stride-1 Conv of the original input over Q = ceil(out / s) rows, with its own
(possibly asymmetric) pads; the phases are concatenated as channels in (r1, .., rD, m) order and interleaved
by DepthToSpace in DCR mode (2-D, equal strides) or Reshape/Transpose, then cut to the window.

Against `phase` (one fused Conv of the phases stacked as output channels), this multiplies only useful
products: no zero taps where phases have fewer taps than the longest (k3 s2: 9 of `phase`'s 16), and no grid
rows outside the window (`phase` computes in + T - 1 rows per phase for in useful, (5/4)^2 = 1.56x at in 4).
The price is prod(stride) smaller Convs and a Concat instead of one Conv."""

from __future__ import annotations

import itertools

import numpy as np

from harness.lowerings.common import ConvTransposeNode, Emitter, bias, finish, phase_taps, window_fill_needed


def _axis_phases(ct: ConvTransposeNode, ax: int, lo: int, q: int) -> list[tuple[list[int], int, int] | None]:
    """Per output residue r' (o = j*s + r', j < q) on one axis: the flipped table of kernel indices of its
    Conv (index k: the zero appended to the kernel), and the Conv's begin/end pads (negative: crop x);
    None for a residue no tap reaches."""
    p = ct.p
    k, s, d, n = p.kernel_shape[ax], p.strides[ax], p.dilations[ax], ct.in_spatial[ax]
    _, phases = phase_taps(k, s, d)
    plans: list[tuple[list[int], int, int] | None] = []
    for rp in range(s):
        r, c = (lo + rp) % s, (lo + rp) // s  # full position lo + j*s + rp = (j + c)*s + r
        taps = phases[r]
        if not taps:
            plans.append(None)
            continue
        tmin, tmax = min(t for t, _ in taps), max(t for t, _ in taps)
        table = [k] * (tmax - tmin + 1)
        for t, kk in taps:
            table[tmax - t] = kk  # flipped: correlation form
        # y[j] = sum_t x[j + c - t] w[k_t]: the Conv reads x from j + c - tmax to j + c - tmin
        plans.append((table, tmax - c, q + c - tmin - n))
    return plans


def _zero_plan(ct: ConvTransposeNode, ax: int, q: int) -> tuple[list[int], int, int]:
    """A residue no tap reaches: a one-tap Conv of the appended zero (bias only), q rows long."""
    return [ct.p.kernel_shape[ax]], 0, q - ct.in_spatial[ax]


def _phase_weight_const(ct: ConvTransposeNode, tables: list[list[int]]) -> np.ndarray:
    """M x C/g x T... for one phase from the constant C x M/g x K... weight."""
    g, nd = ct.p.group, ct.nd
    w = np.pad(ct.w, [(0, 0), (0, 0)] + [(0, 1)] * nd)  # index k on each spatial axis: zero
    for ax, table in enumerate(tables):
        w = np.take(w, table, axis=2 + ax)
    c, mg = w.shape[0], w.shape[1]
    w = w.reshape((g, c // g, mg) + w.shape[2:]).transpose((0, 2, 1) + tuple(range(3, 3 + nd)))
    return np.ascontiguousarray(w.reshape((g * mg, c // g) + w.shape[3:]), dtype=np.float32)


def _phase_weight_graph(em: Emitter, ct: ConvTransposeNode, padded: str, tables: list[list[int]]) -> str:
    """The same for a weight computed at run time: Gather per axis from the zero-padded weight, then the groups'
    in and out channels swapped (Reshape, Transpose, Reshape)."""
    g, nd = ct.p.group, ct.nd
    c, mg = ct.channels_in, ct.w_shape[1]
    w = padded
    for ax, table in enumerate(tables):
        w = em.op("Gather", [w, em.ints(table, "phase_taps")], "W_phase_axis", axis=2 + ax)
    T = [len(t) for t in tables]
    w = em.reshape_all(w, [g, c // g, mg] + T, "W_phase_groups")
    w = em.op("Transpose", [w], "W_phase_swapped", perm=[0, 2, 1] + list(range(3, 3 + nd)))
    return em.reshape_all(w, [g * mg, c // g] + T, "W_phase")


def lower(em: Emitter, ct: ConvTransposeNode) -> None:
    p = ct.p
    nd, m = ct.nd, ct.channels_out
    # the computed range per axis: the window, clamped to the full result [0, F) (outside it: zeros, by finish)
    lo, q = [], []
    for b, out, f, s in zip(p.pads_begin, p.output_spatial, ct.full, p.strides):
        start, stop = max(b, 0), min(b + out, f)
        stop = max(stop, start + 1)  # a window holding no product: one row, which finish zeroes or fills
        lo.append(start)
        q.append(-(-(stop - start) // s))
    have_len = [qq * s for qq, s in zip(q, p.strides)]
    fold = ct.has_bias and not window_fill_needed(ct, lo, have_len)
    b = bias(em, ct, base="B") if fold else None
    plans = [_axis_phases(ct, ax, lo[ax], q[ax]) for ax in range(nd)]
    padded = None
    if ct.w is None:
        padded = em.pad(ct.w_name, [0] * (2 + nd), [0, 0] + [1] * nd, "W_zero_tap")
    outs = []
    for rp in itertools.product(*(range(s) for s in p.strides)):
        axes = [plans[ax][rp[ax]] for ax in range(nd)]
        if any(a is None for a in axes):
            axes = [_zero_plan(ct, ax, q[ax]) for ax in range(nd)]
        tables = [a[0] for a in axes]
        if ct.w is not None:
            w = em.const(_phase_weight_const(ct, tables), "W_phase")
        else:
            w = _phase_weight_graph(em, ct, padded, tables)
        x = ct.x
        crop = [(ax, max(-a[1], 0), ct.in_spatial[ax] - max(-a[2], 0)) for ax, a in enumerate(axes)]
        crop = [c for c in crop if c[1] > 0 or c[2] < ct.in_spatial[c[0]]]
        if crop:
            x = em.slice(x, [2 + ax for ax, _, _ in crop], [s0 for _, s0, _ in crop], [e for _, _, e in crop], "x_crop")
        pads = [max(a[1], 0) for a in axes] + [max(a[2], 0) for a in axes]
        outs.append(
            em.op(
                "Conv",
                [x, w] + ([b] if b else []),
                "phase",
                kernel_shape=[len(t) for t in tables],
                group=p.group,
                pads=pads,
                strides=[1] * nd,
                dilations=[1] * nd,
            )
        )
    t = outs[0]
    if len(outs) > 1:
        t = em.op("Concat", outs, "phases", axis=1)  # channels (r1, .., rD, m)
        if nd == 2 and p.strides[0] == p.strides[1]:
            t = em.op("DepthToSpace", [t], "interleaved", blocksize=p.strides[0], mode="DCR")
        else:
            t = em.reshape(t, list(p.strides) + [m] + q, "phases_split")
            perm = [0, nd + 1] + [a for i in range(nd) for a in (nd + 2 + i, 1 + i)]
            t = em.op("Transpose", [t], "interleave", perm=perm)
            t = em.reshape(t, [m] + have_len, "interleaved")
    finish(em, ct, t, lo, have_len, bias_folded=fold or not ct.has_bias)
