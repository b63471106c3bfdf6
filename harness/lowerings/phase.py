"""`phase`: sub-pixel (polyphase) decomposition. Output position q*s + r only receives kernel taps k with
k*d = t*s + r, so each of the prod(stride) phases is a small stride-1 convolution of the *original* input.
All phases run as one Conv with the phases stacked as output channels (order m, r1, .., rD), interleaved
by DepthToSpace (2-D, equal strides) or Reshape/Transpose, then cropped to the spec's window. No multiply
touches an inserted zero; phases with fewer taps than the longest are padded with zero taps (the ragged
part, e.g. k3 s2), and dilation > 1 spreads taps over a denser grid — both counted in performed FLOPs."""

from __future__ import annotations

import itertools

import numpy as np

from harness.lowerings.common import ConvTransposeNode, Emitter, finish, interleave, phase_taps, window_fill_needed


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


def lower(em: Emitter, ct: ConvTransposeNode) -> None:
    p = ct.p
    wf, T = phase_weight(ct)
    S = int(np.prod(p.strides))
    q = [i + t - 1 for i, t in zip(ct.in_spatial, T)]
    have_start, have_len = [0] * ct.nd, [qq * s for qq, s in zip(q, p.strides)]
    fold = ct.b is not None and not window_fill_needed(ct, have_start, have_len)
    inputs = [ct.x, em.const(wf, "W_phases")] + ([em.const(np.repeat(ct.b, S), "B_phases")] if fold else [])
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
        if ct.nd == 2 and p.strides[0] == p.strides[1]:
            t = em.op("DepthToSpace", [t], "interleaved", blocksize=p.strides[0], mode="CRD")
        else:
            t = em.reshape(t, [ct.channels_out] + list(p.strides) + q, "phases_split")
            t, _ = interleave(em, t, ct.channels_out, p.strides, q)
    finish(em, ct, t, have_start, have_len, bias_folded=fold or ct.b is None)
