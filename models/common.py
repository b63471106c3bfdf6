"""Helpers shared by the zoo's builders: seeded, non-trivial normalisation statistics."""

from __future__ import annotations

import torch
from torch import nn


def seed_norm_stats(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters (seeded), so that the folded
    affine transform is actually exercised — fresh BatchNorms are the identity in eval mode."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.num_features, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=gen))
    return model


def bilinear_kernel(channels: int, k: int, noise: float, gen: torch.Generator) -> torch.Tensor:
    """FCN's upsampling initialisation: a per-channel bilinear kernel on the diagonal (in == out channel),
    plus seeded noise everywhere so that the off-diagonal products are not all zero."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    w = noise * torch.randn(channels, channels, k, k, generator=gen)
    for c in range(channels):
        w[c, c] += filt[:, None] * filt[None, :]
    return w
