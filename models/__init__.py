"""The model zoo: a registry mapping a name to a spec (builder, input shapes, family, sizes).

The registry itself imports no torch: builders are named by import path and loaded on demand, so that
`convtx list` stays fast. Weights come from a seeded initialisation, never from a hub.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from harness.errors import UnknownNameError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """One zoo model. `size` is the spatial edge of the image the model produces (and, for
    autoencoders, consumes); `inputs(size, batch)` gives every input's shape in ONNX input order."""

    name: str
    family: str            # "autoencoder" | "segmentation"
    description: str
    dims: int              # spatial dimensions of its ConvTransposes
    builder: str           # "package.module:function", function(size) -> torch.nn.Module
    inputs: Callable[[int, int], dict[str, Shape]]
    sizes: tuple[int, ...]  # sizes known to work; the first is the default
    min_size: int          # smallest legal size; sizes must be multiples of it

    def build(self, size: int, seed: int = 0):
        """The torch module (float32, eval mode) with seeded weights."""
        self.check_size(size)
        module_name, func = self.builder.split(":")
        factory = getattr(importlib.import_module(module_name), func)
        return factory(size=size, seed=seed)

    def check_size(self, size: int) -> None:
        from harness.errors import ConvtxError
        if size < self.min_size or size % self.min_size:
            raise ConvtxError(
                f"model {self.name!r}: size {size} is not a positive multiple of {self.min_size}")

    @property
    def source_module(self) -> str:
        return self.builder.split(":")[0]


def _cae_inputs(size: int, batch: int) -> dict[str, Shape]:
    return {"x": (batch, 3, size, size)}


def _unet_inputs(size: int, batch: int) -> dict[str, Shape]:
    from models.unet import unet_input_shapes
    return unet_input_shapes(size, batch)


def _unet_up_inputs(size: int, batch: int) -> dict[str, Shape]:
    return {"x": (batch, 32, size // 2, size // 2)}


# One explicit line per model.
MODELS: dict[str, ModelSpec] = {
    "cae": ModelSpec(
        name="cae", family="autoencoder", dims=2,
        description="convolutional autoencoder: 2x(Conv k3+SELU+MaxPool) then 2x ConvTranspose k2 s2",
        builder="models.autoencoder:build", inputs=_cae_inputs, sizes=(32, 256), min_size=4),
    "unet": ModelSpec(
        name="unet", family="segmentation", dims=2,
        description="U-Net decoder: encoder features in, 4x (ConvTranspose k2 s2 + skip concat + 2 Conv), "
                    "per-pixel class logits out",
        builder="models.unet:build", inputs=_unet_inputs, sizes=(64, 256), min_size=16),
    "unet_up": ModelSpec(
        name="unet_up", family="layer", dims=2,
        description="the U-Net decoder's last upsampling layer alone: ConvTranspose 32->16 k2 s2 to S x S",
        builder="models.layers:build_unet_up", inputs=_unet_up_inputs, sizes=(64, 256), min_size=2),
}


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownNameError("model", name, sorted(MODELS)) from None


def parse_model_ref(ref: str) -> tuple[ModelSpec, int]:
    """`name` or `name@size` -> (spec, size); the size defaults to the spec's first size."""
    from harness.errors import ConvtxError
    name, _, size_s = ref.partition("@")
    spec = get_model(name)
    if not size_s:
        return spec, spec.sizes[0]
    try:
        size = int(size_s)
    except ValueError:
        raise ConvtxError(f"model reference {ref!r}: size {size_s!r} is not an integer "
                          f"(expected e.g. {name}@{spec.sizes[-1]})") from None
    spec.check_size(size)
    return spec, size
