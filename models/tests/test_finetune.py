"""models/finetune.py: real defective images with their masks mixed into the segmentation stage only."""

import json
import os

import torch

from models.finetune import load_real, main, make_trainer_class
from models.rdre.trainer import TrainConfig, Trainer

from .conftest import smooth_images

SIZE = 32


def _real_list(mvtec_dir, tmp_path):
    entries = [{"image": os.path.join(mvtec_dir, "test", "scratch", f"{i:03d}.png"),
                "mask": os.path.join(mvtec_dir, "ground_truth", "scratch", f"{i:03d}_mask.png")} for i in range(2)]
    p = tmp_path / "real.json"
    p.write_text(json.dumps(entries))
    return str(p), entries


def test_real_samples_only_in_the_segmentation_stage(mvtec_dir, tmp_path):
    _, entries = _real_list(mvtec_dir, tmp_path)
    rx, rm, digest = load_real(entries, SIZE)
    assert rx.shape == (2, 3, SIZE, SIZE) and rm.shape == (2, 1, SIZE, SIZE) and len(digest) == 64
    assert set(rm.unique().tolist()) == {0.0, 1.0} and rm.sum() > 0
    cls = make_trainer_class(Trainer, rx, rm, 1.0)
    cfg = TrainConfig(size=SIZE, batch_size=4, steps_student=0, steps_seg=0, seed=0, log_every=1000, ckpt_every=1000)
    tr = cls(cfg, smooth_images(6, SIZE, 0))
    _, xa, m = tr._batch()  # the student stage: synthetic only
    assert not any(torch.equal(xa[i], rx[j]) for i in range(4) for j in range(2))
    seen = []
    tr._in_seg = True  # what seg_step sets around its batch
    _, xa, m = tr._batch(tr.synth_seg)
    tr._in_seg = False
    for i in range(4):  # real-prob 1: every sample is a real image with its own mask
        j = [k for k in range(2) if torch.equal(xa[i], rx[k])]
        assert len(j) == 1 and torch.equal(m[i], rm[j[0]])
        seen.append(j[0])
    assert tr.step_seg == 0 and seen


def test_main_trains_and_records_the_real_images(mvtec_dir, tmp_path):
    real, entries = _real_list(mvtec_dir, tmp_path)
    out = str(tmp_path / "run")
    code = main(["--real-list", real, "--real-prob", "0.5", "--data", mvtec_dir, "--out", out, "--size", str(SIZE),
                 "--steps-student", "2", "--steps-seg", "3", "--batch-size", "2", "--random-teacher"])
    assert code == 0
    rec = json.load(open(os.path.join(out, "real_images.json")))
    assert rec["images"] == [e["image"] for e in entries] and rec["real_prob"] == 0.5
    assert os.path.isfile(os.path.join(out, "checkpoint.pt"))
    # The real masks teach the segmentation head, so that is what a fine-tuned model exports by default.
    from models.rdre.trainer import load_model

    assert load_model(os.path.join(out, "checkpoint.pt"))[0].output == "seg"
    assert main(["--real-list", real, "--real-prob", "0", "--data", mvtec_dir, "--out", out]) == 2
