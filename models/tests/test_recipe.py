"""The training recipe: defaults, presets, the synthesis options, output selection and the ablation runner."""

import json
import os
import shutil

import pytest
import torch

from models import train as train_cli
from models.rdre.model import RDRE
from models.rdre.synthesis import AnomalySynthesizer, foreground_mask, perlin_mask
from models.rdre.teacher import build_teacher
from models.rdre.trainer import TrainConfig, Trainer, load_model

from .conftest import smooth_images

SIZE = 64


def disc_on_black(size: int = 64) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    disc = ((ys - size / 2) ** 2 + (xs - size / 2) ** 2 < (size / 3) ** 2).float()
    return torch.stack([0.7 * disc, 0.6 * disc, 0.5 * disc]) + 0.02


def test_TrainConfig_defaults_AreTheChosenRecipe():
    # models/README.md ("Beyond bottle", second round): the paper's rates and synthesis (an I_a for every image
    # in the student stage), no cross-stage fusion, the student's RD map exported; the segmentation head is still
    # trained (half its samples normal) for --output seg or auto.
    d = TrainConfig()
    assert (d.fusion, d.lda, d.caams, d.seg) == (False, True, True, True)
    assert (d.fusion_gate, d.fusion_norm, d.anomaly_weight) == (False, False, 0.0)
    assert (d.lr_student, d.lr_fusion, d.lr_seg, d.optimizer) == (0.1, 0.01, 0.1, "sgd")
    assert d.normal_prob == 0.0
    assert d.seg_normal_prob == 0.5
    assert d.anomaly_fg is False
    assert d.anomaly_self == 0.0
    assert d.output == "rd"
    assert d.score == "topk_mean:100"


def _cfg(argv):
    args = train_cli.parse_args(["--data", "D", "--out", "O"] + argv)
    return args, train_cli.config_from_args(args)


def test_train_presets_SetTheirRecipes():
    _, c = _cfg([])
    d = TrainConfig()
    for k in ("normal_prob", "seg_normal_prob", "anomaly_fg", "anomaly_self", "output", "fusion", "lda", "caams", "seg",
              "fusion_gate", "fusion_norm", "batch_size", "steps_student", "steps_seg"):
        assert getattr(c, k) == getattr(d, k), k
    _, rd = _cfg(["--preset", "plain-rd"])
    assert (rd.fusion, rd.seg, rd.normal_prob, rd.steps_seg) == (False, False, 1.0, 0)
    assert rd.lda and rd.caams  # unused without fusion
    _, paper = _cfg(["--preset", "paper"])
    assert (paper.normal_prob, paper.seg_normal_prob, paper.anomaly_fg, paper.anomaly_self, paper.output) == (0.0, None, False, 0.0, "seg")
    assert paper.fusion and paper.seg
    _, fused = _cfg(["--fusion"])
    assert fused.fusion and not _cfg(["--preset", "paper", "--no-fusion"])[1].fusion
    # Explicit flags win over a preset's values.
    _, mixed = _cfg(["--preset", "paper", "--anomaly-fg", "--seg-normal-prob", "0.25"])
    assert mixed.anomaly_fg and mixed.seg_normal_prob == 0.25 and mixed.anomaly_self == 0.0
    _, on = _cfg(["--anomaly-fg", "--anomaly-self", "0.5", "--output", "seg"])
    assert (on.anomaly_fg, on.anomaly_self, on.output) == (True, 0.5, "seg")


def test_foreground_mask_ObjectVersusTexture():
    img = disc_on_black()
    fg = foreground_mask(img)
    disc = img[0] > 0.1
    assert fg.shape == (1, 64, 64)
    agree = float((fg[0].bool() == disc).float().mean())
    assert agree > 0.95, agree
    tex = smooth_images(1, 64, 3)[0]
    assert float(foreground_mask(tex).mean()) == 1.0


def test_perlin_mask_within_StaysInside():
    g = torch.Generator().manual_seed(0)
    within = torch.zeros(1, 64, 64)
    within[:, 16:48, 16:48] = 1
    for _ in range(8):
        m = perlin_mask(64, g, within=within)
        assert m.sum() > 0
        assert float((m * (1 - within)).sum()) == 0.0


def test_AnomalySynthesizer_self_UsesNormalImagesAndValidates():
    imgs = smooth_images(4, SIZE, 5)
    with pytest.raises(ValueError, match="self_images"):
        AnomalySynthesizer(SIZE, None, normal_prob=0.0, self_prob=0.5)
    with pytest.raises(ValueError, match="self_prob"):
        AnomalySynthesizer(SIZE, None, normal_prob=0.0, self_prob=1.5, self_images=imgs)
    s = AnomalySynthesizer(SIZE, None, normal_prob=0.0, self_prob=1.0, self_images=imgs)
    fg = torch.zeros(4, 1, SIZE, SIZE)
    fg[:, :, :32] = 1
    a, m = s(imgs, torch.Generator().manual_seed(1), fg=fg)
    b, m2 = s(imgs, torch.Generator().manual_seed(1), fg=fg)
    assert torch.equal(a, b) and torch.equal(m, m2)
    assert float(m[:, :, 32:].sum()) == 0.0 and float(m.sum()) > 0
    assert torch.equal(a * (1 - m), imgs * (1 - m))  # outside the mask the image is untouched


def test_AnomalySynthesizer_color_IsAnAffineCastInsideTheMask():
    imgs = smooth_images(6, SIZE, 7)
    with pytest.raises(ValueError, match="color_prob"):
        AnomalySynthesizer(SIZE, None, normal_prob=0.0, color_prob=-0.1)
    s = AnomalySynthesizer(SIZE, None, normal_prob=0.0, color_prob=1.0)
    params = []
    a, m = s(imgs, torch.Generator().manual_seed(3), params=params)
    assert float(m.sum()) > 0
    assert torch.equal(a * (1 - m), imgs * (1 - m))
    for i, (tex, beta) in enumerate(params):
        # A is the image itself under a per-channel gain and offset: no foreign texture. Per channel, the
        # least-squares fit of A on I_n leaves only the clamp's residue.
        assert 0.15 <= beta <= 1.0
        for c in range(3):
            x, y = imgs[i, c].flatten(), tex[c].flatten()
            inside = (y > 0) & (y < 1)
            g, o = torch.linalg.lstsq(torch.stack([x[inside], torch.ones_like(x[inside])], 1), y[inside].unsqueeze(1)).solution.flatten()
            assert 0.5 - 1e-4 <= float(g) <= 1.5 + 1e-4 and -0.2 - 1e-4 <= float(o) <= 0.2 + 1e-4
            assert float((g * x[inside] + o - y[inside]).abs().max()) < 1e-4
    # color_prob = 0 keeps the random sequence of the runs made before the option existed, so their seeds
    # still reproduce: the sums below are what synthesis.py of commit 8623a65 (before the option) gives. The
    # tolerances allow float32 rounding on another PyTorch build; a shifted random sequence moves them by far more.
    off = AnomalySynthesizer(SIZE, None, normal_prob=0.25, color_prob=0.0)
    a, m = off(imgs, torch.Generator().manual_seed(4))
    assert float(m.double().sum()) == pytest.approx(1347.0, abs=2)
    assert float(a.double().sum()) == pytest.approx(36968.80526171252, rel=1e-6)
    assert float((a.double() * torch.arange(SIZE).double()).sum()) == pytest.approx(1169627.1396426521, rel=1e-6)
    _, c = _cfg(["--anomaly-color", "0.5"])
    assert c.anomaly_color == 0.5 and _cfg(["--preset", "plain-rd", "--anomaly-color", "0.5"])[1].normal_prob == 1.0


def test_RDRE_output_RdExportsTheRdMap():
    model = RDRE(build_teacher("mobilenet_v2", None), SIZE).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    amap, _, rd = model(x)
    assert not torch.equal(amap, rd)
    model.set_output("rd")
    assert model.config["output"] == "rd"
    amap, score, rd = model(x)
    assert torch.equal(amap, rd)
    model.set_output("seg")
    assert "output" not in model.config
    with pytest.raises(ValueError):
        RDRE(build_teacher("mobilenet_v2", None), SIZE, seg=False).set_output("seg")


def test_Trainer_outputAuto_SelectsAndRecordsIt(tmp_path):
    images = smooth_images(8, SIZE, 0)
    cfg = TrainConfig(size=SIZE, batch_size=4, steps_student=2, steps_seg=2, seed=0, log_every=1000, ckpt_every=1000, fusion=True,
                      fusion_norm=True, anomaly_fg=True, anomaly_self=0.5, output="auto")
    tr = Trainer(cfg, images)
    assert tr.fg is not None and tr.synth.self_prob == 0.5 and tr.synth_seg.normal_prob == 0.5 and tr.synth.normal_prob == 0.0
    ckpt = str(tmp_path / "c.pt")
    tr.run(ckpt)
    assert tr.selection["output"] in ("seg", "rd")
    assert set(tr.selection["validation"]) == {"seg", "rd"}
    assert tr.model.output == tr.selection["output"]
    model, st = load_model(ckpt)
    assert model.output == tr.model.output and st["selection"] == tr.selection
    assert model.config.get("fusion_norm") is True
    # A finished checkpoint resumes (config compared without the chosen output) and keeps its choice.
    again = Trainer(cfg, images)
    again.load(ckpt)
    assert again.model.output == tr.model.output and again.selection == tr.selection
    from models.export import checkpoint_info, metadata_for

    md = metadata_for(model, checkpoint_info(st))
    assert md["rdre.output"] == model.output
    assert json.loads(md["rdre.output_selection"])["output"] == model.output
    assert json.loads(md["rdre.components"])["fusion_norm"] is True


def test_ablation_one_and_tables(mvtec_dir, tmp_path):
    from models import ablation

    data = os.path.dirname(mvtec_dir)
    out = str(tmp_path / "abl")
    common = ["--data", data, "--out", out, "--size", "64", "--batch-size", "2", "--steps-student", "1", "--steps-seg", "1",
              "--steps-rd", "1", "--random-teacher"]
    for v in ("plain-rd", "defaults"):
        assert ablation.main(["one", "--category", "cat", "--variant", v] + common) == 0
    res = json.load(open(os.path.join(out, "cat", "defaults", "result.json")))
    assert set(res["maps"]) == {"seg", "rd", "combo"}
    assert res["size"] == 64 and res["images"] == 4
    for m in res["maps"].values():
        assert {"image_auroc", "pixel_auroc", "pixel_ap", "aupro", "val_image_auroc", "val_pixel_ap"} <= set(m)
    rd = json.load(open(os.path.join(out, "cat", "plain-rd", "result.json")))
    assert set(rd["maps"]) == {"rd"} and rd["train_config"]["normal_prob"] == 1.0
    assert ablation.main(["table", "--out", out]) == 0
    md = open(os.path.join(out, "ablation.md")).read()
    assert "| defaults | seg |" in md and "| plain-rd | rd |" in md
    # A finished run is skipped.
    assert ablation.main(["one", "--category", "cat", "--variant", "defaults"] + common) == 0


def _hold_out(category: str, n: int) -> None:
    """prepare --val-every's layout: the first n training images moved to CAT/validation/good."""
    val = os.path.join(category, "validation", "good")
    os.makedirs(val)
    train = os.path.join(category, "train", "good")
    for name in sorted(os.listdir(train))[:n]:
        shutil.move(os.path.join(train, name), os.path.join(val, name))


def test_ablation_one_HeldOutValidation_IsMeasuredBesideTheTrainingImages(mvtec_dir, tmp_path):
    from models import ablation

    _hold_out(mvtec_dir, 2)
    out = str(tmp_path / "abl")
    common = ["--data", os.path.dirname(mvtec_dir), "--out", out, "--size", "64", "--batch-size", "2", "--steps-student", "1",
              "--steps-seg", "1", "--steps-rd", "1", "--random-teacher"]
    assert ablation.main(["one", "--category", "cat", "--variant", "defaults"] + common) == 0
    res = json.load(open(os.path.join(out, "cat", "defaults", "result.json")))
    for m in res["maps"].values():
        assert m["val_ho_images"] == 2
        assert 0 <= m["val_ho_image_auroc"] <= 1 and 0 <= m["val_ho_pixel_ap"] <= 1
        for key in ("image_auroc_by_k", "val_image_auroc_by_k", "val_ho_image_auroc_by_k"):
            assert set(m[key]) == {str(k) for k in ablation.SCORE_KS}
        # k = 100 is the reported image score.
        assert m["image_auroc_by_k"]["100"] == m["image_auroc"]
        assert m["val_ho_image_auroc_by_k"]["100"] == m["val_ho_image_auroc"]


def test_ablation_pairs_HeldOutRuns_DeltasAndSignAgreement(mvtec_dir, tmp_path):
    from models import ablation

    _hold_out(mvtec_dir, 2)
    out = tmp_path / "runs"
    common = ["--data", os.path.dirname(mvtec_dir), "--out", str(out / "f3-s0"), "--size", "64", "--batch-size", "2",
              "--steps-student", "1", "--steps-seg", "1", "--steps-rd", "1", "--random-teacher"]
    for v in ("defaults", "plain-rd"):
        assert ablation.main(["one", "--category", "cat", "--variant", v] + common) == 0
    # A second run whose numbers are set by hand, so that every sign is known: the test says defaults are
    # ahead in image AUROC and behind in AP, the training-image validation agrees on both, the held-out one
    # on neither; the held-out validation prefers k = 10, which is worse on the test images.
    for v, (t, vi, hi, ap, va, ha, k10) in (("defaults", (0.9, 0.9, 0.5, 0.2, 0.2, 0.6, 0.85)),
                                            ("plain-rd", (0.8, 0.8, 0.7, 0.4, 0.4, 0.3, 0.8))):
        src = out / "f3-s0" / "cat" / v / "result.json"
        res = json.loads(src.read_text())
        m = res["maps"]["rd"]
        m.update(image_auroc=t, val_image_auroc=vi, val_ho_image_auroc=hi, pixel_ap=ap, val_pixel_ap=va, val_ho_pixel_ap=ha)
        m["image_auroc_by_k"] = {"10": k10, "100": t, "1000": t, "4000": t}
        m["val_ho_image_auroc_by_k"] = {"10": 1.0, "100": hi, "1000": hi, "4000": hi}
        dst = out / "f0-s1" / "cat" / v / "result.json"
        dst.parent.mkdir(parents=True)
        dst.write_text(json.dumps(res))
    rows = {r["run"]: r for r in ablation.paired_deltas(str(out))}
    assert set(rows) == {"f3-s0 cat", "f0-s1 cat"}
    real = [json.loads((out / "f3-s0" / "cat" / v / "result.json").read_text())["maps"]["rd"] for v in ("defaults", "plain-rd")]
    assert rows["f3-s0 cat"]["hA"] == pytest.approx(100 * (real[0]["val_ho_pixel_ap"] - real[1]["val_ho_pixel_ap"]))
    r = rows["f0-s1 cat"]
    assert (r["tI"], r["vI"], r["hI"]) == pytest.approx((10, 10, -20))
    assert (r["tA"], r["vA"], r["hA"]) == pytest.approx((-20, -20, 30))
    assert r["a"]["k"] == 10 and r["a"]["test_at_k"] == pytest.approx(85)
    report = ablation.pairs_report([r])
    assert "image AUROC, validation on training images: the sign agrees with the test's in 1 of 1" in report
    assert "image AUROC, validation on held-out normals: the sign agrees with the test's in 0 of 1" in report
    assert "pixel AP, validation on held-out normals: the sign agrees with the test's in 0 of 1" in report
    # Both sides chose k = 10: defaults 85 against 90, plain RD 80 against 80.
    assert "test image AUROC -2.50 on average against k = 100, over 2 models" in report
    # The floor: the held-out validation prefers plain RD's image AUROC and the defaults' AP, so it ships plain
    # RD's score (test 80, +0 against plain RD) with the defaults' map (AP 20, -20).
    assert r["floor"]["score"] == "baseline" and r["floor"]["map"] == "recipe"
    assert (r["floor"]["image_auroc"], r["floor"]["pixel_ap"]) == pytest.approx((80, 20))
    assert "| f0-s1 cat | plain RD | defaults | +0.00 | -20.00 |" in report
    # The same hand-set run with the held-out validation preferring the defaults' image AUROC: the score of both.
    ra, rb = (json.loads((out / "f0-s1" / "cat" / v / "result.json").read_text()) for v in ("defaults", "plain-rd"))
    for res, hi in ((ra, 0.7), (rb, 0.5)):
        res["maps"]["rd"]["val_ho_image_auroc"] = hi
        dst = out / "f1-s1" / "cat" / res["variant"] / "result.json"
        dst.parent.mkdir(parents=True)
        dst.write_text(json.dumps(res))
    rows = {r["run"]: r for r in ablation.paired_deltas(str(out))}
    r2 = rows["f1-s1 cat"]
    assert r2["floor"]["score"] == "both" and r2["floor"]["image_auroc"] == pytest.approx(100 * ablation.combined_auroc(ra, rb))
    assert "| f1-s1 cat | both | defaults |" in ablation.pairs_report([r2])
    both = ablation.pairs_report(list(rows.values()))
    assert both.count("| cat | 3 |") == 1 and "| mean |  |" in both
    # Runs without held-out validation are refused with the reason.
    with pytest.raises(SystemExit, match="no run in .* held-out validation"):
        ablation.main(["pairs", "--out", str(tmp_path / "none")])


def test_combined_auroc_ByHand_WeightsByNormalScores():
    from models import ablation

    keys, labels = ["good/a", "good/b", "bad/c", "bad/d"], [False, False, True, True]
    ra = {"keys": keys, "labels": labels, "norm": {"rd": 2.0}, "scores": {"rd": {"topk": [2, 6, 4, 8]}}}
    rb = {"keys": keys, "labels": labels, "norm": {"rd": 1.0}, "scores": {"rd": {"topk": [3, 0, 1, 4]}}}
    # 0.25 x a + 0.5 x b = [2, 1.5 | 1.5, 4]: of the 4 good/defect pairs, 2 won, 1 tied, 1 lost; each alone 0.75.
    assert ablation.combined_auroc(ra, rb) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="different test images"):
        ablation.combined_auroc(ra, dict(rb, keys=keys[::-1]))


def test_ablation_prepare_mtdFolds_PartitionTheGoodImages(tmp_path):
    from PIL import Image

    from models import ablation

    mtd = tmp_path / "mtd"
    (mtd / "MT_Free" / "Imgs").mkdir(parents=True)
    for i in range(8):
        Image.new("L", (40, 30), 10 * i).save(mtd / "MT_Free" / "Imgs" / f"exp1_num_{i}.jpg")
    held = []
    for k in range(4):
        out = tmp_path / f"f{k}"
        assert ablation.main(["prepare", "--out", str(out), "--size", "16", "--mvtec", "", "--dtd", "", "--tflite", "",
                              "--mtd", str(mtd), "--mtd-fold", str(k)]) == 0
        test = sorted(os.listdir(out / "mtd" / "test" / "good"))
        train = sorted(os.listdir(out / "mtd" / "train" / "good"))
        assert len(test) == 2 and len(train) == 6 and not set(test) & set(train)
        held += test
        if k == 3:  # --val-every holds every third training image out, in validation/good
            out = tmp_path / "v3"
            assert ablation.main(["prepare", "--out", str(out), "--size", "16", "--mvtec", "", "--dtd", "", "--tflite", "",
                                  "--mtd", str(mtd), "--mtd-fold", "3", "--val-every", "3"]) == 0
            val = sorted(os.listdir(out / "mtd" / "validation" / "good"))
            assert val == [train[2], train[5]]
            assert sorted(os.listdir(out / "mtd" / "train" / "good")) == sorted(set(train) - set(val))
    # Every image is a good test image in exactly one fold; fold 3 is the default split.
    assert sorted(held) == sorted(f"exp1_num_{i}.png" for i in range(8))
    assert sorted(os.listdir(tmp_path / "f3" / "mtd" / "test" / "good")) == ["exp1_num_3.png", "exp1_num_7.png"]
    with pytest.raises(SystemExit):
        ablation.main(["prepare", "--out", str(tmp_path / "bad"), "--mvtec", "", "--dtd", "", "--tflite", "",
                       "--mtd", str(mtd), "--mtd-fold", "4"])


def test_Trainer_load_OtherRecipe_Errors(tmp_path):
    images = smooth_images(8, SIZE, 0)
    base = dict(size=SIZE, batch_size=4, steps_student=1, steps_seg=0, seed=0, log_every=1000, ckpt_every=1000)
    ckpt = str(tmp_path / "c.pt")
    tr = Trainer(TrainConfig(**base, normal_prob=0.5), images)
    tr._run_stage("student", 1, ckpt)
    with pytest.raises(ValueError, match="another recipe.*normal_prob"):
        Trainer(TrainConfig(**base), images).load(ckpt)
    Trainer(TrainConfig(**dict(base, steps_student=3), normal_prob=0.5), images).load(ckpt)  # more steps: fine


def test_Trainer_load_CheckpointFromBeforeTheNewDefaults_Errors(tmp_path):
    # A checkpoint without the new settings was trained with the paper's reading: the new defaults refuse it,
    # --preset paper's settings accept it.
    images = smooth_images(8, SIZE, 0)
    base = dict(size=SIZE, batch_size=4, steps_student=1, steps_seg=0, seed=0, log_every=1000, ckpt_every=1000)
    paper = dict(seg_normal_prob=None, anomaly_fg=False, anomaly_self=0.0, output="seg")
    ckpt = str(tmp_path / "old.pt")
    tr = Trainer(TrainConfig(**base, **paper), images)
    tr._run_stage("student", 1, ckpt)
    st = torch.load(ckpt, weights_only=False)
    for k in ("seg_normal_prob", "anomaly_fg", "anomaly_self", "output"):
        del st["train_config"][k]
    torch.save(st, ckpt)
    with pytest.raises(ValueError, match="another recipe"):
        Trainer(TrainConfig(**base), images).load(ckpt)
    Trainer(TrainConfig(**base, **paper), images).load(ckpt)
