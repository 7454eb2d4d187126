"""MVTec-layout datasets and the training-data fingerprint.

Contract: a category root holds ``train/good/*``, ``test/<kind>/*`` and ``ground_truth/<kind>/NNN_mask.png``.
``load_train`` returns the training images pre-processed to S x S in [0, 1] (not yet normalised, so that
synthesis works on pixel values); ``fingerprint`` is sha256 over the sorted training file names and contents.
"""

from __future__ import annotations

import hashlib
import os
from typing import List, Tuple

import numpy as np
import torch
from PIL import Image

from .preprocess import load_rgb, resize
from .synthesis import IMAGE_EXTS


def _images(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS))


def train_files(root: str) -> List[str]:
    files = _images(os.path.join(root, "train", "good"))
    if not files:
        raise ValueError(f"dataset {root}: no images in train/good (want the MVTec AD layout)")
    return files


def test_files(root: str) -> List[Tuple[str, str, str]]:
    """(kind, stem, path) of every test image, sorted by kind then name."""
    tdir = os.path.join(root, "test")
    if not os.path.isdir(tdir):
        raise ValueError(f"dataset {root}: no test folder")
    out = []
    for kind in sorted(os.listdir(tdir)):
        for p in _images(os.path.join(tdir, kind)):
            out.append((kind, os.path.splitext(os.path.basename(p))[0], p))
    if not out:
        raise ValueError(f"dataset {root}: test folder has no images")
    return out


def mask_for(root: str, kind: str, stem: str, height: int, width: int) -> np.ndarray:
    """Ground-truth mask as bool HxW; a missing mask (or kind good) means no defect."""
    p = os.path.join(root, "ground_truth", kind, stem + "_mask.png")
    if kind == "good" or not os.path.isfile(p):
        return np.zeros((height, width), dtype=bool)
    with Image.open(p) as im:
        m = np.asarray(im.convert("L")) >= 128
    if m.shape != (height, width):
        raise ValueError(f"mask {p}: size {m.shape[1]}x{m.shape[0]} differs from image {width}x{height}")
    return m


def load_train(root: str, size: int) -> torch.Tensor:
    return torch.cat([resize(load_rgb(p), size) for p in train_files(root)], dim=0)


def fingerprint(files: List[str]) -> str:
    h = hashlib.sha256()
    for p in sorted(files, key=os.path.basename):
        h.update(os.path.basename(p).encode())
        h.update(b"\0")
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()
