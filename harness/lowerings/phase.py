"""`phase`: sub-pixel (polyphase) decomposition. Output position q*s + r only receives kernel taps k with
k*d = t*s + r, so each of the prod(stride) phases is a small stride-1 convolution of the *original* input.
All phases run as one Conv with the phases stacked as output channels (order m, r1, .., rD), interleaved
by DepthToSpace (2-D, equal strides) or Reshape/Transpose, then cropped to the spec's window. No multiply
touches an inserted zero; phases with fewer taps than the longest are padded with zero taps (the ragged
part, e.g. k3 s2), and dilation > 1 spreads taps over a denser grid — both counted in performed FLOPs."""

from __future__ import annotations

import itertools

import numpy as np

from harness.lowerings.common import (
    ConvTransposeNode,
    Emitter,
    bias,
    finish,
    interleave,
    phase_taps,
    window_fill_needed,
)


def phase_weight(ct: ConvTransposeNode) -> tuple[np.ndarray, tuple[int, ...]]:
    """(M*S) x C/g x T... weights of the fused phase convolution, and T per axis."""
    p = ct.p
    g, m = p.group, ct.channels_out
    cg, mg = ct.channels_in // g, m // g
    taps = [phase_taps(k, s, d) for k, s, d in zip(p.kernel_shape, p.strides, p.dilations)]
    T = tuple(t for t, _ in taps)
    S = int(np.prod(p.strides))
    wf = np.zeros((m * S, cg) + T, dtype=np.float32)
    rows = np.arange(m) * S
    for r_flat, r in enumerate(itertools.product(*(range(s) for s in p.strides))):
        for combo in itertools.product(*(taps[ax][1][r[ax]] for ax in range(ct.nd))):
            ks = tuple(k for _, k in combo)
            ts = tuple(Tax - 1 - t for Tax, (t, _) in zip(T, combo))  # flipped: correlation form
            block = ct.w[(slice(None), slice(None)) + ks]  # C x M/g
            block = block.reshape(g, cg, mg).transpose(0, 2, 1).reshape(m, cg)  # M x C/g
            wf[(rows + r_flat, slice(None)) + ts] = block
    return wf, T


def phase_weight_in_graph(em: Emitter, ct: ConvTransposeNode) -> tuple[str, tuple[int, ...]]:
    """`phase_weight` for a weight computed at run time, in ONNX ops: one zero appended to each spatial axis
    (Pad), per axis a Gather of the taps of every phase — an s x T table of kernel indices, flipped, the zero's
    index where a phase has no tap — then the groups' in and out channels swapped and the phases stacked as
    output channels (Reshape, Transpose, Reshape)."""
    p = ct.p
    g, nd = p.group, ct.nd
    c, mg = ct.channels_in, ct.w_shape[1]
    taps = [phase_taps(k, s, d) for k, s, d in zip(p.kernel_shape, p.strides, p.dilations)]
    T = tuple(t for t, _ in taps)
    w = em.pad(ct.w_name, [0] * (2 + nd), [0, 0] + [1] * nd, "W_zero_tap")
    for ax, ((tax, phases), k) in enumerate(zip(taps, p.kernel_shape)):
        table = np.full((len(phases), tax), k, np.int64)  # index k: the appended zero
        for r, pairs in enumerate(phases):
            for t, kk in pairs:
                table[r, tax - 1 - t] = kk  # flipped: correlation form
        # the axes so far are C, M/g, (s, T) per axis done, then this axis at 2 + 2 * ax
        w = em.op("Gather", [w, em.const(table, "phase_taps")], "W_phase_axis", axis=2 + 2 * ax)
    # C x M/g x s1 x T1 x .. x sD x TD  ->  g x C/g x M/g x (s, T)...  ->  g x M/g x s... x C/g x T...
    w = em.reshape_all(w, [g, c // g, mg] + [v for s, t in zip(p.strides, T) for v in (s, t)], "W_phase_groups")
    perm = [0, 2] + [3 + 2 * ax for ax in range(nd)] + [1] + [4 + 2 * ax for ax in range(nd)]
    w = em.op("Transpose", [w], "W_phase_order", perm=perm)
    return em.reshape_all(w, [ct.channels_out * int(np.prod(p.strides)), c // g] + list(T), "W_phases"), T


def lower(em: Emitter, ct: ConvTransposeNode) -> None:
    p = ct.p
    if ct.w is not None:
        wf, T = phase_weight(ct)
        w = em.const(wf, "W_phases")
    else:
        w, T = phase_weight_in_graph(em, ct)
    S = int(np.prod(p.strides))
    q = [i + t - 1 for i, t in zip(ct.in_spatial, T)]
    have_start, have_len = [0] * ct.nd, [qq * s for qq, s in zip(q, p.strides)]
    fold = ct.has_bias and not window_fill_needed(ct, have_start, have_len)
    inputs = [ct.x, w] + ([bias(em, ct, repeat=S, base="B_phases")] if fold else [])
    t = em.op(
        "Conv",
        inputs,
        "phases",
        kernel_shape=list(T),
        group=p.group,
        pads=[tt - 1 for tt in T] * 2,
        strides=[1] * ct.nd,
        dilations=[1] * ct.nd,
    )
    if S > 1:
        if ct.nd == 2 and p.strides[0] == p.strides[1] and em.option("depth_to_space") == "crd":
            t = em.op("DepthToSpace", [t], "interleaved", blocksize=p.strides[0], mode="CRD")
        else:
            t = em.reshape(t, [ct.channels_out] + list(p.strides) + q, "phases_split")
            t, _ = interleave(em, t, ct.channels_out, p.strides, q)
    finish(em, ct, t, have_start, have_len, bias_folded=fold or not ct.has_bias)
