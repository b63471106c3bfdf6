"""A 3-D U-Net decoder (as in volumetric segmentation, Çiçek et al. 2016), narrowed: encoder features of
a volume in, per-voxel class logits at S x S x S out.

Inputs: a bottleneck at S/8 (64 channels) and skips at S/4 (32), S/2 (16) and S (8). Three stages of
ConvTranspose3d(k2, s2) + skip concat + Conv3d(k3) + BatchNorm + ReLU, then a 1x1x1 Conv3d to 3 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common import seed_norm_stats

BASE = 8
LEVELS = 3
CLASSES = 3


def vol3d_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    s = size // 2**LEVELS
    shapes = {"bottleneck": (batch, BASE * 2**LEVELS, s, s, s)}
    for k in reversed(range(LEVELS)):
        e = size // 2**k
        shapes[f"skip{k}"] = (batch, BASE * 2**k, e, e, e)
    return shapes


class UpStage3d(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cout, kernel_size=2, stride=2)
        self.conv = nn.Sequential(nn.Conv3d(2 * cout, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU())

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class Vol3dDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList(UpStage3d(BASE * 2 ** (k + 1), BASE * 2**k) for k in reversed(range(LEVELS)))
        self.head = nn.Conv3d(BASE, CLASSES, kernel_size=1)

    def forward(self, bottleneck, skip2, skip1, skip0):
        x = bottleneck
        for stage, skip in zip(self.stages, (skip2, skip1, skip0)):
            x = stage(x, skip)
        return self.head(x)  # N x CLASSES x S x S x S


def build(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return seed_norm_stats(Vol3dDecoder(), seed).eval()
