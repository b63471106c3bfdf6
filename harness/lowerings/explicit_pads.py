"""`explicit_pads`: only the shared first step. auto_pad / output_shape / output_padding become explicit,
non-negative `pads` on a plain ConvTranspose; where the spec's window reaches beyond the full result
(negative total padding, output_padding past the last product) the missing positions are added as zeros
by an explicit Pad, and the bias after it. Every engine then computes the spec-exact answer with nothing
left to interpret."""
from __future__ import annotations

from harness.lowerings.common import ConvTransposeNode, Emitter, finish, window_fill_needed


def lower(em: Emitter, ct: ConvTransposeNode) -> None:
    p = ct.p
    pe_full = [f - b - o for f, b, o in zip(ct.full, p.pads_begin, p.output_spatial)]  # end crop of F
    cb = [max(v, 0) for v in p.pads_begin]
    ce = [max(v, 0) for v in pe_full]
    for ax, f in enumerate(ct.full):
        if f - cb[ax] - ce[ax] < 1:   # the window misses the result on this axis: compute it whole
            cb[ax] = ce[ax] = 0
    have_len = [f - b - e for f, b, e in zip(ct.full, cb, ce)]
    fold = ct.b is not None and not window_fill_needed(ct, cb, have_len)
    inputs = [ct.x, em.const(ct.w, "W")] + ([em.const(ct.b, "B")] if fold else [])
    t = em.op("ConvTranspose", inputs, "convt", kernel_shape=list(p.kernel_shape), strides=list(p.strides),
              dilations=list(p.dilations), group=p.group, pads=cb + ce)
    finish(em, ct, t, cb, have_len, bias_folded=fold or ct.b is None)
