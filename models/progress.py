"""Machine-readable progress of ``models.train`` for the studio's training runner (backend/training).

Contract (options that ``wrap_parser`` adds to ``models.train``):

- ``--progress-json FILE|-``: one JSON object per line, flushed at once ("-" = stdout, mixed with the log
  lines, which never start with ``{``). Every object has ``"event"``:

  - ``start``: ``images``, ``size``, ``batch_size``, ``device``, ``threads``, ``torch``, ``cuda`` (bool),
    ``gpu`` (name or ""), ``steps`` {student, seg}, ``fingerprint``, ``teacher``;
  - ``resumed``: ``steps`` {student, seg} reached by the checkpoint;
  - ``progress`` (one per log step of the trainer): ``stage`` ("student" or "seg"), ``step``, ``total``,
    ``loss`` (mean over the window), ``losses`` {stage: loss}, ``sec_per_step``, ``eta_s`` (this stage),
    ``elapsed_s`` {student, seg}, and ``preview`` {image, mask, prediction} (paths relative to OUT) when a
    preview was written at this step;
  - ``stage``: ``stage`` = "calibrate" (thresholds on synthetic anomalies) with ``thresholds``;
  - ``done``: ``elapsed_s`` {student, seg} and ``steps``;
  - ``floor``: ``record``, the floor's comparison with plain RD (rdre/floor.py) after both models trained
    (before it, a ``stage`` event with ``stage`` = "floor"; when the record takes an output from plain RD or
    the score of both, a second ``stage`` = "calibrate" event with the thresholds of what is exported).

  With the floor (``--floor``, the rdre preset's default) plain RD trains after the recipe as a second model:
  the recipe's ``start`` announces its steps as ``steps.baseline``; it then reports ``start``, ``progress``,
  ``resumed``, ``stopped`` and ``done`` of its own with the stage named ``baseline`` (its steps and elapsed
  time keyed ``baseline`` only), writes no previews and no ``stage`` event.
  - ``stopped``: SIGTERM was honoured, ``steps`` saved in the checkpoint;
  - ``error``: ``message``.

- ``--preview-every N`` (default 200; 0 = none): at the first logged step of each stage and then every N steps,
  write ``OUT/previews/STAGE-STEP-{image,mask,prediction}.png``: a strip of 4 synthetic training samples (I_a),
  their masks, and the current model's map of them (the RD map while the student trains, the segmentation
  map after). Previews draw from a generator of their own, so the training's random sequence is unchanged.

- SIGTERM (with ``--progress-json``): the current step finishes, the checkpoint is saved, a ``stopped`` event is
  written and the process exits with status 143. Before the trainer exists (data loading) it exits at once.

It is installed around ``parser`` and ``run`` of models/train.py so that the recipe code there stays as it is.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
from typing import Any, Callable, Dict, Optional

PREVIEW_SAMPLES = 4
STOP_EXIT = 143


def add_arguments(p) -> None:
    p.add_argument("--progress-json", default=None, metavar="FILE|-",
                   help="write one JSON object per log step (and start/stage/done events) to FILE or stdout (-)")
    p.add_argument("--preview-every", type=int, default=200,
                   help="with --progress-json: write preview PNGs of synthetic training samples every N steps (0 = none)")


def wrap_parser(parser_fn: Callable):
    def parser():
        p = parser_fn()
        add_arguments(p)
        return p

    return parser


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class Reporter:
    """Writes the JSON lines; owns the preview generator and the stop flag."""

    def __init__(self, dest: str, out_dir: str, preview_every: int):
        self.out_dir = out_dir
        self.preview_every = max(0, preview_every)
        self.trainer = None
        self.stop = False
        self._lock = threading.Lock()
        self._last_stage = ""
        if dest == "-":
            self._f, self._close = sys.stdout, False
        else:
            self._f, self._close = open(dest, "a", encoding="utf-8"), True

    def emit(self, event: str, **fields) -> None:
        obj = {"event": event}
        obj.update({k: _finite(v) for k, v in fields.items()})
        line = json.dumps(obj, separators=(",", ":"), default=str)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._close:
            self._f.close()

    # ---- previews ----

    def want_preview(self, stage: str, step: int) -> bool:
        # The floor's plain-RD baseline sees no synthetic anomalies: nothing to show.
        if self.preview_every <= 0 or self.trainer is None or _names(self.trainer):
            return False
        first = stage != self._last_stage
        self._last_stage = stage
        return first or step % self.preview_every == 0

    def preview(self, stage: str, step: int) -> Optional[Dict[str, str]]:
        import numpy as np
        import torch
        from PIL import Image

        from .rdre.preprocess import normalize

        t = self.trainer
        size = t.cfg.size
        gen = torch.Generator().manual_seed((t.cfg.seed * 1000003 + step * 2 + (stage == "seg")) % (2**62))
        n = min(PREVIEW_SAMPLES, t.images.shape[0])
        idx = torch.randint(0, t.images.shape[0], (n,), generator=gen)
        synth = t.synth_seg if stage == "seg" else t.synth
        with torch.no_grad():
            xa, m = synth(t.images[idx], gen)
            was_training = t.model.training
            t.model.eval()
            try:
                amap, _, rd = t.model(normalize(xa.to(t.device), t.mean, t.std))
            finally:
                t.model.train(was_training)
        pred = (amap if stage == "seg" and t.model.seg is not None else rd).detach().float().cpu()
        if stage != "seg" or t.model.seg is None:
            hi = float(pred.max())
            pred = pred / hi if hi > 0 else pred
        folder = os.path.join(self.out_dir, "previews")
        os.makedirs(folder, exist_ok=True)

        def strip(x: torch.Tensor) -> np.ndarray:  # N x C x S x S in [0, 1] -> S x (N*S) [x 3]
            x = x.clamp(0, 1).mul(255).round().to(torch.uint8)
            rows = torch.cat([x[i] for i in range(x.shape[0])], dim=-1)  # C x S x N*S
            a = rows.permute(1, 2, 0).numpy()
            return a[:, :, 0] if a.shape[2] == 1 else a

        out = {}
        for name, x in (("image", xa), ("mask", m.float()), ("prediction", pred)):
            rel = f"previews/{stage}-{step:06d}-{name}.png"
            tmp = os.path.join(self.out_dir, rel + ".tmp")
            Image.fromarray(strip(x.cpu())).save(tmp, format="PNG")
            os.replace(tmp, os.path.join(self.out_dir, rel))  # the server never serves a half-written file
            out[name] = rel
        out["size"] = size
        out["samples"] = n
        return out


class _Handler(logging.Handler):
    """Turns the trainer's and models.train's log records into events (their args carry the numbers)."""

    def __init__(self, rep: Reporter):
        super().__init__(logging.INFO)
        self.rep = rep

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._emit(record)
        except Exception as err:  # a preview must never stop a training
            try:
                self.rep.emit("warning", message=f"progress: {err}")
            except Exception:
                pass

    def _emit(self, record: logging.LogRecord) -> None:
        msg, args = record.msg, record.args if isinstance(record.args, tuple) else ()
        rep = self.rep
        if not isinstance(msg, str):
            return
        if msg.startswith("%s step %d/%d loss") and len(args) >= 5:
            stage, step, total, loss, dt = args[0], int(args[1]), int(args[2]), float(args[3]), float(args[4])
            fields = dict(stage=stage, step=step, total=total, loss=loss, losses={stage: loss}, sec_per_step=dt,
                          eta_s=dt * max(0, total - step))
            t = rep.trainer
            if t is not None:
                fields["elapsed_s"] = _by_stage(t, t.elapsed)
            if rep.want_preview(stage, step):
                fields["preview"] = rep.preview(stage, step)
            rep.emit("progress", **fields)
        elif msg.startswith("resumed from") and len(args) >= 3:
            rep.emit("resumed", steps=_by_stage(rep.trainer, {"student": int(args[1]), "seg": int(args[2])}))
        elif msg.startswith("thresholds from synthetic"):
            if not _names(rep.trainer):  # the floor's baseline: its thresholds are not the run's
                th = json.loads(args[0]) if args else {}
                rep.emit("stage", stage="calibrate", thresholds=th)
        elif msg.startswith("done: student") and len(args) >= 4:
            rep.emit("done", elapsed_s=_by_stage(rep.trainer, {"student": float(args[0]), "seg": float(args[2])}),
                     steps=_by_stage(rep.trainer, {"student": int(args[1]), "seg": int(args[3])}))
        elif msg.startswith("floor record:") and args:
            rep.emit("floor", record=json.loads(args[0]))
        elif msg.startswith("floor: comparing"):
            rep.emit("stage", stage="floor")
        elif msg.startswith("thresholds of the floor's choice:") and args:
            rep.emit("stage", stage="calibrate", thresholds=json.loads(args[0]))
        elif record.levelno >= logging.ERROR:
            rep.emit("error", message=record.getMessage())


def wrap_run(run_fn: Callable, module) -> Callable:
    """run(args) with progress events when args.progress_json is set; module is models.train's module."""

    def run(args) -> int:
        if not getattr(args, "progress_json", None):
            return run_fn(args)
        os.makedirs(args.out, exist_ok=True)
        rep = Reporter(args.progress_json, args.out, args.preview_every)
        ckpt = os.path.join(args.out, "checkpoint.pt")
        base = module.Trainer

        class ReportingTrainer(base):  # the same trainer; it makes itself known and stops between steps
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                rep.trainer = self
                _start_event(rep, self, args)

            def _maybe_stop(self) -> None:
                if rep.stop:
                    self.save(self.ckpt_path or ckpt)
                    rep.emit("stopped", steps=_by_stage(self, {"student": self.step_student, "seg": self.step_seg}))
                    raise SystemExit(STOP_EXIT)

            def student_step(self):
                loss = super().student_step()
                self._maybe_stop()
                return loss

            def seg_step(self):
                loss = super().seg_step()
                self._maybe_stop()
                return loss

        def on_term(signum, frame):
            if rep.trainer is None:
                rep.emit("stopped", steps=None)
                raise SystemExit(STOP_EXIT)
            rep.stop = True

        handler = _Handler(rep)
        logger = logging.getLogger("models")
        level = logger.level
        logger.setLevel(logging.INFO)  # the events come from INFO records, whatever the root logger's level
        logger.addHandler(handler)
        module.Trainer = ReportingTrainer
        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            code = run_fn(args)
            if code:
                rep.emit("error", message=f"models.train exited with status {code}")
            return code
        except (ValueError, FileNotFoundError, FloatingPointError, OSError, RuntimeError) as err:
            rep.emit("error", message=str(err))
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            module.Trainer = base
            logger.removeHandler(handler)
            logger.setLevel(level)
            rep.close()

    return run


def _names(t) -> Dict[str, str]:
    return getattr(t, "stage_names", None) or {}


def _by_stage(t, d: Dict[str, Any]) -> Dict[str, Any]:
    """d keyed by the names the events give the trainer's stages (the floor's baseline: only "baseline")."""
    names = _names(t)
    return {names[k]: v for k, v in d.items() if k in names} if names else dict(d)


def _start_event(rep: Reporter, t, args) -> None:
    import torch

    cuda = t.device.type == "cuda"
    steps = _by_stage(t, {"student": t.cfg.steps_student, "seg": t.cfg.steps_seg if t.model.seg is not None else 0})
    if not _names(t) and getattr(args, "floor_baseline_steps", 0):
        steps["baseline"] = args.floor_baseline_steps  # announced up front, so the ETA covers the whole run
    rep.emit("start", images=int(t.images.shape[0]), size=t.cfg.size, batch_size=t.cfg.batch_size, device=str(t.device),
             threads=torch.get_num_threads(), torch=torch.__version__, cuda=bool(torch.cuda.is_available()),
             gpu=torch.cuda.get_device_name(t.device) if cuda else "",
             steps=steps,
             fingerprint=t.cfg.data_fingerprint, teacher=t.cfg.teacher, random_teacher=bool(getattr(args, "random_teacher", False)))
