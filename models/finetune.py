"""Fine-tuning with real masks: ``models.train`` whose segmentation stage also learns from real defects.

Usage: ``python3 -m models.finetune --real-list FILE.json [--real-prob P] <every models.train option>``

Contract:

- ``FILE.json`` is a list of ``{"image": PATH, "mask": PATH}``: defective images and their masks (any mask
  encoding ``models.rdre.data.decode_mask`` reads: non-zero = defect). Each is resized to the model's input
  as the training images are (bilinear, antialias); each mask by area, then thresholded at 0.5.
- In the segmentation stage each sample of a batch is replaced, with probability ``--real-prob`` (default
  0.5), by a real image drawn uniformly, with its mask; the others keep their synthetic anomaly (or stay
  normal), so real and synthetic anomalies mix in every batch. The draws come from the trainer's own
  generator, so a run stays deterministic and resumable. The student stage is unchanged: it learns the
  normal appearance, and real defects there would teach it to reproduce them.
- The data fingerprint and the checkpoint are those of ``models.train``; the real images' and masks' paths
  and a sha256 over their files are written to ``OUT/real_images.json``.
- The exported map is the segmentation head's (``--output seg``) unless ``--output`` says otherwise: the
  real masks teach the head, and the trainer's default, the student's RD map, would not show what they taught.
- Everything else, progress stream included (``--progress-json``), is ``models.train``'s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from typing import List, Tuple

import torch
import torch.nn.functional as F

from . import train as _train

def load_real(entries: List[dict], size: int) -> Tuple[torch.Tensor, torch.Tensor, str]:
    """(N x 3 x S x S images in [0, 1], N x 1 x S x S binary masks, sha256 over the files)."""
    from .rdre.data import decode_mask
    from .rdre.preprocess import load_rgb, resize

    imgs, masks = [], []
    h = hashlib.sha256()
    for e in entries:
        x = load_rgb(e["image"])
        m = decode_mask(e["mask"])
        if m.shape != tuple(x.shape[-2:]):
            raise ValueError(f"real image {e['image']}: mask {e['mask']} is {m.shape[1]}x{m.shape[0]}, the image {x.shape[-1]}x{x.shape[-2]}")
        if not m.any():
            raise ValueError(f"real image {e['image']}: its mask {e['mask']} marks no defect")
        imgs.append(resize(x, size))
        mt = torch.from_numpy(m.astype("float32"))[None, None]
        masks.append((F.interpolate(mt, size=(size, size), mode="area") > 0.5).float())
        for p in (e["image"], e["mask"]):
            with open(p, "rb") as f:
                h.update(f.read())
    if not imgs:
        raise ValueError("--real-list names no image")
    return torch.cat(imgs), torch.cat(masks), h.hexdigest()


def make_trainer_class(base, real_x: torch.Tensor, real_m: torch.Tensor, prob: float):
    class FinetuneTrainer(base):
        """The trainer, with real defective images mixed into the segmentation stage's batches."""

        _in_seg = False

        def seg_step(self):
            self._in_seg = True
            try:
                return super().seg_step()
            finally:
                self._in_seg = False

        def _batch(self, synth=None):
            idx, xa, m = super()._batch(synth)
            if not self._in_seg:
                return idx, xa, m  # the student stage: unchanged
            n = xa.shape[0]
            pick = torch.rand(n, generator=self.gen) < prob
            which = torch.randint(0, real_x.shape[0], (n,), generator=self.gen)
            if bool(pick.any()):
                xa, m = xa.clone(), m.clone()
                sel = pick.nonzero().flatten()
                xa[sel] = real_x[which[sel]].to(xa.device)
                m[sel] = real_m[which[sel]].to(m.device)
            return idx, xa, m

    return FinetuneTrainer


def main(argv=None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--real-list", required=True, help="JSON list of {image, mask} file pairs: real defects with masks")
    pre.add_argument("--real-prob", type=float, default=0.5, help="share of segmentation-stage samples replaced by real defects")
    ours, rest = pre.parse_known_args(argv)
    if not 0 < ours.real_prob <= 1:
        print(f"models.finetune: --real-prob {ours.real_prob} outside (0, 1]", file=sys.stderr)
        return 2
    args = _train.parse_args(rest)
    if not any(a == "--output" or a.startswith("--output=") for a in rest):
        args.output = "seg"
    # The floor compares on synthetic anomalies only; it could trade the head that learnt the real defects for
    # plain RD's map, so fine-tuning runs without it unless asked.
    if "--floor" not in rest:
        args.floor = False
    with open(ours.real_list, encoding="utf-8") as f:
        entries = json.load(f)
    try:
        real_x, real_m, digest = load_real(entries, args.size)
    except (ValueError, KeyError, OSError) as err:
        logging.getLogger("models.train").error("train: real images: %s", err)
        print(f"models.finetune: {err}", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "real_images.json"), "w", encoding="utf-8") as f:
        json.dump({"images": [e["image"] for e in entries], "masks": [e["mask"] for e in entries], "sha256": digest,
                   "real_prob": ours.real_prob}, f, indent=1)
    base = _train.Trainer
    _train.Trainer = make_trainer_class(base, real_x, real_m, ours.real_prob)
    try:
        try:
            return _train.run(args)
        except (ValueError, FileNotFoundError, FloatingPointError) as err:
            logging.getLogger("models.train").error("train: %s", err)
            return 1
    finally:
        _train.Trainer = base


if __name__ == "__main__":
    sys.exit(main())
