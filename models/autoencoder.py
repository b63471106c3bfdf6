"""The convolutional autoencoder of the seed texts.

3 x S x S -> Conv(3->16, k3 p1) + SELU + MaxPool 2 -> Conv(16->32, k3 p1) + SELU + MaxPool 2
          -> ConvTranspose(32->16, k2 s2) + ReLU -> ConvTranspose(16->3, k2 s2) + Sigmoid -> 3 x S x S
"""

from __future__ import annotations

import torch
from torch import nn


class ConvAutoencoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.SELU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.SELU(),
            nn.MaxPool2d(2),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, kernel_size=2, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 3, kernel_size=2, stride=2),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # N x 3 x S x S -> N x 32 x S/4 x S/4 -> N x 3 x S x S
        return self.decoder(self.encoder(x))


def build(size: int, seed: int = 0) -> nn.Module:
    """Any size divisible by 4 works (the module is size-agnostic; size only fixes the export shape)."""
    torch.manual_seed(seed)
    return ConvAutoencoder().eval()
