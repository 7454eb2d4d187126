"""Golden files for the Go side's parity test: a small seeded RD-RE, its ONNX file and PyTorch's outputs.

Usage: ``/usr/bin/python3 -m models.golden --out DIR --size 64 --seed 0 IMAGE...`` writes DIR/model.onnx,
DIR/input_i.npy (pre-processed 1x3xSxS float32), DIR/map_i.npy and DIR/rdmap_i.npy (anomaly_map and
rd_map resized back to the image's H x W, float32) and DIR/golden.json. The teacher is random-initialised
(no TFLite file needed) and BN statistics are perturbed with the seed so the maps are not flat.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np
import torch

from .export import export_model
from .rdre.model import RDRE
from .rdre.preprocess import map_to_image, preprocess_file
from .rdre.teacher import build_teacher

log = logging.getLogger("models.golden")


def build_model(size: int, seed: int) -> RDRE:
    torch.manual_seed(seed)
    model = RDRE(build_teacher("mobilenet_v2"), size, score="topk_mean:10")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                # Fresh BNs are identities; random statistics exercise the exported BN arithmetic.
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.golden", description="Write golden files for the ONNX parity test.")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("images", nargs="+")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    try:
        model = build_model(args.size, args.seed)
    except ValueError as err:
        log.error("golden: %s", err)
        return 2
    inputs = []
    for path in args.images:
        try:
            inputs.append(preprocess_file(path, args.size, model.teacher.mean, model.teacher.std))
        except ValueError as err:
            log.error("golden: %s", err)
            return 1
    info = dict(category="golden", seed=args.seed, model_version=f"golden-{args.size}-seed{args.seed}")
    export_model(model, os.path.join(args.out, "model.onnx"), info)
    entries = []
    for i, (path, (x, h, w)) in enumerate(zip(args.images, inputs)):
        with torch.no_grad():
            amap, score, rd = model(x)
        np.save(os.path.join(args.out, f"input_{i}.npy"), x.numpy().astype(np.float32))
        np.save(os.path.join(args.out, f"map_{i}.npy"), map_to_image(amap, h, w)[0, 0].numpy().astype(np.float32))
        np.save(os.path.join(args.out, f"rdmap_{i}.npy"), map_to_image(rd, h, w)[0, 0].numpy().astype(np.float32))
        entries.append({"path": path, "score": float(score[0]), "width": w, "height": h})
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump({"images": entries, "size": args.size}, f, indent=1)
    log.info("golden: %d images written to %s", len(entries), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
