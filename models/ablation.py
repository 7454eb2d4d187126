"""Train a list of RD-RE variants on several categories, evaluate each, and tabulate (models/README.md).

Commands (run from the repository root; ``PYTHONUNBUFFERED=1`` for live progress):

  python3 -m models.ablation prepare --out .devdata
      Resized copies (256 x 256) of the development data for a device run: bottle (MVTec AD layout), the
      magnetic-tile set as an MVTec-layout category ``mtd`` (train = MT_Free except every fourth image by
      name, test = those held-out MT_Free images as good + all Blowhole, Crack and Fray images with masks;
      --mtd-fold K holds out index % 4 == K instead, for cross-validation over the good images)
      and the DTD textures; masks are resized with nearest neighbour. Also copies the MobileNetV2 TFLite file.
      --val-every K moves every K-th training image (by name) to CAT/validation/good: never trained on, it
      gives a second synthetic validation (val_ho_* in result.json) on images the model has not seen.

  python3 -m models.ablation run --data .devdata --categories bottle,mtd --out DIR [--jobs 12] [--device cuda]
      Trains every variant (VARIANTS, or --variants a,b) on every category as separate processes, --jobs at
      a time, each with one torch thread, then evaluates each checkpoint at the model resolution on the
      category's test set (models/rdre/metrics.py) for the segmentation map, the RD map and their
      combination, plus synthetic validation. Finished runs (DIR/CAT/VARIANT/result.json) are skipped, an
      unfinished one resumes from its checkpoint. --deadline S stops launching and ends running jobs after S
      seconds (they resume next time). Tables: DIR/ablation.md and DIR/ablation.json (also --report DIR2).

  python3 -m models.ablation one ...       one variant on one category (what ``run`` launches)
  python3 -m models.ablation table --out DIR   rewrite the tables from the result files
  python3 -m models.ablation pairs --out DIR   defaults minus plain RD for every DIR/RUN/CAT that has both
      (prepared with --val-every): the test's sign against both synthetic validations' (models/README.md)

Evaluation: the image score of a map is the mean of its top 100 values (the export's ``topk_mean:100``) or its
maximum; "combo" is seg / s_seg + rd / s_rd with s_* the mean top-100 score of that map over the normal images
of the synthetic validation set. Synthetic validation (never the test labels): 64 training images, half left
normal and half with a structural anomaly (a moved copy of another training image, photometrically augmented,
inside the foreground), seed 4242; it reports each map's image AUROC and pixel AP there. Each map also gets
its image AUROC for a top-k mean with k in SCORE_KS, on the test images and on both synthetic validations.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

log = logging.getLogger("models.ablation")

# Every variant spells out the settings it is about, so its meaning does not move when the trainer's defaults do.
# "paper" is the paper's reading (an I_a for every image, DTD, all components); the ablations switch one thing.
PAPER = ["--preset", "paper"]
VARIANTS: Dict[str, dict] = {
    "defaults": dict(args=["--preset", "rdre"], about="RD-RE with the trainer's defaults (since issue 17's second round: no fusion, RD map)"),
    "defaults-no-fusion": dict(args=["--preset", "rdre", "--no-fusion"],
                               about="the trainer's defaults without cross-stage fusion (the same as defaults since the second round)"),
    "color-0.5": dict(args=["--preset", "rdre", "--anomaly-color", "0.5"],
                      about="the defaults + half the anomalies colour casts of the image itself"),
    "defaults-normal-0.5": dict(args=["--preset", "rdre", "--normal-prob", "0.5"],
                                about="the defaults with half the student-stage samples normal"),
    "plain-rd": dict(args=["--preset", "plain-rd"], rd_steps=True, dtd=False, about="plain RD, same teacher (--preset plain-rd)"),
    "paper": dict(args=PAPER, about="the paper's reading: an I_a for every image, DTD, fusion + LDA + CAAMS-FF + seg head"),
    "no-fusion": dict(args=PAPER + ["--no-fusion"], about="paper without cross-stage fusion"),
    "no-fusion-builtin": dict(args=PAPER + ["--no-fusion"], dtd=False,
                              about="paper without cross-stage fusion, built-in textures instead of DTD"),
    "no-lda": dict(args=PAPER + ["--no-lda"], about="paper without LDA"),
    "no-caams": dict(args=PAPER + ["--no-caams"], about="paper without CAAMS-FF"),
    "normal-0.5": dict(args=PAPER + ["--normal-prob", "0.5"], about="paper with half the samples normal (both stages)"),
    "builtin-tex": dict(args=PAPER, dtd=False, about="paper with the built-in procedural textures instead of DTD"),
    "gate": dict(args=PAPER + ["--fusion-gate"], about="paper + zero-initialised gate on the fusion branch"),
    "fusion-norm": dict(args=PAPER + ["--fusion-norm"], about="paper + BatchNorm on the fusion's encoder branch"),
    "fg": dict(args=PAPER + ["--anomaly-fg"], about="paper + anomalies limited to the foreground"),
    "self-0.5": dict(args=PAPER + ["--anomaly-self", "0.5"], about="paper + half the anomalies made of moved normal images"),
    "seg-normal-0.5": dict(args=PAPER + ["--seg-normal-prob", "0.5"], about="paper + half the segmentation-stage samples normal"),
    "fg-self-segn": dict(args=PAPER + ["--anomaly-fg", "--anomaly-self", "0.5", "--seg-normal-prob", "0.5"],
                         about="fg + self-0.5 + seg-normal-0.5"),
    "fg-self-n0.5": dict(args=PAPER + ["--anomaly-fg", "--anomaly-self", "0.5", "--normal-prob", "0.5"],
                         about="fg + self-0.5 + half the samples normal (both stages)"),
    "anomaly-weight-1": dict(args=PAPER + ["--anomaly-weight", "1"], about="paper + extra distillation loss weight 1 inside synthetic masks"),
    "gate-fg-self-segn": dict(args=PAPER + ["--fusion-gate", "--anomaly-fg", "--anomaly-self", "0.5", "--seg-normal-prob", "0.5"],
                              about="gate + fg + self-0.5 + seg-normal-0.5"),
}
# Order of launch: what the comparison cannot do without first.
DEFAULT_ORDER = ["defaults", "plain-rd", "paper", "normal-0.5", "no-fusion", "seg-normal-0.5", "fg-self-segn", "self-0.5",
                 "fg", "fg-self-n0.5", "gate", "no-lda", "no-caams", "builtin-tex", "fusion-norm", "anomaly-weight-1",
                 "gate-fg-self-segn", "defaults-no-fusion", "no-fusion-builtin"]
MAPS = ("seg", "rd", "combo")
VAL_N, VAL_SEED, TOPK = 64, 4242, 100  # as rdre/validation.py


# --------------------------------------------------------------------------------------------- prepare


def _save_resized(src: str, dst: str, size: int, mask: bool = False) -> None:
    import numpy as np
    from PIL import Image

    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with Image.open(src) as im:
        if mask:
            a = np.asarray(im.convert("L")) >= 128
            out = Image.fromarray((a * 255).astype(np.uint8)).resize((size, size), Image.NEAREST)
        else:
            import torch

            from .rdre.preprocess import resize

            grey = im.mode in ("L", "I;16", "I")
            x = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
            y = (resize(x, size)[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
            out = Image.fromarray(y[..., 0] if grey else y, "L" if grey else "RGB")
        if dst.lower().endswith(".jpg"):
            out.save(dst, quality=90)
        else:
            out.save(dst, optimize=True)


def _train_or_validation(j: int, every: int) -> str:
    """Folder of the j-th training image: with --val-every K, every K-th one is held out in CAT/validation/good."""
    return "validation" if every > 0 and j % every == every - 1 else "train"


def prepare(args) -> int:
    """Write the resized development data (see the module docstring)."""
    import glob

    size, out = args.size, args.out
    n = 0
    bottle = os.path.join(args.mvtec, "bottle")
    if os.path.isdir(bottle):
        for j, p in enumerate(sorted(glob.glob(os.path.join(bottle, "train", "good", "*.png")))):
            _save_resized(p, os.path.join(out, "bottle", _train_or_validation(j, args.val_every), "good", os.path.basename(p)), size)
            n += 1
        for p in sorted(glob.glob(os.path.join(bottle, "test", "*", "*.png"))):
            kind = os.path.basename(os.path.dirname(p))
            _save_resized(p, os.path.join(out, "bottle", "test", kind, os.path.basename(p)), size)
            n += 1
        for p in sorted(glob.glob(os.path.join(bottle, "ground_truth", "*", "*.png"))):
            kind = os.path.basename(os.path.dirname(p))
            _save_resized(p, os.path.join(out, "bottle", "ground_truth", kind, os.path.basename(p)), size, mask=True)
    if os.path.isdir(args.mtd):
        free = sorted(glob.glob(os.path.join(args.mtd, "MT_Free", "Imgs", "*.jpg")))
        # Split of MT_Free (sorted by name): every fourth image (index % 4 == fold, 3 by default) is held out as a
        # good test image. The other folds give cross-validation: with 25 good test images one image is 4 points
        # of image AUROC, so a comparison on one fold mostly measures which images that fold holds out.
        if args.mtd_fold not in (0, 1, 2, 3):
            raise SystemExit(f"prepare: --mtd-fold {args.mtd_fold}: want 0, 1, 2 or 3")
        j = 0
        for i, p in enumerate(free):
            stem = os.path.splitext(os.path.basename(p))[0]
            if i % 4 == args.mtd_fold:
                where = "test"
            else:
                where, j = _train_or_validation(j, args.val_every), j + 1
            _save_resized(p, os.path.join(out, "mtd", where, "good", stem + ".png"), size)
            n += 1
        for cls in ("Blowhole", "Crack", "Fray"):
            for p in sorted(glob.glob(os.path.join(args.mtd, "MT_" + cls, "Imgs", "*.jpg"))):
                stem = os.path.splitext(os.path.basename(p))[0]
                kind = cls.lower()
                _save_resized(p, os.path.join(out, "mtd", "test", kind, stem + ".png"), size)
                _save_resized(p[:-4] + ".png", os.path.join(out, "mtd", "ground_truth", kind, stem + "_mask.png"), size, mask=True)
                n += 1
    if os.path.isdir(args.dtd):
        for p in sorted(glob.glob(os.path.join(args.dtd, "*", "*.jpg"))):
            _save_resized(p, os.path.join(out, "dtd", os.path.basename(os.path.dirname(p)), os.path.basename(p)), size)
            n += 1
    if args.tflite and os.path.isfile(args.tflite):
        shutil.copy(args.tflite, os.path.join(out, os.path.basename(args.tflite)))
    print(f"prepare: {n} images at {size} -> {out}")
    return 0


# --------------------------------------------------------------------------------------------- evaluation


def _scores(maps, k: int = TOPK):
    flat = maps.flatten(1)
    return flat.topk(min(k, flat.shape[1]), dim=1).values.mean(dim=1), flat.max(dim=1).values


SCORE_KS = (10, 100, 1000, 4000)


def _auroc_by_k(maps, masks) -> Dict[str, float]:
    from .rdre import metrics

    labels = (masks.flatten(1).amax(1) > 0).numpy()
    return {str(k): metrics.auroc(_scores(maps, k)[0].numpy(), labels) for k in SCORE_KS}


def evaluate_checkpoint(ckpt: str, root: str, device: str = "cpu", batch: int = 16) -> dict:
    """Test metrics (at the model resolution) and synthetic-validation metrics of a checkpoint's maps."""
    import glob

    import numpy as np
    import torch
    import torch.nn.functional as F

    from .rdre import metrics
    from .rdre.data import load_train, mask_for, test_files, train_files
    from .rdre.preprocess import preprocess_file
    from .rdre.trainer import load_model
    from .rdre.validation import raw_maps, validation_maps, validation_metrics

    model, st = load_model(ckpt)
    model.to(device).eval()
    size, mean, std = model.size, model.teacher.mean, model.teacher.std
    has_seg = model.seg is not None

    # Synthetic validation (rdre/validation.py): never the test set. On the training images (what the trainer
    # has) and, when prepare --val-every held some out, also on those (val_ho_*: images the model never saw).
    images = load_train(root, size, files=train_files(root))
    vmaps, vmasks, norm = validation_maps(model, images, device, VAL_N, VAL_SEED, batch)
    val = validation_metrics(vmaps, vmasks)
    held = sorted(glob.glob(os.path.join(root, "validation", "good", "*.png")))
    val_ho = {}
    if held:
        hmaps, hmasks, _ = validation_maps(model, load_train(root, size, files=held), device, VAL_N, VAL_SEED, batch)
        val_ho = validation_metrics(hmaps, hmasks)

    # Test set at the model resolution: masks resized with nearest neighbour.
    tmaps: Dict[str, list] = {k: [] for k in vmaps}
    masks, labels, keys = [], [], []
    files = test_files(root)
    for i in range(0, len(files), batch):
        chunk = files[i : i + batch]
        xs = []
        for kind, stem, path in chunk:
            x, h, w = preprocess_file(path, size, mean, std)
            xs.append(x)
            g = mask_for(root, kind, stem, h, w)
            if g.shape != (size, size):
                g = F.interpolate(torch.from_numpy(g.astype(np.float32))[None, None], size=(size, size), mode="nearest")[0, 0].numpy() > 0.5
            masks.append(g)
            labels.append(kind != "good")
            keys.append(f"{kind}/{stem}")
        s, r = raw_maps(model, torch.cat(xs), device)
        tmaps["rd"].append(r)
        if has_seg:
            tmaps["seg"].append(s)
            tmaps["combo"].append(s / norm["seg"] + r / norm["rd"])
    labels_np = np.array(labels)
    gx = np.concatenate([m.ravel() for m in masks])
    out = {"images": len(keys), "size": size, "norm": norm, "maps": {}, "scores": {}, "labels": labels, "keys": keys,
           "train_config": st.get("train_config", {}), "model_config": st.get("config", {}),
           "elapsed": st.get("elapsed", {}), "output": model.output, "selection": st.get("selection") or {}}
    for k in tmaps:
        m = torch.cat(tmaps[k])
        topk, mx = _scores(m)
        arr = m[:, 0].numpy().astype(np.float32)
        res = {
            "image_auroc": metrics.auroc(topk.numpy(), labels_np),
            "image_auroc_max": metrics.auroc(mx.numpy(), labels_np),
            "pixel_auroc": metrics.auroc(arr.ravel(), gx),
            "pixel_ap": metrics.average_precision(arr.ravel(), gx),
            "aupro": metrics.aupro(list(arr), masks),
            "val_image_auroc": val[k]["image_auroc"],
            "val_pixel_ap": val[k]["pixel_ap"],
        }
        if k in val_ho:
            res.update(val_ho_image_auroc=val_ho[k]["image_auroc"], val_ho_pixel_ap=val_ho[k]["pixel_ap"], val_ho_images=len(held))
        # The image score's k (the export's topk_mean:K) measured on test and on both synthetic validations, so
        # that a choice of k on synthetic validation can be checked against the test images.
        res["image_auroc_by_k"] = {str(kk): metrics.auroc(_scores(m, kk)[0].numpy(), labels_np) for kk in SCORE_KS}
        res["val_image_auroc_by_k"] = _auroc_by_k(vmaps[k], vmasks)
        if k in val_ho:
            res["val_ho_image_auroc_by_k"] = _auroc_by_k(hmaps[k], hmasks)
        out["maps"][k] = res
        out["scores"][k] = {"topk": [round(float(v), 6) for v in topk], "max": [round(float(v), 6) for v in mx]}
    return out


# --------------------------------------------------------------------------------------------- one run


def train_argv(ns, category: str, variant: str, out: str) -> List[str]:
    v = VARIANTS[variant]
    argv = ["--data", ns.data, "--category", category, "--size", str(ns.size), "--batch-size", str(ns.batch_size),
            "--seed", str(ns.seed), "--threads", str(ns.threads), "--device", ns.device, "--out", out, "--resume",
            "--log-every", "50", "--ckpt-every", "250"]
    if v.get("rd_steps"):
        argv += ["--steps-student", str(ns.steps_rd)]
    else:
        argv += ["--steps-student", str(ns.steps_student), "--steps-seg", str(ns.steps_seg)]
    if v.get("dtd", True) and ns.anomaly_source:
        argv += ["--anomaly-source", ns.anomaly_source]
    if ns.teacher_weights:
        argv += ["--teacher-weights", ns.teacher_weights]
    if ns.random_teacher:
        argv += ["--random-teacher"]
    # Each variant is one model: the floor's pairing of recipe and plain RD is what `pairs` measures from two runs.
    return argv + list(v["args"]) + ["--no-floor"]


def one(ns) -> int:
    import torch

    from . import train as train_cli

    out = os.path.join(ns.out, ns.category, ns.variant)
    os.makedirs(out, exist_ok=True)
    res_path = os.path.join(out, "result.json")
    if os.path.isfile(res_path):
        return 0
    torch.set_num_threads(max(1, ns.threads))
    argv = train_argv(ns, ns.category, ns.variant, out)
    t0 = time.perf_counter()
    rc = train_cli.main(argv)
    if rc != 0:
        return rc
    t1 = time.perf_counter()
    root = os.path.join(ns.data, ns.category)
    res = evaluate_checkpoint(os.path.join(out, "checkpoint.pt"), root, "cuda" if ns.device.startswith("cuda") else "cpu")
    res.update(category=ns.category, variant=ns.variant, about=VARIANTS[ns.variant]["about"], train_argv=argv,
               train_s=round(t1 - t0, 1), eval_s=round(time.perf_counter() - t1, 1))
    tmp = res_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f)
    os.replace(tmp, res_path)
    # The checkpoint (optimiser states included) is not needed once evaluated; keep the model weights only.
    ck = os.path.join(out, "checkpoint.pt")
    if not ns.keep_checkpoints and os.path.isfile(ck):
        os.remove(ck)
    print(f"one: {ns.category}/{ns.variant} done: train {t1 - t0:.0f} s, eval {res['eval_s']:.0f} s")
    return 0


# --------------------------------------------------------------------------------------------- tables


def load_results(out: str) -> List[dict]:
    rows = []
    if not os.path.isdir(out):
        return rows
    for cat in sorted(os.listdir(out)):
        d = os.path.join(out, cat)
        if not os.path.isdir(d):
            continue
        for var in sorted(os.listdir(d)):
            p = os.path.join(d, var, "result.json")
            if os.path.isfile(p):
                with open(p) as f:
                    rows.append(json.load(f))
    return rows


METRIC_COLS = (("image_auroc", "I-AUROC"), ("pixel_auroc", "P-AUROC"), ("pixel_ap", "AP"), ("aupro", "AUPRO"))


def _fmt(v: Optional[float]) -> str:
    return "" if v is None else f"{100 * v:.2f}"


def tables(out: str, report: Optional[str] = None, order: Optional[List[str]] = None) -> None:
    rows = load_results(out)
    order = order or DEFAULT_ORDER
    cats = sorted({r["category"] for r in rows})
    by = {(r["category"], r["variant"]): r for r in rows}
    variants = [v for v in order if any((c, v) in by for c in cats)] + sorted({r["variant"] for r in rows} - set(order))
    sizes = sorted({r.get("size") for r in rows})
    lines = ["# Ablation results", "",
             f"Metrics in %, at the model resolution ({', '.join(str(s) for s in sizes)}: images resized to it for training and test, masks with",
             "nearest neighbour). I-AUROC uses the mean of the top 100 map values; `max` the map maximum. `val` columns:",
             "synthetic validation (image AUROC / pixel AP; never the test labels). combo = seg / s_seg + rd / s_rd.", ""]
    summary = {"categories": cats, "rows": []}

    def table(title: str, get):
        lines.extend([f"## {title}", "", "| variant | map | I-AUROC | I-AUROC (max) | P-AUROC | AP | AUPRO | val I-AUROC | val AP | train s |",
                      "|---|---|---|---|---|---|---|---|---|---|"])
        for v in variants:
            for mp in MAPS:
                r = get(v, mp)
                if r is None:
                    continue
                lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                    v, mp, _fmt(r.get("image_auroc")), _fmt(r.get("image_auroc_max")), _fmt(r.get("pixel_auroc")),
                    _fmt(r.get("pixel_ap")), _fmt(r.get("aupro")), _fmt(r.get("val_image_auroc")), _fmt(r.get("val_pixel_ap")),
                    r.get("train_s", "")))
        lines.append("")

    head = list(lines)

    def get(v, mp, c):
        r = by.get((c, v))
        if r is None or mp not in r["maps"]:
            return None
        return dict(r["maps"][mp], train_s=r.get("train_s"))

    for c in cats:
        for v in variants:
            r = by.get((c, v))
            if r:
                for mp, m in r["maps"].items():
                    summary["rows"].append(dict(category=c, variant=v, map=mp, **{k: m[k] for k in m}))

    def mean_get(v, mp):
        rs = [by.get((c, v)) for c in cats]
        if not rs or any(r is None or mp not in r["maps"] for r in rs):
            return None
        keys = rs[0]["maps"][mp].keys()
        return {k: sum(r["maps"][mp][k] for r in rs) / len(rs) for k in keys}

    # One Markdown table and one JSON file per category, beside the combined files.
    for c in cats:
        lines[:] = list(head)
        table(c, lambda v, mp, c=c: get(v, mp, c))
        with open(os.path.join(out, f"{c}.md"), "w") as f:
            f.write("\n".join(lines))
        with open(os.path.join(out, f"{c}.json"), "w") as f:
            json.dump([row for row in summary["rows"] if row["category"] == c], f, indent=1)
    lines[:] = list(head)
    for c in cats:
        table(c, lambda v, mp, c=c: get(v, mp, c))
    if len(cats) > 1:
        table("mean over " + ", ".join(cats), mean_get)
    lines += ["## Variants", ""] + [f"- `{v}`: {VARIANTS[v]['about'] if v in VARIANTS else ''}" for v in variants] + [""]
    text = "\n".join(lines)
    for d in [out] + ([report] if report else []):
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "ablation.md"), "w") as f:
            f.write(text)
        with open(os.path.join(d, "ablation.json"), "w") as f:
            json.dump(summary, f, indent=1)


def _sign(x: float) -> int:
    return (x > 1e-9) - (x < -1e-9)


def paired_deltas(root: str, a: str = "defaults", b: str = "plain-rd") -> List[dict]:
    """Variant a minus variant b on the RD map, for every ROOT/RUN/CAT with both results, in points.

    t*: the test images, v*: synthetic validation on the training images, h*: on the held-out normals
    (prepare --val-every); *I: image AUROC, *A: pixel AP. Also each side's k chosen on the held-out
    validation (ties: the export's 100, then the smaller k) and the test image AUROC at that k; each side's
    test metrics ("test": {a, b}); and "floor": what the trainer's floor (rdre/floor.py) would ship, a as the
    recipe and b as plain RD, chosen on the held-out validation, with its test metrics. Its combined score
    ("both") is made from the per-image test scores with weights from each run's ``norm`` (the mean normal score
    of the validation on the training images: these files keep no per-sample held-out scores; the trainer
    normalises on the held-out normals instead)."""
    import glob

    from .rdre import floor

    rows = []
    for d in sorted(glob.glob(os.path.join(root, "*", "*"))):
        pa, pb = os.path.join(d, a, "result.json"), os.path.join(d, b, "result.json")
        if not (os.path.isfile(pa) and os.path.isfile(pb)):
            continue
        with open(pa) as fa, open(pb) as fb:
            ra, rb = json.load(fa), json.load(fb)
        ma, mb = ra["maps"]["rd"], rb["maps"]["rd"]
        if "val_ho_image_auroc" not in ma or "val_ho_image_auroc" not in mb:
            continue
        row = {"run": f"{os.path.basename(os.path.dirname(d))} {os.path.basename(d)}", "cat": os.path.basename(d)}
        for short, key in (("tI", "image_auroc"), ("vI", "val_image_auroc"), ("hI", "val_ho_image_auroc"),
                           ("tA", "pixel_ap"), ("vA", "val_pixel_ap"), ("hA", "val_ho_pixel_ap")):
            row[short] = 100 * (ma[key] - mb[key])
        for side, m in (("a", ma), ("b", mb)):
            ho, test = m["val_ho_image_auroc_by_k"], m["image_auroc_by_k"]
            best = [k for k, v in ho.items() if v == max(ho.values())]
            k = "100" if "100" in best else min(best, key=int)
            row[side] = {"k": int(k), "test_at_k": 100 * test[k], "test_at_100": 100 * test["100"]}
        row["test"] = {side: {key: 100 * m[key] for key in TEST_KEYS} for side, m in (("a", ma), ("b", mb))}
        choice = floor.choose(*({"image_auroc": m["val_ho_image_auroc"], "pixel_ap": m["val_ho_pixel_ap"]} for m in (ma, mb)))
        side = {"recipe": "a", "baseline": "b"}
        row["floor"] = dict(choice, **{key: row["test"][side[choice["map"]]][key] for key in TEST_KEYS})
        if choice["score"] == "both":
            row["floor"]["image_auroc"] = 100 * combined_auroc(ra, rb)
        else:
            row["floor"]["image_auroc"] = row["test"][side[choice["score"]]]["image_auroc"]
        rows.append(row)
    return rows


TEST_KEYS = ("image_auroc", "pixel_auroc", "pixel_ap", "aupro")


def combined_auroc(ra: dict, rb: dict) -> float:
    """Test image AUROC of the floor's combined score (rdre/floor.py) of two runs' RD maps on the same images."""
    import numpy as np

    from .rdre import floor, metrics

    if ra["keys"] != rb["keys"]:
        raise ValueError("combined score: the two runs scored different test images")
    w = floor.weights({"normal_score": ra["norm"]["rd"]}, {"normal_score": rb["norm"]["rd"]})
    s = w["recipe"] * np.array(ra["scores"]["rd"]["topk"]) + w["baseline"] * np.array(rb["scores"]["rd"]["topk"])
    return float(metrics.auroc(s, np.array(ra["labels"])))


def pairs_report(rows: List[dict]) -> str:
    """Markdown: the paired deltas, how often each validation's sign agrees with the test's, and the k choice."""
    out = ["| run | Δ I-AUROC test | train-image val | held-out val | Δ AP test | train-image val | held-out val |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['run']} | " + " | ".join(f"{r[c]:+.2f}" for c in ("tI", "vI", "hI", "tA", "vA", "hA")) + " |")
    out.append("")
    for t, v, name in (("tI", "vI", "image AUROC, validation on training images"),
                       ("tI", "hI", "image AUROC, validation on held-out normals"),
                       ("tA", "vA", "pixel AP, validation on training images"),
                       ("tA", "hA", "pixel AP, validation on held-out normals")):
        agree = sum(_sign(r[t]) == _sign(r[v]) != 0 for r in rows)
        ties = sum(_sign(r[t]) == 0 or _sign(r[v]) == 0 for r in rows)
        out.append(f"- {name}: the sign agrees with the test's in {agree} of {len(rows)} pairs ({ties} with a tie)")
    gains = [r[s]["test_at_k"] - r[s]["test_at_100"] for r in rows for s in ("a", "b")]
    if gains:
        out.append(f"- top-k chosen on the held-out validation: test image AUROC {sum(gains) / len(gains):+.2f} "
                   f"on average against k = 100, over {len(gains)} models")
    name = {"recipe": "defaults", "baseline": "plain RD", "both": "both"}
    out += ["", "The floor (rdre/floor.py): the score from plain RD where the held-out validation prefers it, else from "
            "both; the map from the side the held-out validation prefers. Its test numbers minus plain RD's.", "",
            "| run | score from | map from | Δ I-AUROC | Δ AP |", "|---|---|---|---|---|"]
    for r in rows:
        f, b = r["floor"], r["test"]["b"]
        out.append(f"| {r['run']} | {name[f['score']]} | {name[f['map']]} | {f['image_auroc'] - b['image_auroc']:+.2f} | "
                   f"{f['pixel_ap'] - b['pixel_ap']:+.2f} |")
    out += ["", "| category | runs | defaults I-AUROC / P-AUROC / AP / AUPRO | the floor | plain RD | floor − plain RD (I-AUROC, AP) |",
            "|---|---|---|---|---|---|"]
    cats = sorted({r["cat"] for r in rows})
    means = {}
    for c in cats + ["mean"]:
        rs = [r for r in rows if r["cat"] == c]
        if c == "mean":  # the categories' means, each category weighing the same
            m = {k: {key: sum(means[x][k][key] for x in cats) / len(cats) for key in TEST_KEYS} for k in ("a", "floor", "b")}
        else:
            m = {k: {key: sum((r["test"][k] if k != "floor" else r["floor"])[key] for r in rs) / len(rs) for key in TEST_KEYS}
                 for k in ("a", "floor", "b")}
            means[c] = m
        cell = lambda d: " / ".join(f"{d[key]:.2f}" for key in TEST_KEYS)  # noqa: E731
        out.append(f"| {c} | {len(rs) if c != 'mean' else ''} | {cell(m['a'])} | {cell(m['floor'])} | {cell(m['b'])} | "
                   f"{m['floor']['image_auroc'] - m['b']['image_auroc']:+.2f}, {m['floor']['pixel_ap'] - m['b']['pixel_ap']:+.2f} |")
    return "\n".join(out) + "\n"


def floor_eval(run: str, root: str, device: str = "cpu") -> dict:
    """Test metrics of a run trained with the floor (``models.train --floor``): the recipe
    (RUN/checkpoint.pt), plain RD (RUN/baseline/checkpoint.pt) and what the floor ships per RUN/floor.json (the
    score of one model or the combined score with the record's weights; the maps of one model), at the model
    resolution as evaluate_checkpoint measures them. Written to RUN/floor-eval.json."""
    import numpy as np

    from .rdre import floor, metrics

    rec = floor.read_record(run)
    if rec is None or not rec.get("checked"):
        raise ValueError(f"floor-eval: {run} has no checked floor record")
    res = {side: evaluate_checkpoint(os.path.join(run, *rel), root, device)
           for side, rel in (("recipe", ("checkpoint.pt",)), ("baseline", (floor.BASELINE_DIR, "checkpoint.pt")))}
    test = {side: {k: 100 * r["maps"]["rd"][k] for k in TEST_KEYS} for side, r in res.items()}
    shipped = dict(test[rec["map"]])
    if rec["score"] == "both":
        w = rec["weights"]
        s = sum(w[side] * np.array(res[side]["scores"]["rd"]["topk"]) for side in ("recipe", "baseline"))
        shipped["image_auroc"] = 100 * float(metrics.auroc(s, np.array(res["recipe"]["labels"])))
    else:
        shipped["image_auroc"] = test[rec["score"]]["image_auroc"]
    out = {"run": run, "data": root, "record": rec, "test": dict(test, floor=shipped), "images": res["recipe"]["images"]}
    tmp = os.path.join(run, "floor-eval.json.tmp")
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, os.path.join(run, "floor-eval.json"))
    return out


def floor_table(runs: List[dict]) -> str:
    """Markdown: per floor run, what was chosen and the test metrics of the recipe, the floor and plain RD."""
    cell = lambda d: " / ".join(f"{d[k]:.2f}" for k in TEST_KEYS)  # noqa: E731
    out = ["| run | held out | score from | map from | recipe | **the floor ships** | plain RD | floor − plain RD (I-AUROC, AP) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        t, rec = r["test"], r["record"]
        out.append(f"| {r['name']} | {rec['held_out']} | {rec['score']} | {rec['map']} | {cell(t['recipe'])} | **{cell(t['floor'])}** | "
                   f"{cell(t['baseline'])} | {t['floor']['image_auroc'] - t['baseline']['image_auroc']:+.2f}, "
                   f"{t['floor']['pixel_ap'] - t['baseline']['pixel_ap']:+.2f} |")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- runner


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 400))
            lines = f.read().decode(errors="replace").strip().splitlines()
        return lines[-1][-110:] if lines else ""
    except OSError:
        return ""


def run_all(ns) -> int:
    cats = [c for c in ns.categories.split(",") if c]
    variants = [v for v in (ns.variants.split(",") if ns.variants else DEFAULT_ORDER) if v]
    for v in variants:
        if v not in VARIANTS:
            print(f"ablation: unknown variant {v!r} (known: {', '.join(VARIANTS)})", file=sys.stderr)
            return 2
    jobs = [(c, v) for v in variants for c in cats if not os.path.isfile(os.path.join(ns.out, c, v, "result.json"))]
    print(f"ablation: {len(jobs)} runs to do ({len(cats) * len(variants) - len(jobs)} done), {ns.jobs} at a time", flush=True)
    t_start = time.monotonic()
    running: Dict[tuple, tuple] = {}
    failed = []
    env = dict(os.environ, OMP_NUM_THREADS=str(ns.threads), MKL_NUM_THREADS=str(ns.threads), PYTHONUNBUFFERED="1")
    last_print = 0.0
    stopped = False
    while jobs or running:
        late = ns.deadline and time.monotonic() - t_start > ns.deadline
        if late and not stopped:
            print(f"ablation: deadline {ns.deadline} s reached: stopping {len(running)} runs, {len(jobs)} not started", flush=True)
            for key, (proc, _, _) in running.items():
                proc.send_signal(signal.SIGTERM)
            jobs, stopped = [], True
        while jobs and len(running) < ns.jobs and not stopped:
            c, v = jobs.pop(0)
            d = os.path.join(ns.out, c, v)
            os.makedirs(d, exist_ok=True)
            cmd = [sys.executable, "-m", "models.ablation", "one", "--category", c, "--variant", v] + _common_argv(ns)
            logf = open(os.path.join(d, "run.log"), "a")
            running[(c, v)] = (subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env), logf, time.monotonic())
            print(f"ablation: start {c}/{v}", flush=True)
        for key in list(running):
            proc, logf, t0 = running[key]
            rc = proc.poll()
            if rc is None:
                continue
            logf.close()
            del running[key]
            ok = rc == 0 and os.path.isfile(os.path.join(ns.out, key[0], key[1], "result.json"))
            print(f"ablation: {'done' if ok else 'FAILED rc=%s' % rc} {key[0]}/{key[1]} in {time.monotonic() - t0:.0f} s "
                  f"(elapsed {time.monotonic() - t_start:.0f} s)", flush=True)
            if not ok:
                failed.append(key)
                print("  " + _tail(os.path.join(ns.out, key[0], key[1], "run.log")), flush=True)
            tables(ns.out, ns.report)
        if time.monotonic() - last_print > ns.progress_every and running:
            last_print = time.monotonic()
            for (c, v), _ in running.items():
                print(f"  {c}/{v}: {_tail(os.path.join(ns.out, c, v, 'train.log'))}", flush=True)
        time.sleep(1.0)
    tables(ns.out, ns.report)
    print(f"ablation: finished in {time.monotonic() - t_start:.0f} s; failed: {failed or 'none'}", flush=True)
    return 1 if failed or stopped else 0


def _common_argv(ns) -> List[str]:
    argv = ["--data", ns.data, "--out", ns.out, "--size", str(ns.size), "--batch-size", str(ns.batch_size),
            "--steps-student", str(ns.steps_student), "--steps-seg", str(ns.steps_seg), "--steps-rd", str(ns.steps_rd),
            "--seed", str(ns.seed), "--threads", str(ns.threads), "--device", ns.device]
    if ns.anomaly_source:
        argv += ["--anomaly-source", ns.anomaly_source]
    if ns.teacher_weights:
        argv += ["--teacher-weights", ns.teacher_weights]
    if ns.keep_checkpoints:
        argv += ["--keep-checkpoints"]
    if ns.random_teacher:
        argv += ["--random-teacher"]
    return argv


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder of MVTec-layout categories (e.g. .devdata)")
    p.add_argument("--out", required=True, help="output folder: OUT/CAT/VARIANT/{train.log,run.log,result.json}")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps-student", type=int, default=1000)
    p.add_argument("--steps-seg", type=int, default=450)
    p.add_argument("--steps-rd", type=int, default=1500, help="student steps of the plain-RD baseline (make train-bottle-rd)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--anomaly-source", default=None, help="DTD folder for the variants that use it")
    p.add_argument("--teacher-weights", default=None, help="TFLite file (default: the trainer's default path)")
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--random-teacher", action="store_true", help="random-initialised teacher (tests only)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.ablation", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="resized development data for a device run")
    pp.add_argument("--out", required=True)
    pp.add_argument("--size", type=int, default=256)
    pp.add_argument("--mvtec", default="../shared/data/mvtec")
    pp.add_argument("--mtd", default="../shared/data/mtd")
    pp.add_argument("--dtd", default="../shared/data/dtd")
    pp.add_argument("--tflite", default="../shared/weights/mobilenet_v2_1.0_224_quant.tflite")
    pp.add_argument("--mtd-fold", type=int, default=3, help="MT_Free images with index %% 4 == FOLD are the good test images")
    pp.add_argument("--val-every", type=int, default=0,
                    help="hold every K-th training image out of training, in CAT/validation/good, for a synthetic "
                         "validation on images the model never saw (0: none)")
    pr = sub.add_parser("run", help="train and evaluate variants x categories")
    _add_common(pr)
    pr.add_argument("--categories", default="bottle,mtd")
    pr.add_argument("--variants", default="", help="comma-separated (default: all, in launch order)")
    pr.add_argument("--jobs", type=int, default=2)
    pr.add_argument("--deadline", type=float, default=0, help="seconds after which running jobs are stopped (0: none)")
    pr.add_argument("--report", default=None, help="second folder for ablation.md / ablation.json")
    pr.add_argument("--progress-every", type=float, default=30.0)
    po = sub.add_parser("one", help="one variant on one category")
    _add_common(po)
    po.add_argument("--category", required=True)
    po.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    pt = sub.add_parser("table", help="rewrite the tables")
    pt.add_argument("--out", required=True)
    pt.add_argument("--report", default=None)
    pq = sub.add_parser("pairs", help="defaults minus plain RD per run: test against both synthetic validations")
    pq.add_argument("--out", required=True, help="folder of RUN/CAT/{defaults,plain-rd}/result.json")
    pf = sub.add_parser("floor-eval", help="test metrics of runs trained with the floor: recipe, plain RD, what ships")
    pf.add_argument("--run", action="append", default=[], help="RUN folder of models.train --floor (repeatable)")
    pf.add_argument("--data", action="append", default=[], help="its category root (one per --run, in order)")
    pf.add_argument("--table", default=None, help="instead: the table of every RUN/floor-eval.json under this folder")
    ns = p.parse_args(argv)
    if ns.cmd != "one":  # "one" leaves logging to models.train (its train.log)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if ns.cmd == "prepare":
        return prepare(ns)
    if ns.cmd == "run":
        return run_all(ns)
    if ns.cmd == "one":
        return one(ns)
    if ns.cmd == "pairs":
        rows = paired_deltas(ns.out)
        if not rows:
            raise SystemExit(f"pairs: no run in {ns.out} has both defaults and plain-rd results with held-out validation")
        sys.stdout.write(pairs_report(rows))
        return 0
    if ns.cmd == "floor-eval":
        import glob

        if ns.table:
            paths = sorted(glob.glob(os.path.join(ns.table, "**", "floor-eval.json"), recursive=True))
            if not paths:
                raise SystemExit(f"floor-eval: no floor-eval.json under {ns.table}")
            runs = []
            for path in paths:
                with open(path) as f:
                    runs.append(dict(json.load(f), name=os.path.relpath(os.path.dirname(path), ns.table)))
            sys.stdout.write(floor_table(runs))
            return 0
        if not ns.run or len(ns.run) != len(ns.data):
            raise SystemExit("floor-eval: give --run and --data in pairs, or --table DIR")
        for run, root in zip(ns.run, ns.data):
            r = floor_eval(run, root)
            sys.stdout.write(floor_table([dict(r, name=run)]))
        return 0
    tables(ns.out, ns.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
