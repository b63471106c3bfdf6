"""ConvTranspose lowerings: ONNX -> ONNX rewrites. One file per lowering, one registry line each.

A lowering takes a ModelProto and returns an equivalent ModelProto in which every ConvTranspose is
computed its way. `native` leaves the model untouched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from harness.errors import UnknownNameError
from harness.lowerings import native


@dataclass(frozen=True)
class Lowering:
    name: str
    description: str
    apply: Callable  # (onnx.ModelProto) -> onnx.ModelProto


LOWERINGS: dict[str, Lowering] = {
    "native": Lowering("native", "the model untouched: the engine's own ConvTranspose", native.apply),
}


def get_lowering(name: str) -> Lowering:
    try:
        return LOWERINGS[name]
    except KeyError:
        raise UnknownNameError("lowering", name, list(LOWERINGS)) from None
