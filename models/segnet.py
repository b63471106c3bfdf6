"""SegNet (Badrinarayanan et al. 2017), narrowed to three levels: the decoder upsamples with the encoder's
max-pooling indices (MaxUnpool) instead of a learned ConvTranspose.

Because the indices must come from the encoder's MaxPool, the model takes the image: 3 x S x S ->
3 x [Conv3x3 + BN + ReLU, MaxPool 2 (indices kept)] (16, 32, 64 ch) -> 3 x [MaxUnpool 2 with those indices,
Conv3x3 + BN + ReLU] -> Conv1x1 to CLASSES logits at S x S.

`segnet_noidx` is the same network (same weights) with the unpooling written without indices: each 2x2
window of the pre-pooling activation is compared with its maximum, the first position (row-major) that
holds it is kept — the position max_pool2d's index names, ties included — and the decoder's value is
placed there (Reshape/Transpose, Equal, CumSum, Mul in ONNX). It equals MaxUnpool exactly. Engines
without MaxPool's Indices output (TVM) run this form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common import seed_norm_stats

CLASSES = 5
CH = (16, 32, 64)


def segnet_input_shapes(size: int, batch: int) -> dict[str, tuple[int, ...]]:
    return {"image": (batch, 3, size, size)}


def _unpool_by_mask(values: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """MaxUnpool(values, indices of MaxPool 2x2 of `before`) without the indices."""
    n, c, h, w = before.shape
    win = before.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    is_max = (win == win.amax(dim=-1, keepdim=True)).to(values.dtype)
    first = is_max * (torch.cumsum(is_max, dim=-1) == 1).to(values.dtype)  # first maximum, as max_pool2d
    out = values.unsqueeze(-1) * first
    return out.reshape(n, c, h // 2, w // 2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


def _cbr(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class SegNet(nn.Module):
    def __init__(self, with_indices: bool) -> None:
        super().__init__()
        self.with_indices = with_indices
        self.enc = nn.ModuleList(_cbr(cin, cout) for cin, cout in zip((3,) + CH, CH))
        outs = tuple(reversed(CH))[1:] + (CH[0],)
        self.dec = nn.ModuleList(_cbr(cin, cout) for cin, cout in zip(reversed(CH), outs))
        self.head = nn.Conv2d(CH[0], CLASSES, 1)

    def _unpool(self, pooled, indices, before):
        if self.with_indices:
            return F.max_unpool2d(pooled, indices, 2, 2, output_size=before.shape[-2:])
        return _unpool_by_mask(pooled, before)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x, saved = image, []
        for enc in self.enc:
            before = enc(x)
            x, idx = F.max_pool2d(before, 2, 2, return_indices=True)
            saved.append((idx, before))
        for dec, (idx, before) in zip(self.dec, reversed(saved)):
            x = dec(self._unpool(x, idx, before))
        return self.head(x)  # N x CLASSES x S x S


def build(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return seed_norm_stats(SegNet(with_indices=True), seed).eval()


def build_noidx(size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return seed_norm_stats(SegNet(with_indices=False), seed).eval()
