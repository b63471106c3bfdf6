"""A sub-pixel decoder (ESPCN, Shi et al. 2016, used as a segmentation decoder): features at S/4 in,
upsampled twice by Conv3x3 + PixelShuffle(2) (ONNX DepthToSpace), class logits at S x S out.

The learned counterpart of convtx's `phase` lowering: the network computes the stride^2 phases itself.
features N x 64 x S/4 -> Conv(64 -> 4*64) + PixelShuffle + ReLU -> Conv(64 -> 4*32) + PixelShuffle + ReLU
-> Conv3x3(32 -> CLASSES).
"""

from __future__ import annotations

import torch
from torch import nn

CLASSES = 5


def subpixel_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    return {"features": (batch, 64, size // 4, size // 4)}


class SubPixelDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(64, 4 * 64, 3, padding=1),
            nn.PixelShuffle(2),
            nn.ReLU(),
            nn.Conv2d(64, 4 * 32, 3, padding=1),
            nn.PixelShuffle(2),
            nn.ReLU(),
            nn.Conv2d(32, CLASSES, 3, padding=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def build(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return SubPixelDecoder().eval()
