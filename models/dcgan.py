"""A DCGAN-style generator (Radford et al. 2016): latent z -> 4x4 -> ... -> S x S image.

z: N x NZ x 1 x 1 -> ConvTranspose(k4, s1, p0) to 4 x 4, then ConvTranspose(k4, s2, p1) doubling the
resolution and halving the channels, each followed by BatchNorm + ReLU; the last one gives 3 channels and
Tanh. At S = 64 this is the published architecture (NGF = 64: 512 -> 256 -> 128 -> 64 -> 3 channels).
"""

from __future__ import annotations

import torch
from torch import nn

from models.common import seed_norm_stats

NZ = 100
NGF = 64
MAX_CH = 512


def dcgan_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    return {"z": (batch, NZ, 1, 1)}


def _channels(size: int) -> list[int]:
    """Channels at 4x4, 8x8, ..., size/2 x size/2: NGF at size/2, doubling per halving, capped."""
    levels = size.bit_length() - 3  # number of resolutions from 4 to size/2
    return [min(NGF * 2 ** (levels - 1 - i), MAX_CH) for i in range(levels)]


class Generator(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        ch = _channels(size)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(NZ, ch[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch[0]),
            nn.ReLU(True),
        ]
        for cin, cout in zip(ch, ch[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)  # N x NZ x 1 x 1 -> N x 3 x S x S


def build(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    g = Generator(size)
    with torch.no_grad():  # the DCGAN paper's initialisation: N(0, 0.02) weights
        for m in g.modules():
            if isinstance(m, nn.ConvTranspose2d):
                m.weight.normal_(0.0, 0.02)
    return seed_norm_stats(g, seed).eval()
