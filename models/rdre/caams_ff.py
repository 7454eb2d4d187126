"""Context-Aware Adaptive Multi-Scale Feature Fusion with Adaptive Sparse Self-Attention (Eq. 9-16).

Contract: ``CAAMSFF(c)`` maps an N x C x H x W feature to the same shape. Inside: pre-norm windowed
multi-head ASSA (M x M windows, M = min(window, H, W); learnable relative position bias; sparse branch
ReLU(QK^T/sqrt(d) + B)^2 and dense branch Softmax(QK^T/sqrt(d) + B) mixed by two softmax-normalised
learned weights), a feature refinement LayerNorm(W4 DWConv(W3 F)), both with residual connections,
then a residual block and a multi-scale fusion of dilated 3x3 branches. Window reshapes keep the batch
as ``-1`` so the ONNX export stays batch-dynamic.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .lda import ChannelLayerNorm


def window_partition(x: torch.Tensor, m: int) -> torch.Tensor:
    """N x C x H x W -> (N * H/m * W/m) x (m*m) x C."""
    c, h, w = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    x = x.reshape(-1, c, h // m, m, w // m, m)
    x = x.permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, m * m, c)


def window_reverse(x: torch.Tensor, m: int, h: int, w: int) -> torch.Tensor:
    c = int(x.shape[-1])
    x = x.reshape(-1, h // m, w // m, m, m, c)
    x = x.permute(0, 5, 1, 3, 2, 4)
    return x.reshape(-1, c, h, w)


class ASSA(nn.Module):
    def __init__(self, channels: int, heads: int, window: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(f"ASSA: {channels} channels are not divisible by {heads} heads")
        self.heads = heads
        self.window = window
        self.head_dim = channels // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.bias_table = nn.Parameter(torch.zeros(heads, (2 * window - 1) ** 2))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        # Two mixing logits (sparse, dense), softmax-normalised: equal weights at the start.
        self.mix = nn.Parameter(torch.zeros(2))

    def effective_window(self, h: int, w: int) -> int:
        m = min(self.window, h, w)
        if h % m or w % m:
            raise ValueError(f"ASSA: feature size {h}x{w} is not divisible by window {m}")
        return m

    def position_bias(self, m: int) -> torch.Tensor:
        # Smaller windows (small inputs) index the centre of the same table: offsets stay meaningful.
        full = 2 * self.window - 1
        coords = torch.stack(torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (self.window - 1)
        idx = (rel[..., 0] * full + rel[..., 1]).reshape(-1)
        return self.bias_table[:, idx].reshape(self.heads, m * m, m * m)

    def scores(self, x: torch.Tensor):
        """Return (q, k, v, logits) for windows x of shape B x T x C (used by tests too)."""
        b_t = int(x.shape[1])
        qkv = self.qkv(x).reshape(-1, b_t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        m = int(round(b_t**0.5))
        logits = (q @ k.transpose(-2, -1)) * self.scale + self.position_bias(m).unsqueeze(0)
        return q, k, v, logits

    def attention(self, x: torch.Tensor):
        """(attention weights, values) for windows x: w_sparse ReLU(S)^2 + w_dense Softmax(S)."""
        _, _, v, logits = self.scores(x)
        sparse = F.relu(logits) ** 2
        dense = torch.softmax(logits, dim=-1)
        w = torch.softmax(self.mix, dim=0)
        return w[0] * sparse + w[1] * dense, v

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        attn, v = self.attention(x)
        out = (attn @ v).transpose(1, 2).reshape(-1, int(x.shape[1]), self.heads * self.head_dim)
        return self.proj(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        m = self.effective_window(h, w)
        win = window_partition(x, m)
        return window_reverse(self.attend(win), m, h, w)


class Refinement(nn.Module):
    """F_out = LayerNorm(W4 DWConv(W3 F_in)): channel mixing around a depthwise spatial conv."""

    def __init__(self, channels: int, expansion: int = 1):
        super().__init__()
        hidden = channels * expansion
        self.w3 = nn.Conv2d(channels, hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.w4 = nn.Conv2d(hidden, channels, 1)
        self.norm = ChannelLayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.w4(F.gelu(self.dw(self.w3(x)))))


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.skip(x))


class MultiScaleFusion(nn.Module):
    """Parallel 3x3 branches with growing dilation, concatenated and fused by a 1x1 conv."""

    def __init__(self, channels: int, dilations: Sequence[int] = (1, 2, 3)):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=d, dilation=d, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            for d in dilations
        )
        self.fuse = nn.Sequential(nn.Conv2d(channels * len(dilations), channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.fuse(torch.cat([b(x) for b in self.branches], dim=1)))


class CAAMSFF(nn.Module):
    def __init__(self, channels: int, heads: int = 0, window: int = 8):
        super().__init__()
        if heads <= 0:
            heads = max(1, channels // 16)
            while channels % heads:
                heads -= 1
        self.norm1 = ChannelLayerNorm(channels)
        self.assa = ASSA(channels, heads, window)
        self.refine = Refinement(channels)
        self.res = ResidualBlock(channels, channels)
        self.msf = MultiScaleFusion(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.assa(self.norm1(x))
        x = x + self.refine(x)
        return self.msf(self.res(x))
