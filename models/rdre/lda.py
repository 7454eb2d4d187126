"""Locally aware Dynamic Attention (paper Eq. 6-8).

Contract: ``LDA(c, k)(F)`` returns F * C where C is a channel weight per non-overlapping k x k window:
D = MaxPool_k(F) - AvgPool_k(F), C = Sigmoid(W1 ReLU(W2 LayerNorm(W3 D))) with 1x1 projections over
channels, upsampled with nearest neighbour back to F's size. The spatial size must be divisible by k.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor (no permutes, so ONNX stays simple)."""

    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=1, keepdim=True)
        var = (x - mu).pow(2).mean(dim=1, keepdim=True)
        x = (x - mu) / torch.sqrt(var + self.eps)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class LDA(nn.Module):
    def __init__(self, channels: int, k: int, reduction: int = 4):
        super().__init__()
        if k < 1:
            raise ValueError(f"LDA: window size k={k} must be >= 1")
        hidden = max(channels // reduction, 8)
        self.k = k
        self.w3 = nn.Conv2d(channels, channels, 1)
        self.norm = ChannelLayerNorm(channels)
        self.w2 = nn.Conv2d(channels, hidden, 1)
        self.w1 = nn.Conv2d(hidden, channels, 1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The per-window channel weights C at window resolution (N x C x H/k x W/k)."""
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if h % self.k or w % self.k:
            raise ValueError(f"LDA: feature size {h}x{w} is not divisible by window {self.k}")
        d = F.max_pool2d(x, self.k) - F.avg_pool2d(x, self.k)
        return torch.sigmoid(self.w1(F.relu(self.w2(self.norm(self.w3(d))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.weights(x)
        if self.k > 1:
            c = F.interpolate(c, scale_factor=float(self.k), mode="nearest")
        return x * c
