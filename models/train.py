"""Command line: train RD-RE on a dataset's normal training images (see models/README.md, docs/datasets.md).

Example:
  /usr/bin/python3 -m models.train --data ../shared/data/mvtec --category bottle \
      --teacher mobilenet_v2 --anomaly-source ../shared/data/dtd --out build/runs/bottle
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time

import torch

from .rdre import floor
from .rdre.data import LAYOUTS, fingerprint, load_train, train_list
from .rdre.tflite_convert import default_tflite_path
from .rdre.trainer import TrainConfig, Trainer

log = logging.getLogger("models.train")


def category_root(data: str, category: str) -> str:
    if category and os.path.isdir(os.path.join(data, category)):
        return os.path.join(data, category)
    return data


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name}: this PyTorch ({torch.__version__}) sees no CUDA device")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"device {name!r}: want cpu, cuda, cuda:N or auto")
    return name


# Named recipes. "rdre" is the trainer's defaults (TrainConfig); "paper" is the paper's reading without this
# project's additions (an I_a for every image in both stages, no foreground limit, no self-made anomalies, the
# segmentation map as output); "plain-rd" is the baseline RD-RE is measured
# against: plain reverse distillation with the same teacher and code (no synthesis, no cross-stage fusion, no
# segmentation head, score = RD map). Flags given on the command line override a preset's values.
# "rdre" also checks the floor (rdre/floor.py): plain RD trains beside it; the image score is plain RD's where it
# does better on held-out normals, else the mean of both normalised scores; the map is the better one's.
PRESETS = {
    "rdre": dict(floor=True),
    "paper": dict(floor=False, fusion=True, normal_prob=0.0, seg_normal_prob=None, anomaly_fg=False, anomaly_self=0.0, anomaly_color=0.0, fusion_norm=False,
                  fusion_gate=False, anomaly_weight=0.0, output="seg"),
    "plain-rd": dict(floor=False, fusion=False, no_seg=True, normal_prob=1.0, steps_seg=0, anomaly_source=None, seg_normal_prob=None,
                     anomaly_fg=False, anomaly_self=0.0, anomaly_color=0.0),
}


def parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python3 -m models.train", description="Train RD-RE (two stages) on a dataset's normal training images.")
    p.add_argument("--preset", default="rdre", choices=sorted(PRESETS),
                   help="named recipe: rdre (the defaults), paper (the paper's reading, no additions) or plain-rd "
                        "(the baseline: --no-fusion --no-seg --normal-prob 1)")
    p.add_argument("--data", required=True, help="dataset root (with --category) or the category folder itself")
    p.add_argument("--category", default="", help="category folder under --data (e.g. bottle)")
    p.add_argument("--layout", default=None,
                   help="force the dataset layout (" + ", ".join(LAYOUTS) + "); detected when omitted (docs/datasets.md)")
    p.add_argument("--teacher", default=d.teacher, choices=["mobilenet_v2", "resnet18"])
    p.add_argument("--teacher-weights", default=None,
                   help="resnet18: torchvision state_dict file; mobilenet_v2: TFLite file (default ../shared/weights/...)")
    p.add_argument("--random-teacher", action="store_true", help="random-initialised teacher (tests only)")
    p.add_argument("--anomaly-source", default=None, help="folder of texture images (e.g. DTD); built-in textures if omitted")
    p.add_argument("--size", type=int, default=d.size, help="input resolution (multiple of 32)")
    p.add_argument("--steps-student", type=int, default=d.steps_student)
    p.add_argument("--steps-seg", type=int, default=d.steps_seg)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr-student", type=float, default=d.lr_student)
    p.add_argument("--lr-fusion", type=float, default=d.lr_fusion, help="learning rate of LDA and CAAMS-FF")
    p.add_argument("--lr-seg", type=float, default=d.lr_seg)
    p.add_argument("--optimizer", default=d.optimizer, choices=["sgd", "adam"])
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--score", default=d.score, help="image score: topk_mean:K or max")
    p.add_argument("--fusion", action=argparse.BooleanOptionalAction, default=d.fusion,
                   help="the cross-stage fusion (LDA + CAAMS-FF) in the decoder; --no-fusion: plain RD decoder")
    p.add_argument("--fusion-gate", action="store_true", help="zero-initialised gate on the fusion branch (not in the paper)")
    p.add_argument("--no-lda", action="store_true")
    p.add_argument("--no-caams", action="store_true")
    p.add_argument("--no-seg", action="store_true", help="ablation: score with the RD map")
    p.add_argument("--anomaly-weight", type=float, default=d.anomaly_weight,
                   help="extra weight of the distillation loss inside synthetic masks (0 = the paper's Eq. 17-19)")
    p.add_argument("--normal-prob", type=float, default=d.normal_prob, help="share of samples left without synthetic anomaly")
    p.add_argument("--seg-normal-prob", type=float, default=d.seg_normal_prob,
                   help="share of normal samples in the segmentation stage (default: --normal-prob)")
    p.add_argument("--anomaly-fg", action=argparse.BooleanOptionalAction, default=d.anomaly_fg,
                   help="limit synthetic anomalies to the estimated foreground (not in the paper)")
    p.add_argument("--anomaly-self", type=float, default=d.anomaly_self,
                   help="share of anomalies whose texture is a moved normal training image (not in the paper)")
    p.add_argument("--anomaly-color", type=float, default=d.anomaly_color,
                   help="share of anomalies that are a colour cast of the image itself (not in the paper)")
    p.add_argument("--fusion-norm", action=argparse.BooleanOptionalAction, default=d.fusion_norm,
                   help="BatchNorm on the fusion's encoder branch (not in the paper)")
    p.add_argument("--output", default=d.output, choices=["auto", "seg", "rd"],
                   help="exported anomaly_map: the segmentation head's (seg), the RD map (rd), or the better of the two "
                        "on synthetic validation (auto)")
    p.add_argument("--floor", action=argparse.BooleanOptionalAction, default=False,
                   help="hold out one in %d training images, train plain RD beside the recipe (same teacher, seed and "
                        "steps), and compare both on synthetic validation on the held-out images: the image score from plain RD "
                        "where it does better, else from both; the anomaly map from the better one (default: on with "
                        "--preset rdre)" % floor.HOLD_OUT_EVERY)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (cuda when available)")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--out", required=True, help="output folder: checkpoint.pt, train.log, model.onnx")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--export", action="store_true", help="export OUT/model.onnx when done")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """Parse with the chosen preset's values as defaults (explicit flags still win)."""
    p = parser()
    pre, _ = p.parse_known_args(argv)
    p.set_defaults(**PRESETS[pre.preset])
    return p.parse_args(argv)


def config_from_args(args, weights=None, fingerprint_value: str = "", category: str = "") -> TrainConfig:
    return TrainConfig(
        teacher=args.teacher, teacher_weights=weights, anomaly_source=args.anomaly_source, size=args.size,
        steps_student=args.steps_student, steps_seg=args.steps_seg, batch_size=args.batch_size,
        lr_student=args.lr_student, lr_fusion=args.lr_fusion, lr_seg=args.lr_seg, optimizer=args.optimizer,
        seed=args.seed, fusion=args.fusion, lda=not args.no_lda, caams=not args.no_caams, seg=not args.no_seg,
        score=args.score, normal_prob=args.normal_prob, fusion_gate=args.fusion_gate, anomaly_weight=args.anomaly_weight,
        seg_normal_prob=args.seg_normal_prob, anomaly_fg=args.anomaly_fg, anomaly_self=args.anomaly_self, anomaly_color=args.anomaly_color, fusion_norm=args.fusion_norm,
        output=args.output,
        category=category, data_fingerprint=fingerprint_value, log_every=args.log_every, ckpt_every=args.ckpt_every,
        device=resolve_device(args.device),
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        logging.getLogger("models.train").error("train: %s", err)
        return 1


def run(args) -> int:
    os.makedirs(args.out, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
        handlers=[logging.StreamHandler(sys.stdout), logging.FileHandler(os.path.join(args.out, "train.log"))],
    )
    torch.set_num_threads(max(1, args.threads))
    root = category_root(args.data, args.category)
    layout, rels = train_list(root, args.layout)
    files = [os.path.join(root, *r.split("/")) for r in rels]
    weights = args.teacher_weights
    if weights is None and args.teacher == "mobilenet_v2" and not args.random_teacher:
        weights = default_tflite_path()
    if args.random_teacher:
        weights = None
    elif args.teacher == "resnet18" and not weights:
        log.error("resnet18 needs --teacher-weights (a torchvision state_dict file)")
        return 2
    # A record left by an earlier run in OUT must not steer this run's export.
    stale = os.path.join(args.out, floor.RECORD)
    if os.path.exists(stale):
        os.remove(stale)
    held, why = [], ""
    if args.floor:
        if len(files) < floor.MIN_IMAGES:
            why = f"{len(files)} training images, fewer than {floor.MIN_IMAGES}: too few to hold some out"
            log.warning("floor not checked: %s; training on all of them", why)
        else:
            keep, out = floor.held_out(len(files))
            files, held = [files[i] for i in keep], [files[i] for i in out]
            log.info("floor: %d training images, %d held out (one in %d) to compare with plain RD", len(files), len(held), floor.HOLD_OUT_EVERY)
    category = args.category or os.path.basename(os.path.normpath(root))
    cfg = config_from_args(args, weights, fingerprint(files, root), category)
    args.floor_baseline_steps = baseline_config(cfg).steps_student if held else 0
    t0 = time.perf_counter()
    images = load_train(root, cfg.size, files=files)
    log.info("data %s (%s layout): %d training images at %d (%.1f s), fingerprint %s", root, layout, len(files), cfg.size, time.perf_counter() - t0, cfg.data_fingerprint[:16])
    trainer = train_one(args, cfg, images, args.out)
    if args.floor:
        rec, base_th = (floor.unchecked(why), {}) if why else check_floor(args, cfg, images, load_train(root, cfg.size, files=held), trainer)
        floor.write_record(args.out, rec)
        log.info("%s", floor.summary(rec))
        log.info("floor record: %s", json.dumps(rec, sort_keys=True))
        if (rec["score"], rec["map"]) != ("recipe", "recipe"):
            log.info("thresholds of the floor's choice: %s", json.dumps(floor.thresholds(rec, trainer.thresholds, base_th)))
    if args.export:
        from .export import export_checkpoint

        export_checkpoint(os.path.join(args.out, "checkpoint.pt"), os.path.join(args.out, "model.onnx"))
    return 0


def train_one(args, cfg: TrainConfig, images, out: str, stage_names=None) -> Trainer:
    """Train (or resume) one model into out/checkpoint.pt."""
    os.makedirs(out, exist_ok=True)
    trainer = Trainer(cfg, images, stage_names=stage_names)
    ckpt = os.path.join(out, "checkpoint.pt")
    if args.resume and os.path.isfile(ckpt):
        trainer.load(ckpt, same_images=args.floor)
        log.info("resumed from %s at student step %d, seg step %d", ckpt, trainer.step_student, trainer.step_seg)
    log.info("config %s", dataclasses.asdict(cfg))
    trainer.run(ckpt)
    log.info("done: student %.1f s (%d steps), seg %.1f s (%d steps)", trainer.elapsed["student"], trainer.step_student, trainer.elapsed["seg"], trainer.step_seg)
    return trainer


def baseline_config(cfg: TrainConfig) -> TrainConfig:
    """Plain RD with the recipe's teacher, data, seed, batch, learning rate and number of steps (student + seg)."""
    return dataclasses.replace(
        cfg, steps_student=cfg.steps_student + (cfg.steps_seg if cfg.seg else 0), steps_seg=0, fusion=False, seg=False,
        normal_prob=1.0, seg_normal_prob=None, anomaly_source=None, anomaly_fg=False, anomaly_self=0.0, anomaly_color=0.0,
        anomaly_weight=0.0, fusion_gate=False, fusion_norm=False, output="rd")


def check_floor(args, cfg: TrainConfig, images, held_images, recipe: Trainer):
    """Train plain RD in OUT/baseline on the same images and compare both on the held-out normals: (the floor's
    record, plain RD's suggested thresholds)."""
    base = train_one(args, baseline_config(cfg), images, os.path.join(args.out, floor.BASELINE_DIR), {"student": "baseline"})
    log.info("floor: comparing both models on %d held-out normals", held_images.shape[0])
    return floor.compare(recipe.model, base.model, held_images, recipe.device), base.thresholds


# Machine-readable progress for the studio's training runner (backend/training): --progress-json FILE|-,
# --preview-every N and a SIGTERM that saves the checkpoint first. models/progress.py wraps parser() and
# run() so that the code above stays as it is.
from . import progress as _progress  # noqa: E402

parser, run = _progress.wrap_parser(parser), _progress.wrap_run(run, sys.modules[__name__])


if __name__ == "__main__":
    sys.exit(main())
