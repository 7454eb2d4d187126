"""Side-by-side timing of the exact metrics: ``rdre eval`` against the plain numpy implementation of the same
definitions (``models/rdre/metrics.py``), in one run, on the same files.

Usage: ``/usr/bin/python3 -m models.bench_metrics --rdre bin/rdre [--n 20] [--size 1024] [--rounds 3]``
(``make bench-metrics-numpy``).

The set: ``--n`` float32 maps of ``--size`` squared, a quarter of them good, the others with one to three
disc defects raised above noise (nearly every score distinct, as with real smoothed anomaly maps), written
as ``.npy`` maps and PNG masks in the MVTec AD layout. numpy computes image AUROC (map maximum), pixel
AUROC, pixel AP and AUPRO (FPR 0.3) from arrays already in memory; ``rdre eval`` computes the same metrics
and more (AUPRO at 0.05 too, F1-max) and also reads and checks the files, so the comparison favours numpy.
Both metric sets must agree to 1e-9, or the run fails. Each round times both, in turns; the report gives
the median CPU time (user + system, steadier than wall time on a shared machine) and wall time, and their
ratios. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from .rdre import metrics


def make_set(root: str, n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    kinds = ["good", "crack", "hole", "scratch"]
    maps, masks = [], []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        kind = kinds[i % 4]
        mask = np.zeros((size, size), dtype=bool)
        if kind != "good":
            for _ in range(1 + int(rng.integers(3))):
                cx, cy, rad = int(rng.integers(size)), int(rng.integers(size)), 2 + int(rng.integers(size // 10))
                mask |= (xx - cx) ** 2 + (yy - cy) ** 2 <= rad * rad
        m = (0.3 * rng.random((size, size))).astype(np.float32)
        m[mask] += np.float32(0.25)
        stem = f"{i:03d}"
        os.makedirs(os.path.join(root, "maps", kind), exist_ok=True)
        os.makedirs(os.path.join(root, "gt", "test", kind), exist_ok=True)
        np.save(os.path.join(root, "maps", kind, stem + ".npy"), m)
        Image.new("L", (size, size)).save(os.path.join(root, "gt", "test", kind, stem + ".png"))
        if kind != "good":
            os.makedirs(os.path.join(root, "gt", "ground_truth", kind), exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(root, "gt", "ground_truth", kind, stem + "_mask.png"))
        maps.append(m)
        masks.append(mask)
    return maps, masks


def numpy_metrics(maps, masks):
    labels = np.array([g.any() for g in masks])
    pix = np.concatenate([m.ravel() for m in maps])
    gt = np.concatenate([g.ravel() for g in masks])
    return {
        "image_auroc": metrics.auroc(np.array([m.max() for m in maps]), labels),
        "pixel_auroc": metrics.auroc(pix, gt),
        "pixel_ap": metrics.average_precision(pix, gt),
        "pixel_aupro": metrics.aupro(maps, masks, 0.3),
    }


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.bench_metrics", description=__doc__.split("\n\n")[0])
    p.add_argument("--rdre", required=True, help="the rdre binary")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    ns = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        maps, masks = make_set(root, ns.n, ns.size)
        rows = {"numpy": [], "rdre eval": []}
        for r in range(ns.rounds):
            c0, t0 = cpu_self(), time.perf_counter()
            want = numpy_metrics(maps, masks)
            rows["numpy"].append((cpu_self() - c0, time.perf_counter() - t0))
            c0, t0 = cpu_children(), time.perf_counter()
            out = subprocess.run([ns.rdre, "eval", "--maps", os.path.join(root, "maps"), "--gt", os.path.join(root, "gt")],
                                 check=True, capture_output=True, text=True).stdout
            rows["rdre eval"].append((cpu_children() - c0, time.perf_counter() - t0))
            got = json.loads(out)
            for k, v in want.items():
                if abs(got[k] - v) > 1e-9:
                    print(f"bench_metrics: {k}: rdre eval {got[k]!r}, numpy {v!r}", file=sys.stderr)
                    return 1
            print(f"round {r + 1}: numpy {rows['numpy'][-1][0]:.2f} CPU-s, rdre eval {rows['rdre eval'][-1][0]:.2f} CPU-s", flush=True)
    med = {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in rows.items()}
    print(f"\n{ns.n} maps of {ns.size}x{ns.size}, {ns.rounds} rounds, medians; the metrics agree to 1e-9\n")
    print("| | CPU (user+sys) | wall |\n|---|---|---|")
    for k, (c, w) in med.items():
        print(f"| {k} | {c:.2f} s | {w:.2f} s |")
    (nc, nw), (gc, gw) = med["numpy"], med["rdre eval"]
    print(f"| numpy / rdre eval | {nc / gc:.1f}x | {nw / gw:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
