"""ConvTranspose lowerings: ONNX -> ONNX rewrites. One file per lowering, one registry line each.

`get_lowering(name).apply(model) -> LoweringResult`: an equivalent model in which every ConvTranspose is
computed that lowering's way, plus which nodes were rewritten and which were declined (with the reason,
left native). All of them first resolve auto_pad / output_shape exactly as the ONNX spec defines them
(`harness.core.convtranspose.resolve`); convtx treats the spec text as correct (see docs/lowerings.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.core.errors import UnknownNameError
from harness.lowerings import (
    explicit_pads,
    gemm_col2im,
    gemm_overlap_add,
    maxpool_indices,
    native,
    phase,
    phase_split,
    zero_insert,
)
from harness.lowerings.common import LoweringResult, rewrite


@dataclass(frozen=True)
class Lowering:
    name: str
    description: str
    lower: Callable | None  # (Emitter, ConvTransposeNode) -> None; None for `native`

    def apply(self, model, only: frozenset[str] | None = None, options: dict | None = None) -> LoweringResult:
        """Lower every ConvTranspose, or only the nodes labelled in `only` (the others stay native); `options`:
        the engine's lowering options (common.LOWERING_OPTIONS, e.g. how `phase` interleaves)."""
        if self.lower is None:
            return native.apply(model)
        return rewrite(model, self.lower, only, options)


LOWERINGS: dict[str, Lowering] = {
    "native": Lowering("native", "the model untouched: the engine's own ConvTranspose", None),
    "explicit_pads": Lowering(
        "explicit_pads",
        "auto_pad/output_shape/output_padding resolved to explicit "
        "pads per the spec, zero-fill where the window passes the result",
        explicit_pads.lower,
    ),
    "zero_insert": Lowering(
        "zero_insert", "insert stride-1 zeros, pad, Conv with the flipped kernel", zero_insert.lower
    ),
    "phase": Lowering(
        "phase",
        "sub-pixel decomposition: one fused Conv over prod(stride) phases, DepthToSpace/Reshape interleave",
        phase.lower,
    ),
    "phase_split": Lowering(
        "phase_split",
        "sub-pixel decomposition: one Conv per phase with only its own taps and rows, Concat + DepthToSpace(DCR)",
        phase_split.lower,
    ),
    "gemm_col2im": Lowering("gemm_col2im", "MatMul with the kernel matrix, then Col2Im (opset 18)", gemm_col2im.lower),
    "gemm_overlap_add": Lowering(
        "gemm_overlap_add", "MatMul, then overlap-add by Pad + Sum + interleave (no Col2Im)", gemm_overlap_add.lower
    ),
}


def get_lowering(name: str) -> Lowering:
    try:
        return LOWERINGS[name]
    except KeyError:
        raise UnknownNameError("lowering", name, list(LOWERINGS)) from None


# Rewrites an engine needs before it can take a model (Backend.needs_rewrites), not ConvTranspose lowerings:
# name -> (applies(model) -> bool, rewrite(model) -> result with .model and .summary())
REWRITES = {maxpool_indices.NAME: (maxpool_indices.applies, maxpool_indices.rewrite)}


def get_rewrite(name: str):
    try:
        return REWRITES[name]
    except KeyError:
        raise UnknownNameError("rewrite", name, list(REWRITES)) from None
