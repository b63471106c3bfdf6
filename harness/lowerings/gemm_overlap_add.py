"""`gemm_overlap_add`: the GEMM of `gemm_col2im`, then overlap-add from ordinary ops (for engines without
Col2Im, such as TVM 0.27): each kernel tap's columns are shifted (Pad) into its output phase, the taps of a
phase are summed (Sum), and the phases interleaved (Concat, Reshape, Transpose)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from harness.lowerings.common import ConvTransposeNode, Emitter, finish, interleave, phase_taps
from harness.lowerings.gemm import columns


def lower(em: Emitter, ct: ConvTransposeNode) -> None:
    p = ct.p
    m, nd = ct.channels_out, ct.nd
    pk = math.prod(p.kernel_shape)
    cols = columns(em, ct)
    cols = em.reshape(cols, [m, pk] + list(ct.in_spatial), "columns_taps")  # N x M x PK x I...
    if pk == 1:
        taps = [em.reshape(cols, [m] + list(ct.in_spatial), "tap")]
    else:
        parts = [em.name("tap_raw") for _ in range(pk)]
        from onnx import helper

        em.nodes.append(
            helper.make_node("Split", [cols, em.ints([1] * pk, "split")], parts, name=em.name("Split"), axis=2)
        )
        axes2 = em.ints([2], "axes")
        taps = [em.op("Squeeze", [t, axes2], "tap") for t in parts]
    T = [phase_taps(k, s, d)[0] for k, s, d in zip(p.kernel_shape, p.strides, p.dilations)]
    q = [i + t - 1 for i, t in zip(ct.in_spatial, T)]
    by_phase: dict[tuple, list[str]] = {}
    for tap, k in zip(taps, itertools.product(*(range(kk) for kk in p.kernel_shape))):
        tr = [divmod(kk * d, s) for kk, d, s in zip(k, p.dilations, p.strides)]  # (t, r) per axis
        shifted = em.pad(
            tap, [0, 0] + [t for t, _ in tr], [0, 0] + [Tax - 1 - t for Tax, (t, _) in zip(T, tr)], "shifted"
        )
        by_phase.setdefault(tuple(r for _, r in tr), []).append(shifted)
    sums = {r: (ts[0] if len(ts) == 1 else em.op("Sum", ts, "phase")) for r, ts in by_phase.items()}
    S = math.prod(p.strides)
    if S == 1:
        z = sums[(0,) * nd]
    else:
        any_phase = next(iter(sums.values()))
        zeros = None
        stacked = []
        axis2 = em.ints([2], "axes")
        for r in itertools.product(*(range(s) for s in p.strides)):
            if r not in sums:  # no tap lands on this phase (gcd(dilation, stride) > 1): zeros
                if zeros is None:
                    zeros = em.op(
                        "Expand",
                        [em.const(np.zeros((), np.float32), "zero"), em.op("Shape", [any_phase], "phase_shape")],
                        "zeros",
                    )
                sums[r] = zeros
            stacked.append(em.op("Unsqueeze", [sums[r], axis2], "phase_axis"))
        z = em.op("Concat", stacked, "phases", axis=2)  # N x M x S x Q...
        z = em.reshape(z, [m] + list(p.strides) + q, "phases_split")
        z, _ = interleave(em, z, m, p.strides, q)
    finish(em, ct, z, [0] * nd, [qq * s for qq, s in zip(q, p.strides)], bias_folded=not ct.has_bias)
