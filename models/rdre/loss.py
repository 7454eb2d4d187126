"""Losses: cosine distillation (Eq. 17-19) and focal + L1 segmentation loss (Eq. 20-22).

Contract: ``cosine_distance`` gives D_k = 1 - cos(F_T, F_S) over channels per pixel (N x 1 x h x w);
``distillation_loss`` = sum_k mean D_k; ``segmentation_loss`` = focal(gamma) + L1 on probabilities
against a {0, 1} mask of the same size. All return scalars that decrease as predictions improve.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F


def cosine_distance(ft: torch.Tensor, fs: torch.Tensor) -> torch.Tensor:
    if ft.shape != fs.shape:
        raise ValueError(f"cosine distance: teacher {tuple(ft.shape)} and student {tuple(fs.shape)} differ")
    return 1 - F.cosine_similarity(ft, fs, dim=1, eps=1e-6).unsqueeze(1)


def distillation_loss(ft: List[torch.Tensor], fs: List[torch.Tensor]) -> torch.Tensor:
    return sum(cosine_distance(t, s).mean() for t, s in zip(ft, fs))


def focal_loss(p: torch.Tensor, y: torch.Tensor, gamma: float = 4.0, eps: float = 1e-6) -> torch.Tensor:
    p = p.clamp(eps, 1 - eps)
    pt = torch.where(y > 0.5, p, 1 - p)
    return (-((1 - pt) ** gamma) * torch.log(pt)).mean()


def segmentation_loss(p: torch.Tensor, y: torch.Tensor, gamma: float = 4.0) -> torch.Tensor:
    if p.shape != y.shape:
        raise ValueError(f"segmentation loss: prediction {tuple(p.shape)} and mask {tuple(y.shape)} differ")
    return focal_loss(p, y, gamma) + (p - y).abs().mean()
