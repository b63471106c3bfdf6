"""A VAE-style decoder: a latent vector -> a dense layer -> a small feature map -> four ConvTranspose
(k3, s2, p1, output_padding 1) stages, each doubling the resolution, with BatchNorm + LeakyReLU between
and a Sigmoid at the end (pixel intensities in [0, 1]).

z: N x LATENT -> Linear -> N x 128 x S/16 x S/16 -> 64 -> 32 -> 16 -> 3 channels at S x S.
output_padding = 1 is what makes k3 s2 p1 exactly double the size — the attribute most engines get wrong.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common import seed_norm_stats

LATENT = 128
CHANNELS = (128, 64, 32, 16)


def vae_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    return {"z": (batch, LATENT)}


class VAEDecoder(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.base = size // 16
        self.fc = nn.Linear(LATENT, CHANNELS[0] * self.base * self.base)
        layers: list[nn.Module] = []
        for cin, cout in zip(CHANNELS, CHANNELS[1:]):
            layers += [
                nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(cout),
                nn.LeakyReLU(0.2),
            ]
        layers += [nn.ConvTranspose2d(CHANNELS[-1], 3, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid()]
        self.up = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).reshape(z.shape[0], CHANNELS[0], self.base, self.base)
        return self.up(h)  # N x 3 x S x S


def build(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return seed_norm_stats(VAEDecoder(size), seed).eval()
