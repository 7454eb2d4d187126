"""Training on generated data: both losses fall, runs are deterministic, checkpoints resume exactly."""

import dataclasses
import json

import pytest
import torch

from models.rdre.loss import distillation_loss, segmentation_loss
from models.rdre.preprocess import normalize
from models.rdre.synthesis import AnomalySynthesizer
from models.rdre.trainer import TrainConfig, Trainer, load_model

from .conftest import smooth_images

SIZE = 64


def tiny_cfg(**kw) -> TrainConfig:
    # The paper's fusion on, so that these tests cover every part of the network; the defaults (no fusion) have
    # their own tests below.
    base = dict(size=SIZE, batch_size=4, steps_student=0, steps_seg=0, seed=0, log_every=1000, ckpt_every=1000, fusion=True)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def images():
    return smooth_images(12, SIZE, 0)


def fixed_batch(trainer: Trainer, seed: int = 99):
    g = torch.Generator().manual_seed(seed)
    synth = AnomalySynthesizer(SIZE, None, normal_prob=0.0)
    x = trainer.images[:8]
    xa, m = synth(x, g)
    return x, xa, m


@torch.no_grad()
def student_loss(trainer: Trainer, batch) -> float:
    x, xa, _ = batch
    model = trainer.model.eval()
    ft = model.teacher(normalize(x, trainer.mean, trainer.std))
    fe = model.teacher(normalize(xa, trainer.mean, trainer.std))
    return float(distillation_loss(ft, model.student(fe)))


@torch.no_grad()
def seg_loss(trainer: Trainer, batch) -> float:
    _, xa, m = batch
    model = trainer.model.eval()
    fe = model.teacher(normalize(xa, trainer.mean, trainer.std))
    p = model.seg(model.seg_input(model.distance_maps(fe, model.student(fe))))
    return float(segmentation_loss(p, trainer.seg_target(m, p.shape[-2:])))


def test_Trainer_steps_LowerBothLosses(images):
    tr = Trainer(tiny_cfg(batch_size=8), images)
    batch = fixed_batch(tr)
    s0 = student_loss(tr, batch)
    teacher_before = [p.clone() for p in tr.model.teacher.parameters()]
    for _ in range(25):
        tr.student_step()
    s1 = student_loss(tr, batch)
    assert s1 < 0.8 * s0, (s0, s1)
    g0 = seg_loss(tr, batch)
    student_before = [p.clone() for p in tr.model.student.parameters()]
    for _ in range(25):
        tr.seg_step()
    g1 = seg_loss(tr, batch)
    assert g1 < 0.8 * g0, (g0, g1)
    # Stage 2 leaves teacher and student alone; the teacher never moves.
    for a, b in zip(student_before, tr.model.student.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(teacher_before, tr.model.teacher.parameters()):
        assert torch.equal(a, b)
    assert not tr.model.teacher.training


def test_Trainer_student_step_DeterministicWithSeed(images):
    a = Trainer(tiny_cfg(), images)
    b = Trainer(tiny_cfg(), images)
    la = [a.student_step() for _ in range(3)]
    lb = [b.student_step() for _ in range(3)]
    assert la == lb
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    c = Trainer(tiny_cfg(seed=1), images)
    assert [c.student_step() for _ in range(3)] != la


def test_Trainer_load_ResumesExactly(images, tmp_path):
    straight = Trainer(tiny_cfg(steps_student=4, steps_seg=2), images)
    straight.run()
    ckpt = str(tmp_path / "checkpoint.pt")
    first = Trainer(tiny_cfg(steps_student=2, steps_seg=0), images)
    first._run_stage("student", 2, ckpt)
    resumed = Trainer(tiny_cfg(steps_student=4, steps_seg=2), images)
    resumed.load(ckpt)
    assert resumed.step_student == 2
    resumed.run(ckpt)
    for (n, pa), pb in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(pa, pb), n
    assert resumed.thresholds.keys() >= {"pixel", "image"}
    model, st = load_model(ckpt)
    assert st["step_student"] == 4 and st["step_seg"] == 2
    for pa, pb in zip(model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(pa, pb)


def test_Trainer_load_MismatchedModel_Errors(images, tmp_path):
    ckpt = str(tmp_path / "c.pt")
    Trainer(tiny_cfg(), images).save(ckpt)
    other = Trainer(tiny_cfg(fusion=False), images)
    with pytest.raises(ValueError, match="model config"):
        other.load(ckpt)
    with pytest.raises(ValueError, match="load checkpoint"):
        other.load(str(tmp_path / "missing.pt"))


def test_Trainer_init_BadInput_Errors(images):
    with pytest.raises(ValueError, match="want N x 3"):
        Trainer(tiny_cfg(size=32), images)
    with pytest.raises(ValueError, match="optimizer"):
        Trainer(dataclasses.replace(tiny_cfg(), optimizer="lbfgs"), images)
    with pytest.raises(ValueError, match="anomaly_weight"):
        Trainer(dataclasses.replace(tiny_cfg(), anomaly_weight=-1.0), images)


def test_Trainer_lr_groups_FollowPaperRates(images):
    tr = Trainer(tiny_cfg(), images)
    lrs = sorted(g["lr"] for g in tr.opt_student.param_groups)
    assert lrs == [0.01, 0.1]
    assert tr.opt_seg.param_groups[0]["lr"] == 0.1


def test_train_main_BadData_Fails(tmp_path):
    from models import train

    assert train.main(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "out"), "--random-teacher"]) == 1
    assert train.main(["--data", str(tmp_path), "--teacher", "resnet18", "--out", str(tmp_path / "o2")]) in (1, 2)


def test_Trainer_save_CheckpointRebuildsFromConfig(images, tmp_path):
    # Format 2: "config" is RDRE's constructor arguments, so a checkpoint rebuilds the network by itself
    # (models/bench_torch.py relies on this); format 1 files still load.
    from models.rdre.model import RDRE
    from models.rdre.teacher import build_teacher

    tr = Trainer(tiny_cfg(), images)
    tr.student_step()
    ckpt = str(tmp_path / "c.pt")
    tr.save(ckpt)
    st = torch.load(ckpt, map_location="cpu", weights_only=False)
    cfg = dict(st["config"])
    model = RDRE(build_teacher(cfg.pop("teacher")), **{k: tuple(v) if k == "lda_k" else v for k, v in cfg.items()})
    model.load_state_dict(st["model"])
    assert st["train_config"]["size"] == SIZE
    old = dict(st, model_config=st["config"], config=st["train_config"])
    del old["train_config"]
    torch.save(old, str(tmp_path / "old.pt"))
    loaded, _ = load_model(str(tmp_path / "old.pt"))
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)


def test_Trainer_defaults_NoFusionExportsTheRDMap(images, tmp_path):
    # The trainer's defaults: a decoder without cross-stage fusion (no LDA/CAAMS-FF parameters, one learning rate
    # for the student), a trained segmentation head, and the student's RD map as the exported anomaly_map.
    cfg = TrainConfig(size=SIZE, batch_size=4, steps_student=2, steps_seg=1, seed=0, log_every=1000, ckpt_every=1000)
    tr = Trainer(cfg, images)
    assert [g["lr"] for g in tr.opt_student.param_groups] == [0.1]
    ckpt = str(tmp_path / "c.pt")
    tr.run(ckpt)
    assert (tr.step_student, tr.step_seg) == (2, 1)
    assert tr.model.output == "rd" and tr.selection == {}
    model, st = load_model(ckpt)
    assert model.config["fusion"] is False and model.output == "rd"
    x = images[:2]
    with torch.no_grad():
        out = model(x)
    amap, rd = out[0], out[2]
    assert torch.equal(amap, rd)
    from models.export import checkpoint_info, metadata_for

    comps = json.loads(metadata_for(model, checkpoint_info(st))["rdre.components"])
    assert comps == {"fusion": False, "lda": False, "caams": False, "seg": True, "fusion_gate": False, "linear_out": comps["linear_out"],
                     "fusion_norm": False}
