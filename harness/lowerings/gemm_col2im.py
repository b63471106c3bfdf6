"""`gemm_col2im`: MatMul of the reshaped kernel with the input, then Col2Im (opset 18) scatters the columns
into the image — exactly the spec's scatter. 1-D runs as 2-D with a unit axis. Needs opset >= 18."""

from __future__ import annotations

from harness.lowerings.common import ConvTransposeNode, Decline, Emitter, clamped_crop, finish
from harness.lowerings.gemm import columns


def lower(em: Emitter, ct: ConvTransposeNode) -> None:
    if ct.opset < 18:
        raise Decline(f"Col2Im needs opset 18; the model is opset {ct.opset}")
    p = ct.p
    cb, ce, img = clamped_crop(ct)
    cols = columns(em, ct)
    one = ct.nd == 1  # Col2Im wants >= 2 spatial axes: add a unit one
    t = em.op(
        "Col2Im",
        [cols, em.ints(img + [1] * one, "image_shape"), em.ints(list(p.kernel_shape) + [1] * one, "block_shape")],
        "image",
        strides=list(p.strides) + [1] * one,
        dilations=list(p.dilations) + [1] * one,
        pads=cb + [0] * one + ce + [0] * one,
    )
    if one:
        t = em.reshape(t, [ct.channels_out, img[0]], "image_1d")
    finish(em, ct, t, cb, img, bias_folded=not ct.has_bias)
