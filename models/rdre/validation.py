"""Synthetic validation: how well a trained model's maps find anomalies it was not shown (never test labels).

Contract: ``validation_maps(model, images)`` draws ``n`` training images (seed ``seed``), leaves half of them
normal and gives the other half a structural anomaly: a moved copy of another training image (rotation, flip,
cyclic shift), photometrically augmented, blended by Eq. 1 inside a Perlin mask limited to the estimated
foreground. It returns the model's maps of them (``seg`` when the model has a segmentation head, ``rd``, and
``combo`` = seg / s_seg + rd / s_rd with s_* the mean top-k score of that map over the normal samples), the
masks and the normalisers. ``validation_metrics`` gives each map's image AUROC (top-k mean score) and pixel AP.

The anomalies are not DTD textures, so a segmentation head trained on DTD alone is measured off its training
distribution. A head trained with ``anomaly_self`` > 0 has seen anomalies of this kind: validation then favours
it (models/README.md says where this matters).
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch

from . import metrics
from .preprocess import normalize
from .synthesis import AnomalySynthesizer, foreground_mask

VAL_N, VAL_SEED, TOPK = 64, 4242, 100


def topk_scores(maps: torch.Tensor, k: int = TOPK) -> torch.Tensor:
    flat = maps.flatten(1)
    return flat.topk(min(k, flat.shape[1]), dim=1).values.mean(dim=1)


@torch.no_grad()
def raw_maps(model, x: torch.Tensor, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(segmentation map or None, RD map) of normalised images x, on the CPU, whatever the model's output."""
    ft = model.teacher(x.to(device))
    d = model.distance_maps(ft, model.student(ft))
    rd = model.mapper.rd_map(d)
    seg = None
    if model.seg is not None:
        seg = model.mapper.smooth(model.mapper.upsample(model.seg(model.seg_input(d))))
        seg = seg.cpu()
    return seg, rd.cpu()


@torch.no_grad()
def validation_maps(model, images: torch.Tensor, device="cpu", n: int = VAL_N, seed: int = VAL_SEED, batch: int = 16):
    """(maps {name: N x 1 x S x S}, masks N x 1 x S x S, normalisers {seg, rd}) on synthetic anomalies."""
    was_training = model.training
    model.eval()
    size = images.shape[-1]
    gen = torch.Generator().manual_seed(seed)
    synth = AnomalySynthesizer(size, None, normal_prob=0.5, self_prob=1.0, self_images=images)
    idx = torch.randint(0, images.shape[0], (n,), generator=gen)
    fg = torch.stack([foreground_mask(images[int(i)]) for i in idx])
    xv, mv = synth(images[idx], gen, fg=fg)
    segs, rds = [], []
    for i in range(0, n, batch):
        s, r = raw_maps(model, normalize(xv[i : i + batch], model.teacher.mean, model.teacher.std), device)
        rds.append(r)
        if s is not None:
            segs.append(s)
    maps: Dict[str, torch.Tensor] = {"rd": torch.cat(rds)}
    if segs:
        maps["seg"] = torch.cat(segs)
    normal = mv.flatten(1).amax(1) == 0
    norm = {k: float(topk_scores(v)[normal].mean()) for k, v in maps.items()}
    if "seg" in maps:
        maps["combo"] = maps["seg"] / norm["seg"] + maps["rd"] / norm["rd"]
    model.train(was_training)
    return maps, mv, norm


def validation_metrics(maps: Dict[str, torch.Tensor], masks: torch.Tensor) -> Dict[str, Dict[str, float]]:
    labels = (masks.flatten(1).amax(1) > 0).numpy()
    gt = masks[:, 0].numpy().ravel() > 0.5
    out = {}
    for k, m in maps.items():
        out[k] = {
            "image_auroc": metrics.auroc(topk_scores(m).numpy(), labels),
            "pixel_ap": metrics.average_precision(m[:, 0].numpy().ravel(), gt),
        }
    return out


def choose_output(val: Dict[str, Dict[str, float]]) -> str:
    """The exported map chosen on synthetic validation: "seg" or "rd", whichever has the larger image AUROC +
    pixel AP (ties keep "seg", the paper's output)."""
    if "seg" not in val:
        return "rd"
    s = val["seg"]["image_auroc"] + val["seg"]["pixel_ap"]
    r = val["rd"]["image_auroc"] + val["rd"]["pixel_ap"]
    return "rd" if r > s else "seg"
