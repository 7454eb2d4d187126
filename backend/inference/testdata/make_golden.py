"""Tiny stand-in for `python3 -m models.golden`, used by the Go parity tests of backend/inference.

It builds a small random-weight network with the RD-RE ONNX contract (input `image` N x 3 x S x S,
outputs `anomaly_map` N x 1 x S x S, `score` N, `rd_map` N x 1 x S x S, opset 17, dynamic N, the
`rdre.*` metadata keys), exports it, and writes the PyTorch reference for each image:

    DIR/model.onnx, DIR/input_i.npy (1x3xSxS pre-processed), DIR/map_i.npy and DIR/rdmap_i.npy
    (H x W, resized back to the image's size), DIR/golden.json.

The pre-processing is written out here on purpose (PIL decode, convert("RGB"), /255, interpolate with
antialias, normalise) so the Go side is checked against PyTorch itself rather than against itself.
ImageNet mean/std are used so a normalisation bug cannot hide behind mean = std = 0.5.

`--variant` writes deliberately wrong models for the error tests:
  wrong-input   the input is called `pixels` instead of `image`
  wrong-shape   the input is N x 1 x S x S (grey) and the map has S/2 resolution
  no-metadata   a valid graph without the rdre.* metadata
  symbolic      a valid model whose output H x W are symbolic in the graph (resized to the input's
                runtime size), as PyTorch's exporter produces for the real RD-RE
  symbolic-bad  symbolic output H x W that turn out to be S/2 at run time
  nan           a right-shaped model whose anomaly map is NaN (a broken export)
Run with Debian's /usr/bin/python3 (torch, onnx, numpy, PIL).
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Tiny(nn.Module):
    """A few convolutions whose output depends on every input pixel's neighbourhood, so a shifted or
    mis-resized input changes the map."""

    def __init__(self, in_ch=3, half=False, symbolic=0, nan=False):
        super().__init__()
        self.nan = nan
        self.c1 = nn.Conv2d(in_ch, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 1, 3, padding=1)
        self.half = half
        self.symbolic = symbolic  # 0: static shapes; 1: resize to the input's runtime size; 2: to half of it

    def forward(self, image):
        h = torch.relu(self.c1(image))
        amap = torch.sigmoid(self.c2(h))
        if self.symbolic:
            hw = [d // self.symbolic for d in image.shape[-2:]]
            amap = F.interpolate(F.avg_pool2d(amap, 2), size=hw, mode="bilinear", align_corners=False)
            h = F.interpolate(F.avg_pool2d(h, 2), size=hw, mode="bilinear", align_corners=False)
        if self.half:
            amap = F.avg_pool2d(amap, 2)
        rd = h.abs().mean(dim=1, keepdim=True)
        if self.half:
            rd = F.avg_pool2d(rd, 2)
        if self.nan:
            amap = amap * torch.sqrt(torch.tensor(-1.0))
        score = amap.flatten(1).max(dim=1).values
        return amap, score, rd


def preprocess(path, size):
    img = Image.open(path).convert("RGB")
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255.0)
    x = x.unsqueeze(0)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std, img.width, img.height


def export(model, path, size, variant, teacher="tiny-test"):
    in_ch = 1 if variant == "wrong-shape" else 3
    in_name = "pixels" if variant == "wrong-input" else "image"
    dummy = torch.zeros(2, in_ch, size, size)
    torch.onnx.export(
        model, (dummy,), path, opset_version=17,
        input_names=[in_name], output_names=["anomaly_map", "score", "rd_map"],
        dynamic_axes={in_name: {0: "N"}, "anomaly_map": {0: "N"}, "score": {0: "N"}, "rd_map": {0: "N"}},
    )
    if variant == "no-metadata":
        return
    m = onnx.load(path)
    meta = {
        "rdre.format_version": "1",
        "rdre.input_size": str(size),
        "rdre.mean": ",".join(str(v) for v in MEAN),
        "rdre.std": ",".join(str(v) for v in STD),
        "rdre.resize": "bilinear-antialias",
        "rdre.teacher": teacher,
        "rdre.category": "testcat",
        "rdre.score": "max",
        "rdre.thresholds": json.dumps({"pixel": 0.5, "image": 0.6}),
        "rdre.model_version": "test",
    }
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher", default="tiny-test", help="value of rdre.teacher (bench tests name a real one)")
    ap.add_argument("--variant", default="", choices=["", "wrong-input", "wrong-shape", "no-metadata", "symbolic", "symbolic-bad", "nan"])
    ap.add_argument("images", nargs="*")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    symbolic = {"symbolic": 1, "symbolic-bad": 2}.get(a.variant, 0)
    model = Tiny(in_ch=1 if a.variant == "wrong-shape" else 3, half=a.variant == "wrong-shape", symbolic=symbolic, nan=a.variant == "nan").eval()
    export(model, os.path.join(a.out, "model.onnx"), a.size, a.variant, a.teacher)

    golden = {"images": [], "size": a.size}
    if a.variant and a.variant != "symbolic":
        # A wrong model has no meaningful reference output; only the file is wanted.
        a.images = []
    with torch.no_grad():
        for i, path in enumerate(a.images):
            x, w, h = preprocess(path, a.size)
            amap, score, rd = model(x)
            amap = F.interpolate(amap, size=(h, w), mode="bilinear", align_corners=False)
            rd = F.interpolate(rd, size=(h, w), mode="bilinear", align_corners=False)
            np.save(os.path.join(a.out, f"input_{i}.npy"), x.numpy().astype(np.float32))
            np.save(os.path.join(a.out, f"map_{i}.npy"), amap[0, 0].numpy().astype(np.float32))
            np.save(os.path.join(a.out, f"rdmap_{i}.npy"), rd[0, 0].numpy().astype(np.float32))
            golden["images"].append({"path": path, "score": float(score[0]), "width": w, "height": h})
    with open(os.path.join(a.out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
