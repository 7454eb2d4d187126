"""Image pre- and post-processing shared by training, export, golden files, prediction and evaluation.

Contract (the Go side reproduces it): decode with PIL, ``convert("RGB")``, float32 in [0, 1] (x / 255),
add a batch dimension, resize to S x S with bilinear + antialias (align_corners=False), then
``(x - mean) / std`` per channel. Maps go back to an H x W image with plain bilinear interpolation
(align_corners=False, no antialias).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# MobileNetV2 from TFLite expects [-1, 1]; torchvision ResNet18 expects ImageNet statistics.
MEAN_STD = {
    "mobilenet_v2": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "resnet18": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def load_rgb(path: str) -> torch.Tensor:
    """Decode an image file to a 1x3xHxW float32 tensor in [0, 1]."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise ValueError(f"load image {path}: {err}") from err
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)
    return t.unsqueeze(0)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a batch of [0, 1] images to size x size (bilinear, antialias) as the contract says."""
    if x.dim() != 4:
        raise ValueError(f"resize: want NCHW tensor, got shape {tuple(x.shape)}")
    if x.shape[-2] == size and x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def preprocess_file(path: str, size: int, mean: Sequence[float], std: Sequence[float]):
    """Return (normalised 1x3xSxS tensor, original height, original width)."""
    x = load_rgb(path)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    return normalize(resize(x, size), mean, std), h, w


def map_to_image(m: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize an Nx1xSxS map back to the original image size (bilinear, no antialias)."""
    if m.dim() != 4:
        raise ValueError(f"map_to_image: want Nx1xHxW map, got shape {tuple(m.shape)}")
    return F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
