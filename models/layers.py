"""Single decoder layers from the zoo, alone: micro-benchmarks where the ConvTranspose is all there is.

`unet_up`: the U-Net decoder's last upsampling layer, ConvTranspose(32 -> 16, k2, s2), producing S x S —
the largest ConvTranspose in the zoo by FLOPs at a given size.
"""

from __future__ import annotations

import torch
from torch import nn


def build_unet_up(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.ConvTranspose2d(32, 16, kernel_size=2, stride=2).eval()
