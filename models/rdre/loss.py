"""Losses: cosine distillation (Eq. 17-19) and focal + L1 segmentation loss (Eq. 20-22).

Contract: ``cosine_distance`` gives D_k = 1 - cos(F_T, F_S) over channels per pixel (N x 1 x h x w);
``distillation_loss`` = sum_k mean D_k (plus, when a synthetic-anomaly mask and a weight are given, the weight
times the mean of D_k inside the mask); ``segmentation_loss`` = focal(gamma) + L1 on probabilities
against a {0, 1} mask of the same size. All return scalars that decrease as predictions improve.
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F


def cosine_distance(ft: torch.Tensor, fs: torch.Tensor) -> torch.Tensor:
    if ft.shape != fs.shape:
        raise ValueError(f"cosine distance: teacher {tuple(ft.shape)} and student {tuple(fs.shape)} differ")
    return 1 - F.cosine_similarity(ft, fs, dim=1, eps=1e-6).unsqueeze(1)


def distillation_loss(ft: List[torch.Tensor], fs: List[torch.Tensor], mask: Optional[torch.Tensor] = None,
                      anomaly_weight: float = 0.0) -> torch.Tensor:
    """Eq. 17-19, optionally with the synthetic-anomaly pixels weighted up.

    Inside a synthetic mask the student must *not* reproduce what its encoder saw; with the plain mean those
    pixels are a small share of the loss, so a decoder that copies encoder features through the fusion path is
    rewarded on the many normal pixels and barely penalised on the few anomalous ones. The extra term is the
    mean distance over the anomalous pixels only, so filtering them counts as much as reconstructing the rest.
    """
    total = 0.0
    for t, s in zip(ft, fs):
        d = cosine_distance(t, s)
        total = total + d.mean()
        if mask is not None and anomaly_weight > 0:
            m = (F.interpolate(mask, size=d.shape[-2:], mode="area") > 0.5).float()
            n = m.sum()
            if float(n) > 0:
                total = total + anomaly_weight * (d * m).sum() / n
    return total


def focal_loss(p: torch.Tensor, y: torch.Tensor, gamma: float = 4.0, eps: float = 1e-6) -> torch.Tensor:
    p = p.clamp(eps, 1 - eps)
    pt = torch.where(y > 0.5, p, 1 - p)
    return (-((1 - pt) ** gamma) * torch.log(pt)).mean()


def segmentation_loss(p: torch.Tensor, y: torch.Tensor, gamma: float = 4.0) -> torch.Tensor:
    if p.shape != y.shape:
        raise ValueError(f"segmentation loss: prediction {tuple(p.shape)} and mask {tuple(y.shape)} differ")
    return focal_loss(p, y, gamma) + (p - y).abs().mean()
