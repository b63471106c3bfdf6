"""The model zoo: a registry mapping a name to a spec (builder, input shapes, family, sizes).

The registry itself imports no torch: builders are named by import path and loaded on demand, so that
`convtx list` stays fast. Weights come from a seeded initialisation, never from a hub.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from harness.core.errors import UnknownNameError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """One zoo model. `size` is the spatial edge of the image the model produces (and, for
    autoencoders, consumes); `inputs(size, batch)` gives every input's shape in ONNX input order."""

    name: str
    family: str  # "autoencoder" | "segmentation" | "unpool" | "layer"
    description: str
    dims: int  # spatial dimensions of its ConvTransposes
    builder: str  # "package.module:function", function(size) -> torch.nn.Module
    inputs: Callable[[int, int], dict[str, Shape]]
    sizes: tuple[int, ...]  # sizes known to work: the first is the test size, the last a realistic one
    min_size: int  # smallest legal size; sizes must be multiples of it
    pow2: bool = False  # sizes must also be powers of two (a fixed 4x4 start doubled per stage)
    # the zoo model this one computes the same function as, written another way (its layers as ConvTransposes):
    # a case of this model is checked against that model's native case on the same engine (harness/pipeline/forms.py)
    form_of: str | None = None

    def build(self, size: int, seed: int = 0):
        """The torch module (float32, eval mode) with seeded weights."""
        self.check_size(size)
        module_name, func = self.builder.split(":")
        factory = getattr(importlib.import_module(module_name), func)
        return factory(size=size, seed=seed)

    def check_size(self, size: int) -> None:
        from harness.core.errors import ConvtxError

        if size < self.min_size or size % self.min_size:
            raise ConvtxError(f"model {self.name!r}: size {size} is not a positive multiple of {self.min_size}")
        if self.pow2 and size & (size - 1):
            raise ConvtxError(f"model {self.name!r}: size {size} is not a power of two (>= {self.min_size})")

    @property
    def source_module(self) -> str:
        return self.builder.split(":")[0]


def _lazy(path: str) -> Callable[[int, int], dict[str, Shape]]:
    """An input-shape function named by import path, loaded on first call (the model files import torch)."""

    def shapes(size: int, batch: int) -> dict[str, Shape]:
        module_name, func = path.split(":")
        return getattr(importlib.import_module(module_name), func)(size, batch)

    return shapes


def _image(channels: int, div: int = 1) -> Callable[[int, int], dict[str, Shape]]:
    return lambda size, batch: {"x": (batch, channels, size // div, size // div)}


def _one(name: str, channels: int, div: int) -> Callable[[int, int], dict[str, Shape]]:
    return lambda size, batch: {name: (batch, channels, size // div, size // div)}


# One explicit line per model. `sizes`: the first is what tests use, the last a realistic deployment size.
MODELS: dict[str, ModelSpec] = {
    # --- autoencoders and generators -------------------------------------------------------------------
    "cae": ModelSpec(
        name="cae",
        family="autoencoder",
        dims=2,
        description="convolutional autoencoder: 2x(Conv k3+SELU+MaxPool) then 2x ConvTranspose k2 s2",
        builder="models.autoencoder:build",
        inputs=_image(3),
        sizes=(32, 256),
        min_size=4,
    ),
    "dcgan": ModelSpec(
        name="dcgan",
        family="autoencoder",
        dims=2,
        description="DCGAN generator: z(100) -> ConvT k4 s1 to 4x4 -> ConvT k4 s2 p1 + BN + ReLU ... -> Tanh",
        builder="models.dcgan:build",
        inputs=_lazy("models.dcgan:dcgan_input_shapes"),
        sizes=(32, 64, 128),
        min_size=8,
        pow2=True,
    ),
    "vae": ModelSpec(
        name="vae",
        family="autoencoder",
        dims=2,
        description="VAE decoder: z(128) -> Linear -> 4x ConvT k3 s2 p1 output_padding 1 + BN + LeakyReLU",
        builder="models.vae:build",
        inputs=_lazy("models.vae:vae_input_shapes"),
        sizes=(32, 128, 256),
        min_size=16,
    ),
    "wave1d": ModelSpec(
        name="wave1d",
        family="autoencoder",
        dims=1,
        description="1-D waveform decoder (MelGAN-style): mel(80) -> ConvT1d k16 s8 x2, k4 s2 x2 + dilated "
        "residual stacks -> S samples",
        builder="models.wave1d:build",
        inputs=_lazy("models.wave1d:wave1d_input_shapes"),
        sizes=(2048, 8192, 32768),
        min_size=256,
    ),
    # --- segmentation decoders ---------------------------------------------------------------------------
    "fcn8s": ModelSpec(
        name="fcn8s",
        family="segmentation",
        dims=2,
        description="FCN-8s head: VGG pool3/pool4/fc7 in, ConvT k4 s2 x2 + skip adds, ConvT k16 s8, 21 classes",
        builder="models.fcn:build",
        inputs=_lazy("models.fcn:fcn_input_shapes"),
        sizes=(64, 256, 512),
        min_size=32,
    ),
    "unet": ModelSpec(
        name="unet",
        family="segmentation",
        dims=2,
        description="U-Net decoder: encoder features in, 4x (ConvTranspose k2 s2 + skip concat + 2 Conv), "
        "per-pixel class logits out",
        builder="models.unet:build",
        inputs=_lazy("models.unet:unet_input_shapes"),
        sizes=(64, 256, 512),
        min_size=16,
    ),
    "segnet": ModelSpec(
        name="segnet",
        family="segmentation",
        dims=2,
        description="SegNet: image -> 3x (Conv+BN+ReLU, MaxPool with indices) -> 3x (MaxUnpool by those "
        "indices, Conv+BN+ReLU); no ConvTranspose",
        builder="models.segnet:build",
        inputs=_lazy("models.segnet:segnet_input_shapes"),
        sizes=(32, 256),
        min_size=8,
    ),
    "segnet_noidx": ModelSpec(
        name="segnet_noidx",
        family="segmentation",
        dims=2,
        description="SegNet with index-free unpooling (nearest upsample masked by equality), same weights; "
        "for engines without MaxPool indices",
        builder="models.segnet:build_noidx",
        inputs=_lazy("models.segnet:segnet_input_shapes"),
        sizes=(32, 256),
        min_size=8,
    ),
    "subpixel": ModelSpec(
        name="subpixel",
        family="segmentation",
        dims=2,
        description="sub-pixel decoder (ESPCN-style): 2x (Conv3x3 + PixelShuffle 2); no ConvTranspose",
        builder="models.subpixel:build",
        inputs=_one("features", 64, 4),
        sizes=(32, 256),
        min_size=4,
    ),
    "dwdecoder": ModelSpec(
        name="dwdecoder",
        family="segmentation",
        dims=2,
        description="light decoder: grouped ConvT (groups 4) then 2x depthwise ConvT k4 s2 p1 + pointwise Conv",
        builder="models.depthwise:build",
        inputs=_one("features", 96, 8),
        sizes=(32, 256),
        min_size=8,
    ),
    "vol3d": ModelSpec(
        name="vol3d",
        family="segmentation",
        dims=3,
        description="3-D U-Net decoder: 3x (ConvTranspose3d k2 s2 + skip concat + Conv3d + BN + ReLU) -> "
        "per-voxel logits",
        builder="models.vol3d:build",
        inputs=_lazy("models.vol3d:vol3d_input_shapes"),
        sizes=(16, 32, 64),
        min_size=8,
    ),
    # --- unpooling: three ways to undo a max pooling, two of them also as ConvTransposes (models/unpool.py) ----
    "unpool_nearest": ModelSpec(
        name="unpool_nearest",
        family="unpool",
        dims=2,
        description="2x (Conv+BN+ReLU, MaxPool 2) -> 2x (nearest unpooling: Resize, Conv+BN+ReLU) -> Conv1x1",
        builder="models.unpool:build_nearest",
        inputs=_lazy("models.unpool:unpool_input_shapes"),
        sizes=(32, 64, 256),
        min_size=4,
    ),
    "unpool_nearest_ct": ModelSpec(
        name="unpool_nearest_ct",
        family="unpool",
        dims=2,
        description="unpool_nearest with the unpooling as a depthwise ConvTranspose k2 s2, kernel of ones",
        builder="models.unpool:build_nearest_ct",
        inputs=_lazy("models.unpool:unpool_input_shapes"),
        sizes=(32, 64, 256),
        min_size=4,
        form_of="unpool_nearest",
    ),
    "unpool_nails": ModelSpec(
        name="unpool_nails",
        family="unpool",
        dims=2,
        description="unpool_nearest's network with bed-of-nails unpooling (top-left of each 2x2 block; "
        "Unsqueeze, Pad, Reshape)",
        builder="models.unpool:build_nails",
        inputs=_lazy("models.unpool:unpool_input_shapes"),
        sizes=(32, 64, 256),
        min_size=4,
    ),
    "unpool_nails_ct": ModelSpec(
        name="unpool_nails_ct",
        family="unpool",
        dims=2,
        description="unpool_nails with the unpooling as a depthwise ConvTranspose k2 s2, one-hot kernel",
        builder="models.unpool:build_nails_ct",
        inputs=_lazy("models.unpool:unpool_input_shapes"),
        sizes=(32, 64, 256),
        min_size=4,
        form_of="unpool_nails",
    ),
    "unpool_max": ModelSpec(
        name="unpool_max",
        family="unpool",
        dims=2,
        description="unpool_nearest's network with max unpooling by the encoder's MaxPool indices (exported as "
        "ScatterND)",
        builder="models.unpool:build_max",
        inputs=_lazy("models.unpool:unpool_input_shapes"),
        sizes=(32, 64, 256),
        min_size=4,
    ),
    # --- single layers ---------------------------------------------------------------------------------
    "unet_up": ModelSpec(
        name="unet_up",
        family="layer",
        dims=2,
        description="the U-Net decoder's last upsampling layer alone: ConvTranspose 32->16 k2 s2 to S x S",
        builder="models.layers:build_unet_up",
        inputs=_one("x", 32, 2),
        sizes=(64, 256),
        min_size=2,
    ),
}


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownNameError("model", name, sorted(MODELS)) from None


def parse_model_ref(ref: str) -> tuple[ModelSpec, int]:
    """`name` or `name@size` -> (spec, size); the size defaults to the spec's first size."""
    from harness.core.errors import ConvtxError

    name, _, size_s = ref.partition("@")
    spec = get_model(name)
    if not size_s:
        return spec, spec.sizes[0]
    try:
        size = int(size_s)
    except ValueError:
        raise ConvtxError(
            f"model reference {ref!r}: size {size_s!r} is not an integer (expected e.g. {name}@{spec.sizes[-1]})"
        ) from None
    spec.check_size(size)
    return spec, size
