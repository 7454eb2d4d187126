"""Student: one-class bottleneck, mirrored decoder and cross-stage fusion (paper Sec. 3.1, Eq. 2-5).

Contract: ``Student(channels)(f_se)`` takes the student encoder's features [F_Se1, F_Se2, F_Se3] (the
frozen teacher applied to the student's input, widths ``channels`` at strides 4/8/16) and returns the
decoder's [F_S1, F_S2, F_S3] with the same shapes as the teacher's features. With fusion on, the stride-16
and stride-8 decoder stages become out = P + g(f(F_Se) + U): P the plain decoder output, U the previous
stage upsampled and channel-matched, f = LDA (k = 2 at stride 16, 4 at stride 8) and g = CAAMS-FF.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .caams_ff import CAAMSFF
from .lda import LDA


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """ResNet basic block, optionally strided (the bottleneck's layer4-style block)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class DeBlock(nn.Module):
    """RD4AD's decoder block: a basic block whose first conv is a 2x2 transposed conv when upsampling.

    ``act=False`` drops the final ReLU: a stage output compared with signed teacher features must be able to
    go negative, or the cosine distance has a floor (about 0.3 per stage for MobileNetV2's taps).
    """

    def __init__(self, cin: int, cout: int, upsample: bool, act: bool = True):
        super().__init__()
        self.act = act
        if upsample:
            self.conv1 = nn.ConvTranspose2d(cin, cout, 2, 2, bias=False)
            self.skip = nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, 2, bias=False), nn.BatchNorm2d(cout))
        else:
            self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
            self.skip = None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        y = y + (x if self.skip is None else self.skip(x))
        return F.relu(y) if self.act else y


def de_layer(cin: int, cout: int, blocks: int = 2, linear_out: bool = False) -> nn.Sequential:
    layers = [DeBlock(cin, cout, True, act=not (linear_out and blocks == 1))]
    layers += [DeBlock(cout, cout, False, act=not (linear_out and i == blocks - 2)) for i in range(blocks - 1)]
    return nn.Sequential(*layers)


class OCBE(nn.Module):
    """RD4AD's one-class bottleneck embedding: fuse three scales, compress with a strided basic block."""

    def __init__(self, channels: Sequence[int]):
        super().__init__()
        c1, c2, c3 = channels
        self.out_channels = 2 * c3
        self.down1 = nn.Sequential(conv_bn_relu(c1, c2, 2), conv_bn_relu(c2, c3, 2))
        self.down2 = conv_bn_relu(c2, c3, 2)
        self.block = BasicBlock(3 * c3, self.out_channels, stride=2)

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3 = feats
        return self.block(torch.cat([self.down1(f1), self.down2(f2), f3], dim=1))


class CrossStageFusion(nn.Module):
    """out = P + g(f(F_Se) + U) at one decoder stage."""

    def __init__(self, channels: int, prev_channels: int, k: int, use_lda: bool = True, use_caams: bool = True, window: int = 8, gate: bool = False,
                 norm: bool = False):
        super().__init__()
        # Optional ReZero-style gate: starts at 0, so training begins as plain RD and opens the encoder path
        # only as far as the distillation loss rewards it (the plain reading leaks anomalies, see README).
        self.gate = nn.Parameter(torch.zeros(1)) if gate else None
        self.match = nn.Sequential(nn.Conv2d(prev_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.lda = LDA(channels, k) if use_lda else nn.Identity()
        self.caams = CAAMSFF(channels, window=window) if use_caams else nn.Identity()
        # Optional (not in the paper): batch-normalise the encoder branch f(F_Se) as U is, so that the raw
        # encoder features do not outweigh the decoder's own path by their scale.
        self.norm = nn.BatchNorm2d(channels) if norm else None

    def forward(self, p: torch.Tensor, f_se: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        u = self.match(F.interpolate(prev, size=(int(p.shape[-2]), int(p.shape[-1])), mode="bilinear", align_corners=False))
        e = self.lda(f_se)
        if self.norm is not None:
            e = self.norm(e)
        g = self.caams(e + u)
        return p + (g if self.gate is None else self.gate * g)


class Student(nn.Module):
    def __init__(self, channels: Sequence[int], fusion: bool = True, use_lda: bool = True, use_caams: bool = True, lda_k=(4, 2), window: int = 8, gate: bool = False,
                 linear_out: bool = False, fusion_norm: bool = False):
        super().__init__()
        c1, c2, c3 = channels
        self.bottleneck = OCBE(channels)
        c4 = self.bottleneck.out_channels
        self.layer3 = de_layer(c4, c3, linear_out=linear_out)
        self.layer2 = de_layer(c3, c2, linear_out=linear_out)
        self.layer1 = de_layer(c2, c1, linear_out=linear_out)
        self.fusion = fusion
        if fusion:
            self.fuse3 = CrossStageFusion(c3, c4, lda_k[1], use_lda, use_caams, window, gate, fusion_norm)
            self.fuse2 = CrossStageFusion(c2, c3, lda_k[0], use_lda, use_caams, window, gate, fusion_norm)

    def lr_groups(self):
        """(student parameters, fusion-module parameters): the paper trains them at different rates."""
        fusion = [p for n, p in self.named_parameters() if n.startswith("fuse")]
        student = [p for n, p in self.named_parameters() if not n.startswith("fuse")]
        return student, fusion

    def forward(self, f_se: List[torch.Tensor]) -> List[torch.Tensor]:
        if len(f_se) != 3:
            raise ValueError(f"student: want 3 encoder features, got {len(f_se)}")
        b = self.bottleneck(f_se)
        d3 = self.layer3(b)
        if self.fusion:
            d3 = self.fuse3(d3, f_se[2], b)
        d2 = self.layer2(d3)
        if self.fusion:
            d2 = self.fuse2(d2, f_se[1], d3)
        d1 = self.layer1(d2)
        return [d1, d2, d3]
