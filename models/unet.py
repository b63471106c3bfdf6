"""A U-Net decoder: the half of a U-Net that turns encoder features into a segmentation map.

Inputs are the encoder's feature maps (as a backbone would hand them over): a bottleneck at S/16 and
skips at S/8, S/4, S/2 and S. Each of the four stages upsamples by ConvTranspose(k2, s2), concatenates
the skip of the same resolution, and applies two Conv3x3 + BatchNorm + ReLU. A 1x1 Conv gives per-pixel
class logits at S x S.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common import seed_norm_stats

BASE = 16  # channels at full resolution; doubled per level down
LEVELS = 4
CLASSES = 5


def unet_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    """bottleneck: N x 16B x S/16 x S/16; skip_k: N x B*2^k x S/2^k x S/2^k, k = 3..0."""
    shapes = {"bottleneck": (batch, BASE * 2**LEVELS, size // 2**LEVELS, size // 2**LEVELS)}
    for k in reversed(range(LEVELS)):
        shapes[f"skip{k}"] = (batch, BASE * 2**k, size // 2**k, size // 2**k)
    return shapes


class UpStage(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
        self.conv = nn.Sequential(
            nn.Conv2d(2 * cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # N x Cin x H x W -> N x Cout x 2H x 2W, concat skip -> N x 2Cout x 2H x 2W -> N x Cout x 2H x 2W
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNetDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList(UpStage(BASE * 2 ** (k + 1), BASE * 2**k) for k in reversed(range(LEVELS)))
        self.head = nn.Conv2d(BASE, CLASSES, kernel_size=1)

    def forward(self, bottleneck, skip3, skip2, skip1, skip0):
        x = bottleneck
        for stage, skip in zip(self.stages, (skip3, skip2, skip1, skip0)):
            x = stage(x, skip)
        return self.head(x)  # N x CLASSES x S x S


def build(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return seed_norm_stats(UNetDecoder(), seed).eval()
