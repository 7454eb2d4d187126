"""Numpy evaluator for maps written by models.predict (until/besides the Go ``rdre eval``).

Usage: ``python3 -m models.evaluate --maps DIR --gt CATEGORY_ROOT [--scores DIR/scores.json]`` prints image
AUROC, pixel AUROC, pixel AP, AUPRO (FPR <= 0.3) and F1-max values as JSON, all over the full test set at the
maps' resolution (the original image size when written by models.predict).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np

from .rdre import metrics
from .rdre.data import mask_for, test_files

log = logging.getLogger("models.evaluate")


def evaluate(maps_dir: str, gt_root: str, scores_path: str) -> dict:
    with open(scores_path) as f:
        scores = json.load(f)
    maps, masks, img_scores, img_labels = [], [], [], []
    for kind, stem, _ in test_files(gt_root):
        key = f"{kind}/{stem}"
        mp = os.path.join(maps_dir, kind, stem + ".npy")
        if key not in scores or not os.path.isfile(mp):
            raise ValueError(f"evaluate: no map or score for {key} in {maps_dir}")
        m = np.load(mp).astype(np.float32)
        g = mask_for(gt_root, kind, stem, m.shape[0], m.shape[1])
        maps.append(m)
        masks.append(g)
        img_scores.append(scores[key])
        img_labels.append(kind != "good")
    px = np.concatenate([m.ravel() for m in maps])
    gx = np.concatenate([g.ravel() for g in masks])
    out = {
        "images": len(maps),
        "image_auroc": metrics.auroc(np.array(img_scores), np.array(img_labels)),
        "pixel_auroc": metrics.auroc(px, gx),
        "pixel_ap": metrics.average_precision(px, gx),
        "aupro": metrics.aupro(maps, masks),
    }
    out["pixel_f1_max"], out["pixel_f1_threshold"] = metrics.f1_max(px, gx)
    out["image_f1_max"], out["image_f1_threshold"] = metrics.f1_max(np.array(img_scores), np.array(img_labels))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.evaluate", description="Metrics of predicted maps.")
    p.add_argument("--maps", required=True)
    p.add_argument("--gt", required=True, help="MVTec-layout category root with ground_truth/")
    p.add_argument("--scores", default=None, help="scores.json (default MAPS/scores.json)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        res = evaluate(args.maps, args.gt, args.scores or os.path.join(args.maps, "scores.json"))
    except (ValueError, OSError) as err:
        log.error("%s", err)
        return 1
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
