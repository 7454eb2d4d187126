"""Shared fixtures: small generated images and MVTec-layout folders (no real data needed)."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)

REPO = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth, structured [0, 1] images (a tile-like normal class)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for _ in range(n):
        f = 2 + 2 * torch.rand(3, generator=g)
        ph = torch.rand(3, generator=g) * 6.28
        img = torch.stack([0.5 + 0.3 * torch.sin(6.28 * f[c] * (xs + ys) + ph[c]) for c in range(3)])
        out.append((img + 0.02 * torch.randn(3, size, size, generator=g)).clamp(0, 1))
    return torch.stack(out)


def write_png(path: str, arr: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def mvtec_dir(tmp_path):
    """A tiny MVTec-layout category: 6 train images, 2 good + 2 defect test images with masks (48x40)."""
    root = tmp_path / "cat"
    imgs = (smooth_images(10, 48, 1).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)[:, :40, :, :]
    for i in range(6):
        write_png(str(root / "train" / "good" / f"{i:03d}.png"), imgs[i])
    write_test_split(root, imgs[6:8], imgs[8:10])
    return str(root)


def write_test_split(root, good: np.ndarray, defect: np.ndarray) -> None:
    """test/good from good, test/scratch from defect with a white rectangle, and its masks (H x W x 3 uint8)."""
    for i in range(len(good)):
        write_png(str(root / "test" / "good" / f"{i:03d}.png"), good[i])
    for i in range(len(defect)):
        bad = defect[i].copy()
        bad[10:20, 12:24] = 255
        write_png(str(root / "test" / "scratch" / f"{i:03d}.png"), bad)
        mask = np.zeros(bad.shape[:2], np.uint8)
        mask[10:20, 12:24] = 255
        write_png(str(root / "ground_truth" / "scratch" / f"{i:03d}_mask.png"), mask)


@pytest.fixture
def tflite_path():
    from models.rdre.tflite_convert import default_tflite_path

    p = default_tflite_path()
    if not os.path.isfile(p):
        pytest.skip(f"TFLite teacher file {p} is absent on this machine")
    return p


@pytest.fixture
def ort_lib():
    from models.rdre.ort import default_lib_path

    p = default_lib_path()
    if not os.path.isfile(p):
        pytest.skip(f"ONNX Runtime library {p} is absent (run `make ort`)")
    return p
