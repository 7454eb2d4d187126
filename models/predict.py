"""Write anomaly maps and scores of a category's test set for the evaluator.

Usage: ``python3 -m models.predict --model X.onnx|checkpoint.pt --data CATEGORY_ROOT --out DIR`` writes
DIR/KIND/NNN.npy (float32 map at the test image's original size) and DIR/scores.json ({"KIND/NNN": score}).
An .onnx model runs in ONNX Runtime (the library the Go server uses), anything else is a training checkpoint
run in PyTorch. ``--map rd`` writes the plain RD map (and its max/top-k score) instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import numpy as np
import torch

from .rdre import floor
from .rdre.anomaly_map import AnomalyMapper
from .rdre.data import test_files
from .rdre.preprocess import map_to_image, preprocess_file

log = logging.getLogger("models.predict")


class OnnxPredictor:
    def __init__(self, path: str):
        from .rdre.ort import OrtSession

        self.sess = OrtSession(path)
        self.size = int(self.sess.metadata("rdre.input_size"))
        self.mean = [float(v) for v in self.sess.metadata("rdre.mean").split(",")]
        self.std = [float(v) for v in self.sess.metadata("rdre.std").split(",")]
        self.score_spec = self.sess.metadata("rdre.score")

    def __call__(self, x: torch.Tensor):
        amap, score, rd = self.sess.run({"image": x.numpy()}, ["anomaly_map", "score", "rd_map"])
        return torch.from_numpy(amap), torch.from_numpy(score), torch.from_numpy(rd)


class TorchPredictor:
    def __init__(self, path: str):
        from .rdre.trainer import load_model

        self.model, _ = load_model(path)
        self.size = self.model.size
        self.mean, self.std = self.model.teacher.mean, self.model.teacher.std
        self.score_spec = self.model.mapper.score_spec

    def __call__(self, x: torch.Tensor):
        with torch.no_grad():
            return self.model(x)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.predict", description="Anomaly maps + scores for a test set.")
    p.add_argument("--model", required=True, help="exported .onnx file or training checkpoint")
    p.add_argument("--data", required=True, help="MVTec-layout category root")
    p.add_argument("--out", required=True)
    p.add_argument("--map", default="anomaly", choices=["anomaly", "rd"], help="which output map to write")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(max(1, args.threads))
    try:
        pred = OnnxPredictor(args.model) if args.model.endswith(".onnx") else TorchPredictor(args.model)
        files = test_files(args.data)
    except (ValueError, FileNotFoundError, OSError) as err:
        log.error("predict: %s", err)
        return 1
    # The floor's combined score has no single map; --map rd scores the RD map with the per-map kind.
    rd_scorer = AnomalyMapper(pred.size, 0, floor.inner_spec(pred.score_spec))
    scores = {}
    t0 = time.perf_counter()
    for kind, stem, path in files:
        x, h, w = preprocess_file(path, pred.size, pred.mean, pred.std)
        amap, score, rd = pred(x)
        m = amap if args.map == "anomaly" else rd
        s = score if args.map == "anomaly" else rd_scorer.score(rd)
        os.makedirs(os.path.join(args.out, kind), exist_ok=True)
        np.save(os.path.join(args.out, kind, stem + ".npy"), map_to_image(m, h, w)[0, 0].numpy().astype(np.float32))
        scores[f"{kind}/{stem}"] = float(s[0])
    with open(os.path.join(args.out, "scores.json"), "w") as f:
        json.dump(scores, f, indent=1, sort_keys=True)
    log.info("predict: %d images in %.1f s -> %s", len(files), time.perf_counter() - t0, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
