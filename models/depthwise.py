"""A light-weight decoder with grouped and depthwise ConvTranspose (as in mobile segmentation heads):
features at S/8 in, class logits at S x S out.

features N x 96 x S/8 -> grouped ConvTranspose(96 -> 48, k4, s2, p1, groups 4) + BN + ReLU6
-> 2 x [depthwise ConvTranspose(C -> C, k4, s2, p1, groups C) + BN + ReLU6, pointwise Conv1x1(C -> C/2)
+ BN + ReLU6] (48 -> 24 -> 12) -> Conv1x1 to CLASSES.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common import seed_norm_stats

CLASSES = 5
IN_CH = 96


def depthwise_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    return {"features": (batch, IN_CH, size // 8, size // 8)}


class DepthwiseDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(IN_CH, 48, 4, stride=2, padding=1, groups=4, bias=False),
            nn.BatchNorm2d(48),
            nn.ReLU6(),
        ]
        ch = 48
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(ch, ch, 4, stride=2, padding=1, groups=ch, bias=False),
                nn.BatchNorm2d(ch),
                nn.ReLU6(),
                nn.Conv2d(ch, ch // 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU6(),
            ]
            ch //= 2
        layers.append(nn.Conv2d(ch, CLASSES, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def build(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return seed_norm_stats(DepthwiseDecoder(), seed).eval()
