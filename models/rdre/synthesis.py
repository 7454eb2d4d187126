"""DRAEM-style anomaly synthesis (paper Eq. 1).

Contract: ``AnomalySynthesizer(size, source_dir)`` turns a batch of normal images in [0, 1] into
``(I_a, M_p)`` with I_a = beta (M_p * A) + (1 - beta) (M_p * I_n) + (1 - M_p) I_n, M_p a thresholded
Perlin-noise mask, A an augmented texture (from ``source_dir`` or, when none is given, a built-in
procedural generator) and beta ~ U[0.15, 1]. A share ``normal_prob`` of samples stays normal with an empty
mask. All randomness comes from the ``torch.Generator`` passed in, so a seed reproduces a run.

Two options that are not in the paper (off by default; models/README.md, "Beyond bottle"):

- ``self_prob``: the share of anomalies whose texture A is a normal training image (``self_images``),
  rotated, flipped and shifted, then given the same photometric augmentation: structural and colour changes
  made of the category's own material instead of a DTD texture.
- ``fg`` passed to ``__call__``: per-image foreground masks (``foreground_mask``); the Perlin mask is
  intersected with them, so anomalies land on the object and not on the background.
- ``color_prob``: the share of anomalies whose A is the image itself with a colour cast (``colour_cast``):
  a change of colour or brightness with no texture, as in MVTec AD's contamination and colour defects.
"""

from __future__ import annotations

import glob
import logging
import math
import os
from typing import List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _fade(t: torch.Tensor) -> torch.Tensor:
    return 6 * t**5 - 15 * t**4 + 10 * t**3


def perlin_2d(size: int, res: Tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    """Perlin noise in [-1, 1]-ish on a size x size grid with res periods per axis (any res that fits)."""
    ry, rx = res
    # Work on a grid divisible by res, then crop: DRAEM needs res to divide the size, we do not.
    hy, hx = math.ceil(size / ry) * ry, math.ceil(size / rx) * rx
    angles = 2 * math.pi * torch.rand(ry + 1, rx + 1, generator=gen)
    grads = torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1)
    ys = torch.arange(hy, dtype=torch.float32) * ry / hy
    xs = torch.arange(hx, dtype=torch.float32) * rx / hx
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    iy, ix = gy.floor().long(), gx.floor().long()
    fy, fx = gy - iy, gx - ix

    def dot(oy: int, ox: int) -> torch.Tensor:
        g = grads[iy + oy, ix + ox]
        return g[..., 0] * (fx - ox) + g[..., 1] * (fy - oy)

    u, v = _fade(fx), _fade(fy)
    n0 = dot(0, 0) * (1 - u) + dot(0, 1) * u
    n1 = dot(1, 0) * (1 - u) + dot(1, 1) * u
    n = math.sqrt(2) * ((1 - v) * n0 + v * n1)
    return n[:size, :size]


def perlin_mask(size: int, gen: torch.Generator, threshold: float = 0.5, min_scale: int = 0, max_scale: int = 6,
                within: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A binary 1xSxS mask from thresholded Perlin noise with DRAEM's random scales and a random rotation.

    ``within`` (1xSxS or SxS in {0, 1}): keep only the part of the mask inside it (the foreground); draws
    that leave nothing there are redrawn, and after 16 empty draws the last non-empty mask is kept whole."""
    fallback = None
    for _ in range(16):
        sy = 2 ** int(torch.randint(min_scale, max_scale, (1,), generator=gen))
        sx = 2 ** int(torch.randint(min_scale, max_scale, (1,), generator=gen))
        n = perlin_2d(size, (sy, sx), gen)
        n = torch.rot90(n, int(torch.randint(0, 4, (1,), generator=gen)), dims=(0, 1))
        m = (n > threshold).float()
        if m.sum() > 0 and within is not None:
            fallback = m
            m = m * within.reshape(size, size)
        if m.sum() > 0:
            return m.unsqueeze(0)
    if fallback is not None:
        return fallback.unsqueeze(0)
    # Very low-frequency noise can stay under the threshold: fall back to a blob so the sample is anomalous.
    m = torch.zeros(1, size, size)
    c, r = size // 2, max(size // 8, 1)
    m[:, c - r : c + r, c - r : c + r] = 1
    return m


def procedural_texture(size: int, gen: torch.Generator) -> torch.Tensor:
    """A 3xSxS texture in [0, 1] from coloured multi-octave Perlin noise, stripes or checks."""
    kind = int(torch.randint(0, 3, (1,), generator=gen))
    if kind == 0:
        chans = []
        for _ in range(3):
            acc = torch.zeros(size, size)
            for o in range(4):
                acc += perlin_2d(size, (2 ** (o + 1), 2 ** (o + 1)), gen) / (2**o)
            chans.append(acc)
        t = torch.stack(chans)
    else:
        period = float(torch.randint(4, max(size // 4, 5), (1,), generator=gen))
        ang = float(torch.rand(1, generator=gen)) * math.pi
        ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
        u = xs * math.cos(ang) + ys * math.sin(ang)
        w = -xs * math.sin(ang) + ys * math.cos(ang)
        if kind == 1:
            base = torch.sin(2 * math.pi * u / period)
        else:
            base = torch.sign(torch.sin(2 * math.pi * u / period) * torch.sin(2 * math.pi * w / period))
        col = torch.rand(3, 1, 1, generator=gen) * 2 - 1
        t = base.unsqueeze(0) * col + 0.3 * torch.randn(3, size, size, generator=gen)
    t = t - t.amin(dim=(1, 2), keepdim=True)
    return t / t.amax(dim=(1, 2), keepdim=True).clamp_min(1e-6)


def augment_texture(a: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """DRAEM-like random photometric/geometric changes of a 3xSxS texture in [0, 1]."""
    ops = torch.randperm(7, generator=gen)[:3].tolist()
    for op in ops:
        r = float(torch.rand(1, generator=gen))
        if op == 0:  # gamma contrast
            a = a.clamp_min(1e-6) ** (0.5 + 1.5 * r)
        elif op == 1:  # brightness multiply
            a = a * (0.8 + 0.4 * r)
        elif op == 2:  # brightness add
            a = a + (r - 0.5) * 0.6
        elif op == 3:  # invert
            a = 1 - a
        elif op == 4:  # posterize to 2..5 bits
            levels = 2 ** (2 + int(r * 4))
            a = torch.floor(a.clamp(0, 1) * (levels - 1) + 0.5) / (levels - 1)
        elif op == 5:  # solarize
            a = torch.where(a > r, 1 - a, a)
        else:  # rotate by a multiple of 90 degrees and flip
            a = torch.rot90(a, 1 + int(r * 3), dims=(1, 2))
            a = torch.flip(a, dims=(2,))
        a = a.clamp(0, 1)
    return a


def foreground_mask(img: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """A 1xSxS {0, 1} foreground estimate of a [0, 1] image on a plain background (all ones for textures).

    The background colour is the per-channel median of a border band; a pixel is foreground when one channel
    differs from it by more than ``threshold``, and the result is smoothed by a box filter (1/16 of the size)
    and thresholded at 0.5. When the border itself is not plain (more than 30 % of it off the median: a
    texture or an object touching the edges), or the estimate covers under 5 % or over 95 % of the image,
    the whole image counts as foreground."""
    c, h, w = img.shape
    b = max(2, min(h, w) // 32)
    border = torch.cat([img[:, :b].reshape(c, -1), img[:, -b:].reshape(c, -1), img[:, :, :b].reshape(c, -1), img[:, :, -b:].reshape(c, -1)], dim=1)
    bg = border.median(dim=1).values.view(c, 1, 1)
    full = torch.ones(1, h, w)
    if float(((border - bg.view(c, 1)).abs().amax(dim=0) > threshold).float().mean()) > 0.3:
        return full
    fg = ((img - bg).abs().amax(dim=0, keepdim=True) > threshold).float()
    r = max(1, min(h, w) // 32)
    fg = (torch.nn.functional.avg_pool2d(fg.unsqueeze(0), 2 * r + 1, 1, r, count_include_pad=False)[0] > 0.5).float()
    share = float(fg.mean())
    if share < 0.05 or share > 0.95:
        return full
    return fg


def colour_cast(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The 3xSxS image in [0, 1] with a random per-channel gain in [0.5, 1.5] and offset in [-0.2, 0.2].

    Blended through the Perlin mask with beta (Eq. 1) this is a smooth colour or brightness change of the
    object's own surface: no edges or texture of a foreign image for the student to latch on to."""
    gain = 0.5 + torch.rand(3, 1, 1, generator=gen)
    offset = 0.4 * torch.rand(3, 1, 1, generator=gen) - 0.2
    return (img * gain + offset).clamp(0, 1)


def self_texture(img: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A 3xSxS texture made of a normal image: a random 90-degree rotation, a flip and a cyclic shift."""
    a = torch.rot90(img, int(torch.randint(0, 4, (1,), generator=gen)), dims=(1, 2))
    if float(torch.rand(1, generator=gen)) < 0.5:
        a = torch.flip(a, dims=(2,))
    dy, dx = (int(v) for v in torch.randint(0, img.shape[-1], (2,), generator=gen))
    return torch.roll(a, shifts=(dy, dx), dims=(1, 2))


def list_images(folder: str) -> List[str]:
    files = [p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True) if p.lower().endswith(IMAGE_EXTS)]
    return sorted(files)


class AnomalySynthesizer:
    def __init__(self, size: int, source_dir: Optional[str] = None, normal_prob: float = 0.5, beta_range=(0.15, 1.0),
                 self_prob: float = 0.0, self_images: Optional[torch.Tensor] = None, color_prob: float = 0.0):
        # normal_prob = 1 switches synthesis off: the plain-RD baseline trains on normal images only.
        if not 0 <= normal_prob <= 1:
            raise ValueError(f"anomaly synthesis: normal_prob {normal_prob} must be in [0, 1]")
        if not 0 <= self_prob <= 1:
            raise ValueError(f"anomaly synthesis: self_prob {self_prob} must be in [0, 1]")
        if not 0 <= color_prob <= 1:
            raise ValueError(f"anomaly synthesis: color_prob {color_prob} must be in [0, 1]")
        if self_prob > 0 and self_images is None:
            raise ValueError("anomaly synthesis: self_prob > 0 needs the normal images (self_images)")
        self.size = size
        self.normal_prob = normal_prob
        self.beta_range = beta_range
        self.self_prob = self_prob
        self.self_images = self_images
        self.color_prob = color_prob
        self.sources: Optional[torch.Tensor] = None
        if source_dir:
            files = list_images(source_dir)
            if not files:
                raise ValueError(f"anomaly source folder {source_dir}: no images found")
            imgs = []
            for p in files:
                try:
                    with Image.open(p) as im:
                        im = im.convert("RGB").resize((size, size), Image.BILINEAR)
                        imgs.append(torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1))
                except OSError as err:
                    raise ValueError(f"anomaly source {p}: {err}") from err
            # uint8 keeps a few hundred textures in tens of MB.
            self.sources = torch.stack(imgs)
            log.info("anomaly sources: %d images from %s", len(files), source_dir)

    def texture(self, gen: torch.Generator) -> torch.Tensor:
        if self.self_prob > 0 and float(torch.rand(1, generator=gen)) < self.self_prob:
            j = int(torch.randint(0, self.self_images.shape[0], (1,), generator=gen))
            return augment_texture(self_texture(self.self_images[j], gen), gen)
        if self.sources is None:
            a = procedural_texture(self.size, gen)
        else:
            i = int(torch.randint(0, self.sources.shape[0], (1,), generator=gen))
            a = self.sources[i].float() / 255.0
        return augment_texture(a, gen)

    def __call__(self, images: torch.Tensor, gen: torch.Generator, params: Optional[list] = None,
                 fg: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """images: Nx3xSxS in [0, 1]. Returns (I_a, M_p) with M_p Nx1xSxS in {0, 1}.

        When ``params`` is a list, (A, beta) of each sample is appended to it ((None, 0.0) for normal ones).
        ``fg`` (Nx1xSxS in {0, 1}) limits each mask to that image's foreground.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"anomaly synthesis: want Nx3xHxW images, got {tuple(images.shape)}")
        n, _, h, w = images.shape
        if h != self.size or w != self.size:
            raise ValueError(f"anomaly synthesis: images are {h}x{w}, synthesiser was built for {self.size}")
        out = images.clone()
        masks = torch.zeros(n, 1, h, w)
        for i in range(n):
            if float(torch.rand(1, generator=gen)) < self.normal_prob:
                if params is not None:
                    params.append((None, 0.0))
                continue
            m = perlin_mask(self.size, gen, within=None if fg is None else fg[i])
            # The extra draw only when the option is on: the default random sequence (and so every seed's run)
            # stays what it was before the option existed.
            if self.color_prob > 0 and float(torch.rand(1, generator=gen)) < self.color_prob:
                a = colour_cast(images[i], gen)
            else:
                a = self.texture(gen)
            lo, hi = self.beta_range
            beta = lo + (hi - lo) * float(torch.rand(1, generator=gen))
            out[i] = blend(images[i], a, m, beta)
            masks[i] = m
            if params is not None:
                params.append((a, beta))
        return out, masks


def blend(i_n: torch.Tensor, a: torch.Tensor, m: torch.Tensor, beta: float) -> torch.Tensor:
    """Eq. 1: I_a = beta (M A) + (1 - beta)(M I_n) + (1 - M) I_n."""
    return beta * (m * a) + (1 - beta) * (m * i_n) + (1 - m) * i_n
