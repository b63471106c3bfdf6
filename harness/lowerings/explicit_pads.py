"""`explicit_pads`: only the shared first step. auto_pad / output_shape / output_padding become explicit,
non-negative `pads` on a plain ConvTranspose; where the spec's window reaches beyond the full result
(negative total padding, output_padding past the last product) the missing positions are added as zeros
by an explicit Pad, and the bias after it. Every engine then computes the spec-exact answer with nothing
left to interpret."""

from __future__ import annotations

from harness.lowerings.common import (
    ConvTransposeNode,
    Emitter,
    bias,
    clamped_crop,
    finish,
    weight,
    window_fill_needed,
)


def lower(em: Emitter, ct: ConvTransposeNode) -> None:
    p = ct.p
    cb, ce, have_len = clamped_crop(ct)
    fold = ct.has_bias and not window_fill_needed(ct, cb, have_len)
    inputs = [ct.x, weight(em, ct)] + ([bias(em, ct, base="B")] if fold else [])
    t = em.op(
        "ConvTranspose",
        inputs,
        "convt",
        kernel_shape=list(p.kernel_shape),
        strides=list(p.strides),
        dilations=list(p.dilations),
        group=p.group,
        pads=cb + ce,
    )
    finish(em, ct, t, cb, have_len, bias_folded=fold or not ct.has_bias)
