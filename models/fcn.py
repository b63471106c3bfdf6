"""The FCN-8s head (Long, Shelhamer & Darrell 2015): VGG features in, per-pixel scores for 21 classes out.

Inputs are the backbone's pool3 (256 ch, S/8), pool4 (512 ch, S/16) and fc7 (4096 ch, S/32). Scores from
fc7 are upsampled x2 by ConvTranspose(k4, s2, p1) and added to pool4's scores; that is upsampled x2 again
and added to pool3's; the sum is upsampled x8 by ConvTranspose(k16, s8, p4) to S x S. As in the paper the
upsampling filters start bilinear (here plus seeded noise, so every product counts) and have no bias.
Padding replaces the paper's crop offsets, so every stage is an exact x2 / x8.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common import bilinear_kernel

CLASSES = 21


def fcn_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    return {
        "pool3": (batch, 256, size // 8, size // 8),
        "pool4": (batch, 512, size // 16, size // 16),
        "fc7": (batch, 4096, size // 32, size // 32),
    }


class FCN8sHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.score_fr = nn.Conv2d(4096, CLASSES, 1)
        self.score_pool4 = nn.Conv2d(512, CLASSES, 1)
        self.score_pool3 = nn.Conv2d(256, CLASSES, 1)
        self.upscore2 = nn.ConvTranspose2d(CLASSES, CLASSES, 4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(CLASSES, CLASSES, 4, stride=2, padding=1, bias=False)
        self.upscore8 = nn.ConvTranspose2d(CLASSES, CLASSES, 16, stride=8, padding=4, bias=False)

    def forward(self, pool3, pool4, fc7):
        x = self.upscore2(self.score_fr(fc7)) + self.score_pool4(pool4)  # S/16
        x = self.upscore_pool4(x) + self.score_pool3(pool3)  # S/8
        return self.upscore8(x)  # N x 21 x S x S


def build(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = FCN8sHead()
    gen = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for up in (m.upscore2, m.upscore_pool4, m.upscore8):
            up.weight.copy_(bilinear_kernel(CLASSES, up.kernel_size[0], 0.01, gen))
    return m.eval()
