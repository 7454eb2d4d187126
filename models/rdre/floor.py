"""The floor (issue 17): a model the trainer ships is not worse than plain reverse distillation on its own data.

Contract: ``held_out(n)`` splits n training images (sorted by name) into the ones the models train on and every
``HOLD_OUT_EVERY``-th one, which neither model sees. Both the recipe and plain RD (``--preset plain-rd``, the
same teacher, seed and number of steps) train on the first part; ``validate`` runs the synthetic validation of
validation.py on the held-out normals through the map each model exports. ``choose`` then takes, for each of the
two outputs the floor is about, the model that does better there: the image ``score`` on synthetic image AUROC,
the ``anomaly_map`` (and ``rd_map``) on synthetic pixel AP. Ties keep the recipe. When the two choices differ,
``FloorModel`` runs both students on the one frozen teacher and exports the score of one with the maps of the
other. The record of the comparison (``floor.json`` beside the checkpoint, ``rdre.floor`` in the ONNX metadata)
says what was chosen and on which numbers. Never test labels: the choice sees only training images.

Why held-out normals: plain RD's student saw every training image clean at every step, so a validation on those
images favours it (models/README.md, "Fifth round": on held-out normals the comparison follows the test images'
sign in 10 of 12 runs, on the training images in 7 of 12).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Tuple

import torch
from torch import nn

from .validation import validation_maps, validation_metrics

HOLD_OUT_EVERY = 5
# Below this many training images the held-out part (every 5th) is too small to compare on: the floor is not
# checked and the record says so.
MIN_IMAGES = 20
RECORD = "floor.json"
BASELINE_DIR = "baseline"
FORMAT = 1


def held_out(n: int, every: int = HOLD_OUT_EVERY) -> Tuple[List[int], List[int]]:
    """(indices to train on, held-out indices) of n images in name order: every `every`-th image is held out."""
    if every < 2:
        raise ValueError(f"floor: hold out every {every}-th image: want 2 or more")
    held = [i for i in range(n) if i % every == every - 1]
    train = [i for i in range(n) if i % every != every - 1]
    return train, held


def validate(model, held_images: torch.Tensor, device="cpu") -> Dict[str, object]:
    """Synthetic image AUROC (top-100 mean) and pixel AP of the map the model exports, on held-out normals."""
    maps, masks, _ = validation_maps(model, held_images, device)
    key = getattr(model, "output", "rd") if getattr(model, "output", "rd") in maps else "rd"
    m = validation_metrics({key: maps[key]}, masks)[key]
    return {"map": key, "image_auroc": float(m["image_auroc"]), "pixel_ap": float(m["pixel_ap"])}


def choose(recipe: Dict[str, float], baseline: Dict[str, float]) -> Dict[str, str]:
    """Which model gives each output: "recipe" unless the baseline is strictly better on held-out validation."""
    return {
        "score": "baseline" if baseline["image_auroc"] > recipe["image_auroc"] else "recipe",
        "map": "baseline" if baseline["pixel_ap"] > recipe["pixel_ap"] else "recipe",
    }


def record(recipe: Dict[str, object], baseline: Dict[str, object], held: int, every: int = HOLD_OUT_EVERY) -> Dict[str, object]:
    out = {"format": FORMAT, "checked": True, "held_out": held, "every": every, "baseline_preset": "plain-rd",
           "recipe": recipe, "baseline": baseline}
    out.update(choose(recipe, baseline))
    return out


def unchecked(why: str) -> Dict[str, object]:
    return {"format": FORMAT, "checked": False, "why": why, "score": "recipe", "map": "recipe"}


def summary(rec: Dict[str, object]) -> str:
    """One line for logs and model cards."""
    if not rec.get("checked"):
        return f"floor not checked: {rec.get('why', '')}"
    r, b = rec["recipe"], rec["baseline"]
    src = {"recipe": "the recipe", "baseline": "plain RD"}
    return ("floor: on %d held-out normals, synthetic image AUROC %.4f (recipe) vs %.4f (plain RD), pixel AP %.4f vs %.4f; "
            "score from %s, anomaly map from %s" % (rec["held_out"], r["image_auroc"], b["image_auroc"], r["pixel_ap"],
                                                    b["pixel_ap"], src[rec["score"]], src[rec["map"]]))


def thresholds(rec: Dict[str, object], recipe: Dict[str, float], baseline: Dict[str, float]) -> Dict[str, float]:
    """The suggested thresholds of what the record ships: each belongs to the output it thresholds (pixel* to
    the map, image* to the score)."""
    side = {"recipe": recipe or {}, "baseline": baseline or {}}
    th = {k: v for k, v in side[rec["map"]].items() if k.startswith("pixel")}
    th.update({k: v for k, v in side[rec["score"]].items() if k.startswith("image")})
    return th


def write_record(out_dir: str, rec: Dict[str, object]) -> str:
    path = os.path.join(out_dir, RECORD)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(rec, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_record(out_dir: str):
    """The floor record beside a checkpoint, or None when the run made none (trained without the floor)."""
    path = os.path.join(out_dir, RECORD)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"floor record {path}: {err}") from err
    if not isinstance(rec, dict) or rec.get("format") != FORMAT or rec.get("score") not in ("recipe", "baseline") \
            or rec.get("map") not in ("recipe", "baseline"):
        raise ValueError(f"floor record {path}: not a format-{FORMAT} record with score and map set to recipe or baseline")
    return rec


class FloorModel(nn.Module):
    """Two trained models on one frozen teacher: ``anomaly_map`` and ``rd_map`` from map_model, ``score`` from
    score_model. It exports like an RDRE (the attributes export.py reads are the map model's, the score's
    spec is the score model's)."""

    def __init__(self, map_model: nn.Module, score_model: nn.Module):
        super().__init__()
        if map_model.size != score_model.size or map_model.teacher.name != score_model.teacher.name:
            raise ValueError(f"floor: the models differ in teacher or size ({map_model.teacher.name} at {map_model.size} "
                             f"against {score_model.teacher.name} at {score_model.size})")
        a, b = map_model.teacher.state_dict(), score_model.teacher.state_dict()
        if a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in a):
            raise ValueError("floor: the two models' teachers have different weights; they must share one frozen teacher")
        score_model.teacher = map_model.teacher  # one teacher in the graph, counted once
        self.map_model, self.score_model = map_model, score_model
        self.size, self.teacher = map_model.size, map_model.teacher
        self.mapper = score_model.mapper
        self.output, self.config = map_model.output, map_model.config

    def forward(self, image: torch.Tensor):
        ft = self.teacher(image)
        anomaly_map, _, rd_map = self.map_model.maps(ft)
        _, score, _ = self.score_model.maps(ft)
        return anomaly_map, score, rd_map
