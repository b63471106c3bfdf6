"""Unpooling: the three ways the tutorial texts undo a 2x2 max pooling in a decoder, each a model of its own,
and the two that are ConvTransposes also written as one.

One network, the same weights in every variant (the upsampling has none): image 3 x S x S ->
2 x [Conv3x3 + BN + ReLU, MaxPool 2] (16, 32 ch) -> 2 x [unpool 2, Conv3x3 + BN + ReLU] (16, 16 ch) ->
Conv1x1 to CLASSES logits at S x S. The unpooling is, per variant:

- `nearest`: every value copied into its 2x2 block — `F.interpolate(mode="nearest")`, ONNX Resize (nearest).
- `nearest_ct`: the same as a depthwise ConvTranspose (group = C), kernel = stride = 2, every weight 1.
- `nails` (bed of nails): the value in the block's top-left position, zeros in the other three — written as
  ONNX writes zero insertion without a convolution: Unsqueeze, Pad, Reshape.
- `nails_ct`: the same as a depthwise ConvTranspose, kernel = stride = 2, weight 1 at (0, 0) and 0 elsewhere —
  exactly the zero-insertion step of the `zero_insert` lowering.
- `max`: the value back where the encoder's max pooling found it (MaxUnpool by the pooling's indices);
  engines without MaxPool's Indices output run it through the `maxpool_indices` rewrite.

Each ConvTranspose form computes every output element as one product with 1 (and, in `nails_ct`, sums of
products with 0): in any arithmetic that rounds x * 1 to x and adds exact zeros, it equals its base form
bit for bit. docs/lowerings.md ("Unpooling") gives the spec's terms and the 2x2 -> 4x4 examples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common import seed_norm_stats

CLASSES = 5
CH = (16, 32)
MODES = ("nearest", "nearest_ct", "nails", "nails_ct", "max")
SCALE = 2


def unpool_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    return {"image": (batch, 3, size, size)}


def unpool_kernel(mode: str, channels: int, scale: int = SCALE) -> torch.Tensor:
    """The depthwise ConvTranspose weight (C x 1 x s x s) of a ConvTranspose form: all ones (`nearest_ct`)
    or one at the block's top-left (`nails_ct`)."""
    w = torch.zeros(channels, 1, scale, scale)
    if mode == "nearest_ct":
        w.fill_(1.0)
    elif mode == "nails_ct":
        w[:, :, 0, 0] = 1.0
    else:
        raise ValueError(f"unpool mode {mode!r} has no ConvTranspose form")
    return w


def bed_of_nails(x: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """Each value at the top-left of its s x s block, zeros elsewhere: N,C,H,W -> N,C,H*s,W*s."""
    n, c, h, w = x.shape
    spread = F.pad(x.reshape(n, c, h, 1, w, 1), (0, scale - 1, 0, 0, 0, scale - 1))
    return spread.reshape(n, c, h * scale, w * scale)


class Unpool(nn.Module):
    """One unpooling layer of `mode` for `channels` channels (the indices are used by `max` only)."""

    def __init__(self, mode: str, channels: int) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unpool mode {mode!r}: one of {MODES}")
        self.mode = mode
        self.channels = channels
        if mode.endswith("_ct"):
            self.register_buffer("kernel", unpool_kernel(mode, channels))

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=SCALE, mode="nearest")
        if self.mode == "nails":
            return bed_of_nails(x)
        if self.mode == "max":
            return F.max_unpool2d(x, indices, SCALE, SCALE)
        return F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=SCALE, groups=self.channels)


def _cbr(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UnpoolNet(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.enc = nn.ModuleList(_cbr(cin, cout) for cin, cout in zip((3,) + CH, CH))
        self.dec = nn.ModuleList([_cbr(CH[1], CH[0]), _cbr(CH[0], CH[0])])
        self.up = nn.ModuleList([Unpool(mode, CH[1]), Unpool(mode, CH[0])])
        self.head = nn.Conv2d(CH[0], CLASSES, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x, saved = image, []
        for enc in self.enc:
            if self.mode == "max":
                x, idx = F.max_pool2d(enc(x), SCALE, SCALE, return_indices=True)
            else:
                x, idx = F.max_pool2d(enc(x), SCALE, SCALE), None
            saved.append(idx)
        for up, dec, idx in zip(self.up, self.dec, reversed(saved)):
            x = dec(up(x, idx))
        return self.head(x)  # N x CLASSES x S x S


def build(size: int, seed: int = 0, mode: str = "nearest") -> nn.Module:
    torch.manual_seed(seed)
    return seed_norm_stats(UnpoolNet(mode), seed).eval()


def build_nearest(size: int, seed: int = 0) -> nn.Module:
    return build(size, seed, "nearest")


def build_nearest_ct(size: int, seed: int = 0) -> nn.Module:
    return build(size, seed, "nearest_ct")


def build_nails(size: int, seed: int = 0) -> nn.Module:
    return build(size, seed, "nails")


def build_nails_ct(size: int, seed: int = 0) -> nn.Module:
    return build(size, seed, "nails_ct")


def build_max(size: int, seed: int = 0) -> nn.Module:
    return build(size, seed, "max")
