"""A 1-D waveform decoder in the style of MelGAN's generator (Kumar et al. 2019), at half its width:
a mel spectrogram (80 bands, one frame per 256 samples) -> a waveform of S samples.

Conv1d(80 -> 256, k7) -> [LeakyReLU, ConvTranspose1d(k16, s8, p4)] x 2 (x64) -> [LeakyReLU,
ConvTranspose1d(k4, s2, p1)] x 2 (x4), each upsampling followed by a residual stack of dilated Conv1d
(dilations 1, 3, 9) -> Conv1d(k7) -> Tanh. Channels halve at every upsampling: 256 -> 128 -> 64 -> 32 -> 16.
"""

from __future__ import annotations

import torch
from torch import nn

MELS = 80
HOP = 256
CH = 256
UPS = ((16, 8, 4), (16, 8, 4), (4, 2, 1), (4, 2, 1))  # (kernel, stride, padding): x8 x8 x2 x2 = x256


def wave1d_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    return {"mel": (batch, MELS, size // HOP)}


class ResStack(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LeakyReLU(0.2), nn.Conv1d(ch, ch, 3, dilation=d, padding=d), nn.LeakyReLU(0.2), nn.Conv1d(ch, ch, 1)
            )
            for d in (1, 3, 9)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = x + b(x)
        return x


class WaveDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(MELS, CH, 7, padding=3)]
        ch = CH
        for k, s, p in UPS:
            layers += [nn.LeakyReLU(0.2), nn.ConvTranspose1d(ch, ch // 2, k, stride=s, padding=p), ResStack(ch // 2)]
            ch //= 2
        layers += [nn.LeakyReLU(0.2), nn.Conv1d(ch, 1, 7, padding=3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel)  # N x 80 x S/256 -> N x 1 x S


def build(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return WaveDecoder().eval()
