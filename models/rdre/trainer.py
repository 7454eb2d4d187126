"""Training glue: the two RD-RE stages, checkpoints that resume, threshold calibration.

Contract: ``Trainer(cfg, images)`` trains on pre-processed [0, 1] images (N x 3 x S x S). Stage 1 trains the
student (bottleneck + decoder at ``lr_student``, LDA and CAAMS-FF at ``lr_fusion``) with the cosine
distillation loss: the teacher sees I_n, the student sees the synthetic I_a. Stage 2 freezes teacher and
student and trains the segmentation sub-network (``lr_seg``) with focal + L1 against the Perlin mask, both
networks seeing I_a as they will at inference. Every random draw comes from one seeded generator whose state
is checkpointed, so a run is deterministic on CPU and a resumed run continues the same sequence.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from .checkpoint import configs as checkpoint_configs
from .loss import distillation_loss, segmentation_loss
from .metrics import f1_max
from .model import RDRE
from .preprocess import normalize
from .synthesis import AnomalySynthesizer, foreground_mask
from .teacher import build_teacher

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainConfig:
    teacher: str = "mobilenet_v2"
    teacher_weights: Optional[str] = None
    anomaly_source: Optional[str] = None
    size: int = 256
    steps_student: int = 1000
    steps_seg: int = 500
    batch_size: int = 32
    lr_student: float = 0.1
    lr_fusion: float = 0.01
    lr_seg: float = 0.1
    momentum: float = 0.9
    optimizer: str = "sgd"
    seed: int = 0
    # Departure (default since issue 17, second round): no cross-stage fusion. On the magnetic tiles the fusion
    # hands the decoder the encoder's view of the synthetic anomaly, and the student's map lost to plain RD;
    # without it the student beats plain RD on both development categories (models/README.md, "Beyond bottle").
    # --preset paper (or --fusion) switches it back on; LDA and CAAMS-FF live inside the fusion.
    fusion: bool = False
    lda: bool = True
    caams: bool = True
    seg: bool = True
    score: str = "topk_mean:100"
    # The paper synthesises an I_a for every I_n (Sec. 3.1); on bottle this beat half-normal batches (README).
    normal_prob: float = 0.0
    category: str = ""
    data_fingerprint: str = ""
    log_every: int = 10
    ckpt_every: int = 100
    device: str = "cpu"
    fusion_gate: bool = False
    anomaly_weight: float = 0.0
    # Not in the paper (models/README.md, "Beyond bottle"; --preset paper switches them off).
    seg_normal_prob: Optional[float] = 0.5  # share of normal samples in stage 2 (None: normal_prob)
    anomaly_fg: bool = False  # Perlin masks limited to the estimated foreground (measured, not adopted)
    anomaly_self: float = 0.0  # share of anomalies whose texture is a (moved) normal training image (measured, not adopted)
    anomaly_color: float = 0.0  # share of anomalies that are colour casts of the image itself (issue 17, fourth round)
    fusion_norm: bool = False  # BatchNorm on the encoder branch of the fusion (measured, not adopted)
    # The exported anomaly_map: "seg" (the paper's), "rd" (the student's RD map) or "auto" (the one that does
    # better on synthetic validation, rdre/validation.py; recorded in the checkpoint as "selection").
    # Departure (default since issue 17, second round): "rd". The segmentation head lost to the RD map in pixel
    # AP on the magnetic tiles and synthetic validation still preferred it, so "auto" cannot be the default.
    output: str = "rd"


# Training settings a resumed run must share with its checkpoint (steps, logging and the device may change).
RECIPE_KEYS = ("anomaly_source", "batch_size", "lr_student", "lr_fusion", "lr_seg", "momentum", "optimizer", "seed",
               "normal_prob", "seg_normal_prob", "anomaly_fg", "anomaly_self", "anomaly_color", "anomaly_weight", "output")
# What a checkpoint from before a setting existed was trained with.
LEGACY_RECIPE = {"seg_normal_prob": None, "anomaly_fg": False, "anomaly_self": 0.0, "anomaly_color": 0.0, "anomaly_weight": 0.0,
                 "output": "seg"}


class Trainer:
    def __init__(self, cfg: TrainConfig, images: torch.Tensor, teacher=None, stage_names: Optional[Dict[str, str]] = None):
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[-1] != cfg.size or images.shape[-2] != cfg.size:
            raise ValueError(f"trainer: want N x 3 x {cfg.size} x {cfg.size} images, got {tuple(images.shape)}")
        if cfg.optimizer not in ("sgd", "adam"):
            raise ValueError(f"trainer: optimizer {cfg.optimizer!r} is not sgd or adam")
        if cfg.anomaly_weight < 0:
            raise ValueError(f"trainer: anomaly_weight {cfg.anomaly_weight} must be >= 0")
        if cfg.output not in ("seg", "rd", "auto"):
            raise ValueError(f"trainer: output {cfg.output!r} is not seg, rd or auto")
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        if teacher is None:
            teacher = build_teacher(cfg.teacher, cfg.teacher_weights)
        self.model = RDRE(teacher, cfg.size, fusion=cfg.fusion, lda=cfg.lda, caams=cfg.caams, seg=cfg.seg, score=cfg.score,
                          fusion_gate=cfg.fusion_gate, fusion_norm=cfg.fusion_norm, output="rd" if cfg.output == "rd" else "seg")
        # Images, synthesis and the generator stay on the CPU (so a seed means the same on any device);
        # the networks, their inputs and the cached teacher features live on cfg.device.
        self.device = torch.device(cfg.device)
        self.model.to(self.device)
        self.mean, self.std = teacher.mean, teacher.std
        self.images = images
        self.synth = AnomalySynthesizer(cfg.size, cfg.anomaly_source, normal_prob=cfg.normal_prob, self_prob=cfg.anomaly_self,
                                        self_images=images if cfg.anomaly_self > 0 else None, color_prob=cfg.anomaly_color)
        self.synth_seg = self.synth
        if cfg.seg_normal_prob is not None and cfg.seg_normal_prob != cfg.normal_prob:
            self.synth_seg = AnomalySynthesizer(cfg.size, None, normal_prob=cfg.seg_normal_prob, self_prob=cfg.anomaly_self,
                                                self_images=images if cfg.anomaly_self > 0 else None,
                                                color_prob=cfg.anomaly_color)
            self.synth_seg.sources = self.synth.sources
        # Foreground estimates of the (fixed) training images, when anomalies are limited to the foreground.
        self.fg = torch.stack([foreground_mask(im) for im in images]) if cfg.anomaly_fg else None
        student_p, fusion_p = self.model.student.lr_groups()
        groups = [{"params": student_p, "lr": cfg.lr_student}]
        if fusion_p:
            groups.append({"params": fusion_p, "lr": cfg.lr_fusion})
        self.opt_student = self._optimizer(groups)
        self.opt_seg = self._optimizer([{"params": list(self.model.seg.parameters()), "lr": cfg.lr_seg}]) if self.model.seg is not None else None
        self.step_student = 0
        self.step_seg = 0
        self.elapsed = {"student": 0.0, "seg": 0.0}
        # The names the log (and so the progress events) give the stages: the floor's plain-RD baseline logs its
        # student stage as "baseline" (models/train.py).
        self.stage_names: Dict[str, str] = dict(stage_names or {})
        self.ckpt_path: Optional[str] = None  # where run() saves (a stop request saves there too)
        self.history: Dict[str, List[float]] = {"student": [], "seg": []}
        self.thresholds: Dict[str, float] = {}
        self.selection: Dict[str, object] = {}
        self._cache = self._teacher_cache()

    def _optimizer(self, groups):
        if self.cfg.optimizer == "adam":
            return torch.optim.Adam(groups, betas=(0.5, 0.999))
        return torch.optim.SGD(groups, momentum=self.cfg.momentum)

    def _teacher_cache(self) -> List[torch.Tensor]:
        # Normal images get no augmentation, so their teacher features are fixed: compute them once.
        feats: List[List[torch.Tensor]] = []
        for i in range(0, self.images.shape[0], 8):
            x = self.images[i : i + 8].to(self.device)
            feats.append(self.model.teacher_features(normalize(x, self.mean, self.std)))
        return [torch.cat([f[k] for f in feats]) for k in range(3)]

    def _batch(self, synth: Optional[AnomalySynthesizer] = None):
        n = self.images.shape[0]
        idx = torch.randint(0, n, (self.cfg.batch_size,), generator=self.gen)
        x = self.images[idx]
        xa, m = (synth or self.synth)(x, self.gen, fg=None if self.fg is None else self.fg[idx])
        return idx, xa.to(self.device), m.to(self.device)

    def _features_of(self, idx: torch.Tensor, xa: torch.Tensor, m: torch.Tensor) -> List[torch.Tensor]:
        """Teacher features of I_a: cached ones for samples that stayed normal, fresh ones otherwise."""
        feats = [f[idx].clone() for f in self._cache]
        anom = m.flatten(1).amax(dim=1) > 0
        if bool(anom.any()):
            fa = self.model.teacher_features(normalize(xa[anom], self.mean, self.std))
            for k in range(3):
                feats[k][anom] = fa[k]
        return feats

    def student_step(self) -> float:
        self.model.train()
        idx, xa, m = self._batch()
        ft = [f[idx] for f in self._cache]
        fe = self._features_of(idx, xa, m)
        fs = self.model.student_features(fe)
        loss = distillation_loss(ft, fs, m, self.cfg.anomaly_weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"student step {self.step_student}: loss is {loss.item()}; lower --lr-student")
        self.opt_student.zero_grad()
        loss.backward()
        self.opt_student.step()
        self.step_student += 1
        return loss.item()

    def seg_target(self, m: torch.Tensor, size) -> torch.Tensor:
        return (F.interpolate(m, size=size, mode="area") > 0.5).float()

    def seg_step(self) -> float:
        if self.model.seg is None:
            raise ValueError("seg step: the model was built without a segmentation sub-network")
        self.model.eval()
        self.model.seg.train()
        idx, xa, m = self._batch(self.synth_seg)
        fe = self._features_of(idx, xa, m)
        with torch.no_grad():
            fs = self.model.student_features(fe)
            d = self.model.distance_maps(fe, fs)
            inp = self.model.seg_input(d)
        p = self.model.seg(inp)
        loss = segmentation_loss(p, self.seg_target(m, p.shape[-2:]))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"seg step {self.step_seg}: loss is {loss.item()}; lower --lr-seg")
        self.opt_seg.zero_grad()
        loss.backward()
        self.opt_seg.step()
        self.step_seg += 1
        return loss.item()

    def run(self, ckpt_path: Optional[str] = None) -> None:
        self.ckpt_path = ckpt_path
        self._run_stage("student", self.cfg.steps_student, ckpt_path)
        if self.model.seg is not None:
            self._run_stage("seg", self.cfg.steps_seg, ckpt_path)
        if self.cfg.output == "auto" and self.model.seg is not None and not self.selection:
            self.select_output()
        if not self.thresholds:
            self.thresholds = self.calibrate()
            log.info("thresholds from synthetic validation: %s", json.dumps(self.thresholds))
        if ckpt_path:
            self.save(ckpt_path)

    def _run_stage(self, stage: str, total: int, ckpt_path: Optional[str]) -> None:
        step_fn = self.student_step if stage == "student" else self.seg_step
        done = lambda: self.step_student if stage == "student" else self.step_seg  # noqa: E731
        window, t0 = [], time.perf_counter()
        while done() < total:
            ts = time.perf_counter()
            window.append(step_fn())
            self.elapsed[stage] += time.perf_counter() - ts
            s = done()
            if s % self.cfg.log_every == 0 or s == total:
                dt = (time.perf_counter() - t0) / len(window)
                mean = sum(window) / len(window)
                self.history[stage].append(mean)
                log.info("%s step %d/%d loss %.5f %.2f s/step eta %.1f min", self.stage_names.get(stage, stage), s, total, mean, dt,
                         dt * (total - s) / 60)
                window, t0 = [], time.perf_counter()
            if ckpt_path and (s % self.cfg.ckpt_every == 0 or s == total):
                self.save(ckpt_path)

    def select_output(self) -> str:
        """Choose the exported map (seg or rd) on synthetic validation (rdre/validation.py), never on test data."""
        from .validation import choose_output, validation_maps, validation_metrics

        maps, masks, _ = validation_maps(self.model, self.images, self.device)
        maps.pop("combo", None)
        val = validation_metrics(maps, masks)
        out = choose_output(val)
        self.model.set_output(out)
        self.selection = {"output": out, "validation": val}
        self.thresholds = {}
        log.info("output chosen on synthetic validation: %s (%s)", out, json.dumps(val))
        return out

    @torch.no_grad()
    def calibrate(self, n: int = 32) -> Dict[str, float]:
        """F1-optimal pixel and image thresholds on synthetic anomalies (a suggestion, not ground truth)."""
        self.model.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed + 1)
        synth = AnomalySynthesizer(self.cfg.size, None, normal_prob=0.5)
        synth.sources = self.synth.sources
        maps, scores, masks = [], [], []
        for i in range(0, n, 8):
            idx = torch.randint(0, self.images.shape[0], (min(8, n - i),), generator=gen)
            xa, m = synth(self.images[idx], gen)
            amap, score, _ = self.model(normalize(xa.to(self.device), self.mean, self.std))
            maps.append(amap.cpu())
            scores.append(score.cpu())
            masks.append(m)
        maps, scores, masks = torch.cat(maps), torch.cat(scores), torch.cat(masks)
        labels = masks.flatten(1).amax(1) > 0
        out = {}
        if masks.sum() > 0:
            f1p, tp = f1_max(maps.numpy().ravel(), masks.numpy().ravel() > 0.5)
            out.update(pixel=tp, pixel_f1=f1p)
        if labels.any() and (~labels).any():
            f1i, ti = f1_max(scores.numpy(), labels.numpy())
            out.update(image=ti, image_f1=f1i)
        return out

    def state(self) -> dict:
        return {
            "format": 2,
            # "config" holds RDRE's constructor arguments (what models/bench_torch.py and load_model rebuild
            # the network from); the training settings are under "train_config".
            "config": self.model.config,
            "train_config": dataclasses.asdict(self.cfg),
            "model": self.model.state_dict(),
            "opt_student": self.opt_student.state_dict(),
            "opt_seg": self.opt_seg.state_dict() if self.opt_seg else None,
            "step_student": self.step_student,
            "step_seg": self.step_seg,
            "elapsed": self.elapsed,
            "history": self.history,
            "thresholds": self.thresholds,
            "selection": self.selection,
            "gen": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        torch.save(self.state(), tmp)
        os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint intact

    def load(self, path: str, same_images: bool = False) -> None:
        """Continue from a checkpoint of the same network and recipe; with same_images also of the same training
        images (the floor's held-out images must never have been trained on)."""
        try:
            st = torch.load(path, map_location="cpu", weights_only=False)  # our own checkpoint: floats and configs, trusted
        except (OSError, RuntimeError) as err:
            raise ValueError(f"load checkpoint {path}: {err}") from err
        # "output" is decided after training (output auto): compare the networks, then take the checkpoint's.
        theirs = dict(checkpoint_configs(st)[0])
        mine = dict(self.model.config)
        their_output = theirs.pop("output", "seg")
        mine.pop("output", None)
        if theirs != mine:
            raise ValueError(f"load checkpoint {path}: model config {checkpoint_configs(st)[0]} differs from {self.model.config}")
        # The recipe must match too (step counts may change): resuming a checkpoint of another recipe, e.g. one
        # trained before the defaults changed, would silently mix the two. Settings an older checkpoint lacks count
        # as what it was trained with (LEGACY_RECIPE).
        raw_tc = checkpoint_configs(st)[1] or {}
        tc = dict(LEGACY_RECIPE, **raw_tc) if raw_tc else {}
        mine_tc = dataclasses.asdict(self.cfg)
        differ = sorted(k for k in RECIPE_KEYS if k in tc and tc[k] != mine_tc[k])
        if differ:
            raise ValueError(f"load checkpoint {path}: trained with another recipe ("
                             + ", ".join(f"{k} {tc[k]!r} here {mine_tc[k]!r}" for k in differ)
                             + "); pass the same settings or train into a new --out folder")
        old_fp, fp = raw_tc.get("data_fingerprint", ""), self.cfg.data_fingerprint
        if same_images and old_fp and old_fp != fp:
            raise ValueError(f"resume {path}: it was trained on other images (data fingerprint {old_fp[:16]}, here {fp[:16]}), "
                             "which may include the images the floor holds out; train into a new --out, or pass --no-floor")
        self.model.load_state_dict(st["model"])
        if self.model.seg is not None:
            self.model.set_output(their_output)
        self.selection = st.get("selection") or {}
        self.opt_student.load_state_dict(st["opt_student"])
        if self.opt_seg is not None and st.get("opt_seg"):
            self.opt_seg.load_state_dict(st["opt_seg"])
        self.step_student, self.step_seg = st["step_student"], st["step_seg"]
        self.elapsed, self.history = st["elapsed"], st["history"]
        self.thresholds = st.get("thresholds") or {}
        self.gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        # Steps can grow on resume; thresholds must then be recomputed.
        if self.step_student < self.cfg.steps_student or (self.model.seg is not None and self.step_seg < self.cfg.steps_seg):
            self.thresholds = {}
            self.selection = {}
            if self.model.seg is not None and self.cfg.output != "rd":
                self.model.set_output("seg")


def load_model(path: str, teacher_weights: Optional[str] = None) -> tuple:
    """Rebuild an RDRE from a checkpoint (teacher weights come from the checkpoint itself)."""
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)  # our own checkpoint: floats and configs, trusted
    except (OSError, RuntimeError) as err:
        raise ValueError(f"load checkpoint {path}: {err}") from err
    mc = checkpoint_configs(st)[0]
    teacher = build_teacher(mc["teacher"], None)
    model = RDRE(teacher, mc["size"], fusion=mc["fusion"], lda=mc["lda"], caams=mc["caams"], seg=mc["seg"],
                 window=mc["window"], lda_k=tuple(mc["lda_k"]), score=mc["score"], sigma=mc["sigma"], seg_width=mc["seg_width"],
                 fusion_gate=mc.get("fusion_gate", False), linear_out=mc.get("linear_out", False),
                 fusion_norm=mc.get("fusion_norm", False), output=mc.get("output", "seg"))
    model.load_state_dict(st["model"])
    model.eval()
    return model, st
