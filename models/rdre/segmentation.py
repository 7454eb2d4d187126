"""Segmentation sub-network (paper Sec. 3.4): residual blocks, Coordinate Attention, ASPP, 1x1 + Sigmoid.

Contract: ``SegmentationNet(in_channels)(d)`` maps the stacked multi-scale distance maps (N x K x h x w)
to an anomaly probability map N x 1 x h x w in (0, 1).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .caams_ff import ResidualBlock


class CoordAttention(nn.Module):
    """Hou et al. 2021: attention factorised into a height and a width direction."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        mip = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv_h = nn.Conv2d(mip, channels, 1)
        self.conv_w = nn.Conv2d(mip, channels, 1)

    def weights(self, x: torch.Tensor):
        h, w = int(x.shape[-2]), int(x.shape[-1])
        x_h = x.mean(dim=3, keepdim=True)  # N C H 1
        x_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # N C W 1
        y = F.hardswish(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        y_h, y_w = y[:, :, :h], y[:, :, h : h + w]
        return torch.sigmoid(self.conv_h(y_h)), torch.sigmoid(self.conv_w(y_w.transpose(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_h, a_w = self.weights(x)
        return x * a_h * a_w


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates: Sequence[int] = (1, 6, 12, 18)):
        super().__init__()
        branches = []
        for r in rates:
            k, p = (1, 0) if r == 1 else (3, r)
            branches.append(nn.Sequential(nn.Conv2d(cin, cout, k, padding=p, dilation=r, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
        self.branches = nn.ModuleList(branches)
        # Image-level branch: global context, broadcast back over the map.
        self.pool = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(cout * (len(rates) + 1), cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        g = self.pool(x.mean(dim=(2, 3), keepdim=True))
        outs.append(g.expand_as(outs[0]))
        return self.project(torch.cat(outs, dim=1))


class SegmentationNet(nn.Module):
    def __init__(self, in_channels: int = 3, width: int = 32, blocks: int = 2):
        super().__init__()
        layers = [ResidualBlock(in_channels, width)] + [ResidualBlock(width, width) for _ in range(blocks - 1)]
        self.res = nn.Sequential(*layers)
        self.ca = CoordAttention(width)
        self.aspp = ASPP(width, width)
        self.head = nn.Conv2d(width, 1, 1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.aspp(self.ca(self.res(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))
