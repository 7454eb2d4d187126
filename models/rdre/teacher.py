"""Frozen ImageNet teachers behind one interface.

Contract: a teacher maps a normalised Nx3xSxS image to three feature maps at strides 4, 8 and 16
(``channels`` gives their widths), stays in eval mode with ``requires_grad=False`` whatever ``train()``
is called with, and records its own input normalisation in ``mean``/``std``. ``build_teacher`` picks
``resnet18`` (torchvision state_dict file, as in the paper) or ``mobilenet_v2`` (converted from the
TFLite file; ``weights=None`` leaves it random, which tests and golden files use).
"""

from __future__ import annotations

import logging
import os
import pickle
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from .preprocess import MEAN_STD

log = logging.getLogger(__name__)


class TFSameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (extra pixel bottom/right), as the TFLite weights expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = int(x.shape[-2]), int(x.shape[-1])
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
        pw = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def MobileNetV2TF(num_classes: int = 1000) -> nn.Module:
    """torchvision's mobilenet_v2 with TF SAME padding on its stride-2 3x3 convolutions."""
    net = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
            m.__class__ = TFSameConv2d
            m.padding = (0, 0)
    return net


class Teacher(nn.Module):
    """Frozen feature extractor returning [f1, f2, f3] at strides 4, 8, 16."""

    name = "teacher"
    channels: Tuple[int, int, int] = (0, 0, 0)
    # Whether the tapped features take negative values. ResNet's taps follow a ReLU; MobileNetV2's are the
    # linear bottleneck outputs of its inverted residual blocks, about half of them negative.
    signed_features = False

    def __init__(self):
        super().__init__()
        mean, std = MEAN_STD[self.name]
        self.mean, self.std = mean, std

    def freeze(self) -> "Teacher":
        for p in self.parameters():
            p.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> "Teacher":
        # Folded-BN weights only make sense with running statistics: never leave eval mode.
        return super().train(False)


class MobileNetV2Teacher(Teacher):
    name = "mobilenet_v2"
    channels = (24, 32, 96)
    taps = (3, 6, 13)
    signed_features = True

    def __init__(self, weights: Optional[str] = None, check_sha: bool = True):
        super().__init__()
        net = MobileNetV2TF(num_classes=1000)
        if weights:
            from .tflite_convert import convert

            net.load_state_dict(convert(weights, check_sha=check_sha))
            log.info("teacher mobilenet_v2 loaded from %s", weights)
        self.features = nn.Sequential(*list(net.features.children())[: self.taps[-1] + 1])
        self.freeze()

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class ResNet18Teacher(Teacher):
    name = "resnet18"
    channels = (64, 128, 256)

    def __init__(self, weights: Optional[str] = None):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        if weights:
            try:
                # weights_only: a downloaded file must not be able to run code while unpickling.
                state = torch.load(weights, map_location="cpu", weights_only=True)
            except (OSError, RuntimeError, pickle.UnpicklingError) as err:
                raise ValueError(f"load resnet18 weights {weights}: {err}") from err
            if isinstance(state, dict) and "state_dict" in state:
                state = state["state_dict"]
            try:
                missing, unexpected = net.load_state_dict(state, strict=False)
            except RuntimeError as err:
                raise ValueError(f"load resnet18 weights {weights}: {err}") from err
            wanted = [k for k in missing if not k.startswith("fc.")]
            if wanted:
                raise ValueError(f"load resnet18 weights {weights}: missing keys {wanted[:5]}")
            log.info("teacher resnet18 loaded from %s (unused keys: %d)", weights, len(unexpected))
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.freeze()

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        f1 = self.layer1(self.stem(x))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f1, f2, f3]


TEACHERS = ("mobilenet_v2", "resnet18")


def build_teacher(name: str, weights: Optional[str] = None) -> Teacher:
    if name == "mobilenet_v2":
        return MobileNetV2Teacher(weights)
    if name == "resnet18":
        if weights and not os.path.isfile(weights):
            raise FileNotFoundError(f"resnet18 weights {weights} do not exist")
        return ResNet18Teacher(weights)
    raise ValueError(f"unknown teacher {name!r}: choose one of {', '.join(TEACHERS)}")
