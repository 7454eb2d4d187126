"""From distance and segmentation maps to the exported outputs (design "The model", item 9).

Contract: ``AnomalyMapper(size, sigma, score)`` upsamples maps to size x size (bilinear), smooths them with
a separable Gaussian (sigma in output pixels, reflect padding) and scores an image as the mean of its top-k
map values (``"topk_mean:K"``) or the maximum (``"max"``).
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = int(4 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def parse_score(spec: str):
    if spec == "max":
        return ("max", 0)
    if spec.startswith("topk_mean:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            k = 0
        if k > 0:
            return ("topk_mean", k)
    raise ValueError(f"score {spec!r}: want 'max' or 'topk_mean:K' with K > 0")


class AnomalyMapper(nn.Module):
    def __init__(self, size: int, sigma: float = 4.0, score: str = "topk_mean:100"):
        super().__init__()
        self.size = size
        self.sigma = sigma
        self.score_kind, self.k = parse_score(score)
        self.score_spec = score
        if self.score_kind == "topk_mean" and self.k > size * size:
            raise ValueError(f"score top-k {self.k} exceeds the {size}x{size} map")
        self.register_buffer("kernel", gaussian_kernel(sigma) if sigma > 0 else torch.ones(1), persistent=False)

    def smooth(self, m: torch.Tensor) -> torch.Tensor:
        if self.sigma <= 0:
            return m
        k = self.kernel
        r = (k.numel() - 1) // 2
        if r >= m.shape[-1] or r >= m.shape[-2]:
            # Reflect padding needs the map to be larger than the radius: replicate instead for tiny maps.
            m = F.pad(m, [r, r, r, r], mode="replicate")
        else:
            m = F.pad(m, [r, r, r, r], mode="reflect")
        m = F.conv2d(m, k.view(1, 1, 1, -1))
        return F.conv2d(m, k.view(1, 1, -1, 1))

    def upsample(self, m: torch.Tensor) -> torch.Tensor:
        if m.shape[-1] == self.size and m.shape[-2] == self.size:
            return m
        return F.interpolate(m, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def rd_map(self, distances: List[torch.Tensor]) -> torch.Tensor:
        return self.smooth(sum(self.upsample(d) for d in distances))

    def score(self, m: torch.Tensor) -> torch.Tensor:
        flat = m.flatten(1)
        if self.score_kind == "max":
            return flat.max(dim=1).values
        return flat.topk(self.k, dim=1).values.mean(dim=1)
