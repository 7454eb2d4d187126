"""The floor (rdre/floor.py, issue 17): recipe and plain RD trained side by side, compared on held-out normals, and
exported per output. Real training runs (random teacher, tiny schedule), real checkpoints and ONNX Runtime."""

import json
import os

import numpy as np
import onnx
import pytest
import torch

from models import export, train
from models.rdre import floor
from models.rdre.trainer import load_model
from models.rdre.validation import topk_scores

from .conftest import smooth_images, write_png, write_test_split

SIZE = 32


@pytest.fixture(scope="module")
def floor_data(tmp_path_factory):
    """A category of 25 training images: with the floor, 5 are held out."""
    data = tmp_path_factory.mktemp("floor") / "cat"
    imgs = (smooth_images(25, 48, 3).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    for i in range(25):
        write_png(str(data / "train" / "good" / f"{i:03d}.png"), imgs[i])
    return str(data)


def train_argv(data, out):
    return ["--data", data, "--random-teacher", "--size", str(SIZE), "--batch-size", "4", "--steps-student", "3", "--steps-seg", "2",
            "--log-every", "1", "--ckpt-every", "100", "--out", out]


@pytest.fixture(scope="module")
def floor_run(floor_data, tmp_path_factory):
    """One `models.train` run with the floor on (the rdre preset's default)."""
    out = str(tmp_path_factory.mktemp("floor-run") / "run")
    assert train.main(train_argv(floor_data, out)) == 0
    return floor_data, out


def props(path):
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def test_held_out_EveryFifth_PartitionsInNameOrder():
    keep, held = floor.held_out(12)
    assert held == [4, 9]
    assert sorted(keep + held) == list(range(12)) and not set(keep) & set(held)
    assert floor.held_out(3, 2) == ([0, 2], [1])
    with pytest.raises(ValueError, match="want 2 or more"):
        floor.held_out(10, 1)


def test_choose_StrictlyBetter_TakesThatOutput():
    r = {"image_auroc": 0.9, "pixel_ap": 0.5}
    # Ties keep the recipe's map; the score is plain RD's only where plain RD is strictly better, else both.
    assert floor.choose(r, dict(r)) == {"score": "both", "map": "recipe"}
    assert floor.choose(r, {"image_auroc": 0.95, "pixel_ap": 0.4}) == {"score": "baseline", "map": "recipe"}
    assert floor.choose(r, {"image_auroc": 0.8, "pixel_ap": 0.6}) == {"score": "both", "map": "baseline"}
    assert floor.choose(r, {"image_auroc": 1.0, "pixel_ap": 0.6}) == {"score": "baseline", "map": "baseline"}


def test_record_Both_WeightsFromNormalScores():
    r = {"image_auroc": 0.9, "pixel_ap": 0.5, "normal_score": 2.0}
    b = {"image_auroc": 0.8, "pixel_ap": 0.5, "normal_score": 0.5}
    rec = floor.record(r, b, 7, both={"image_auroc": 0.92, "image": 1.1, "image_f1": 0.9})
    assert rec["score"] == "both" and rec["weights"] == {"recipe": 0.25, "baseline": 1.0}
    assert "both: 0.9200" in floor.summary(rec) and "score from both" in floor.summary(rec)
    # The combined score's thresholds come from its own validation, the map's from the map's model.
    assert floor.thresholds(rec, {"pixel": 1.0, "image": 9.0}, {"pixel": 2.0, "image": 8.0}) == {"pixel": 1.0, "image": 1.1, "image_f1": 0.9}
    assert "weights" not in floor.record(r, dict(b, image_auroc=0.95), 7)
    with pytest.raises(ValueError, match="normal samples is 0"):
        floor.record(r, dict(b, normal_score=0), 7)


def test_read_record_Malformed_ClearError(tmp_path):
    assert floor.read_record(str(tmp_path)) is None
    (tmp_path / floor.RECORD).write_text("{not json")
    with pytest.raises(ValueError, match="floor record"):
        floor.read_record(str(tmp_path))
    (tmp_path / floor.RECORD).write_text(json.dumps({"format": 2, "score": "both", "map": "recipe"}))
    with pytest.raises(ValueError, match="positive weights"):
        floor.read_record(str(tmp_path))
    (tmp_path / floor.RECORD).write_text(json.dumps({"format": 1, "score": "both", "map": "recipe", "weights": {"recipe": 1, "baseline": 1}}))
    with pytest.raises(ValueError, match="format-1"):  # format 1 knew no combined score
        floor.read_record(str(tmp_path))
    (tmp_path / floor.RECORD).write_text(json.dumps({"format": 1, "score": "baseline", "map": "recipe"}))
    assert floor.read_record(str(tmp_path))["score"] == "baseline"  # format 1 records still read
    (tmp_path / floor.RECORD).write_text(json.dumps({"format": 1, "score": "plain", "map": "recipe"}))
    with pytest.raises(ValueError, match="score in"):
        floor.read_record(str(tmp_path))


def test_train_Floor_TrainsBaselineAndRecordsTheChoice(floor_run):
    data, out = floor_run
    rec = floor.read_record(out)
    assert rec["checked"] and rec["held_out"] == 5 and rec["every"] == floor.HOLD_OUT_EVERY
    assert rec["score"] in ("both", "baseline") and rec["map"] in ("recipe", "baseline")
    assert floor.choose(rec["recipe"], rec["baseline"]) == {"score": rec["score"], "map": rec["map"]}
    assert rec["recipe"]["normal_score"] > 0 and rec["baseline"]["normal_score"] > 0
    assert 0 <= rec["both"]["image_auroc"] <= 1
    for side in ("recipe", "baseline"):
        assert 0.0 <= rec[side]["image_auroc"] <= 1.0 and 0.0 <= rec[side]["pixel_ap"] <= 1.0
    recipe, st = load_model(os.path.join(out, "checkpoint.pt"))
    base, bst = load_model(os.path.join(out, floor.BASELINE_DIR, "checkpoint.pt"))
    # Plain RD: no segmentation head, no synthesis, the recipe's student + segmentation steps, the same 20 images.
    assert base.seg is None and bst["train_config"]["normal_prob"] == 1.0
    assert bst["step_student"] == st["step_student"] + st["step_seg"] == 5
    assert bst["train_config"]["data_fingerprint"] == st["train_config"]["data_fingerprint"]


@pytest.mark.parametrize("score,amap", [("baseline", "recipe"), ("recipe", "baseline"), ("baseline", "baseline"), ("recipe", "recipe"),
                                        ("both", "recipe"), ("both", "baseline")])
def test_export_checkpoint_FloorRecord_ExportsTheChosenOutputs(floor_run, tmp_path, ort_lib, score, amap):
    from models.rdre.ort import OrtSession

    _, out = floor_run
    w = {"recipe": 0.3, "baseline": 0.7}
    rec = dict(floor.read_record(out), score=score, map=amap, weights=w)
    run = tmp_path / "run"
    os.makedirs(run / floor.BASELINE_DIR)
    for rel in ("checkpoint.pt", os.path.join(floor.BASELINE_DIR, "checkpoint.pt")):
        with open(os.path.join(out, rel), "rb") as src, open(run / rel, "wb") as dst:
            dst.write(src.read())
    floor.write_record(str(run), rec)
    path = str(tmp_path / "m.onnx")
    md = export.export_checkpoint(str(run / "checkpoint.pt"), path)
    assert json.loads(props(path)["rdre.floor"]) == rec == json.loads(md["rdre.floor"])

    recipe, _ = load_model(str(run / "checkpoint.pt"))
    base, _ = load_model(str(run / floor.BASELINE_DIR / "checkpoint.pt"))
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want_map, _, want_rd = (recipe if amap == "recipe" else base)(x)
        if score == "both":
            want_score = w["recipe"] * topk_scores(recipe(x)[0]) + w["baseline"] * topk_scores(base(x)[0])
        else:
            want_score = topk_scores((recipe if score == "recipe" else base)(x)[0])
    with OrtSession(path, ort_lib) as sess:
        got_map, got_score, got_rd = sess.run({"image": x.numpy()}, ["anomaly_map", "score", "rd_map"])
    assert np.abs(got_map - want_map.numpy()).max() < 1e-4 and np.abs(got_rd - want_rd.numpy()).max() < 1e-4
    assert np.abs(got_score - want_score.numpy()).max() < 1e-4
    spec = props(path)["rdre.score"]
    # floor-mean:KIND:W1,W2: W1 weighs the score of the model that gives the maps.
    both = "floor-mean:topk_mean:100:" + ("0.3,0.7" if amap == "recipe" else "0.7,0.3")
    assert spec == (both if score == "both" else "topk_mean:100")
    assert floor.inner_spec(spec) == "topk_mean:100"
    # The two recipes' scores differ, so the check above tells which model gave the score.
    with torch.no_grad():
        assert np.abs(topk_scores(recipe(x)[0]).numpy() - topk_scores(base(x)[0]).numpy()).max() > 1e-3


def test_export_checkpoint_FloorBaselineMissingOrOtherData_ClearError(floor_run, tmp_path):
    _, out = floor_run
    run = tmp_path / "run"
    os.makedirs(run)
    with open(os.path.join(out, "checkpoint.pt"), "rb") as src, open(run / "checkpoint.pt", "wb") as dst:
        dst.write(src.read())
    floor.write_record(str(run), dict(floor.read_record(out), score="baseline", map="recipe"))
    with pytest.raises(ValueError, match="is missing"):
        export.export_checkpoint(str(run / "checkpoint.pt"), str(tmp_path / "m.onnx"))
    # A baseline trained on other images (its fingerprint differs) is refused, not mixed in.
    os.makedirs(run / floor.BASELINE_DIR)
    st = torch.load(os.path.join(out, floor.BASELINE_DIR, "checkpoint.pt"), weights_only=False)
    st["train_config"]["data_fingerprint"] = "0" * 64
    torch.save(st, str(run / floor.BASELINE_DIR / "checkpoint.pt"))
    with pytest.raises(ValueError, match="other images"):
        export.export_checkpoint(str(run / "checkpoint.pt"), str(tmp_path / "m.onnx"))
    assert not os.path.exists(tmp_path / "m.onnx")


def test_FloorModel_DifferentTeachers_Refused(floor_run):
    _, out = floor_run
    recipe, _ = load_model(os.path.join(out, "checkpoint.pt"))
    base, _ = load_model(os.path.join(out, floor.BASELINE_DIR, "checkpoint.pt"))
    with torch.no_grad():
        next(base.teacher.parameters()).add_(1.0)
    with pytest.raises(ValueError, match="different weights"):
        floor.FloorModel(recipe, base)


def test_train_FloorFewImages_UncheckedNoStaleRecord(mvtec_dir, tmp_path):
    out = str(tmp_path / "run")
    common = ["--data", mvtec_dir, "--random-teacher", "--size", str(SIZE), "--batch-size", "2", "--steps-student", "1",
              "--steps-seg", "1", "--out", out]
    assert train.main(common + ["--export"]) == 0
    rec = floor.read_record(out)
    assert rec["checked"] is False and "6 training images, fewer than 20" in rec["why"]
    assert not os.path.exists(os.path.join(out, floor.BASELINE_DIR))
    assert json.loads(props(os.path.join(out, "model.onnx"))["rdre.floor"]) == rec
    # Trained again without the floor in the same folder: the old record must not steer the export.
    assert train.main(common + ["--no-floor", "--export"]) == 0
    assert floor.read_record(out) is None and "rdre.floor" not in props(os.path.join(out, "model.onnx"))


def test_train_FloorProgress_BaselineHasItsOwnStage(floor_data, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert train.main(train_argv(floor_data, out) + ["--progress-json", "-", "--preview-every", "1"]) == 0
    ev = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"event"')]
    starts = [e for e in ev if e["event"] == "start"]
    # The recipe announces the baseline's steps up front (for the ETA); the baseline reports under its own name.
    assert [e["steps"] for e in starts] == [{"student": 3, "seg": 2, "baseline": 5}, {"baseline": 5}]
    assert starts[0]["images"] == 20
    prog = [(e["stage"], e["step"]) for e in ev if e["event"] == "progress"]
    assert prog == [("student", 1), ("student", 2), ("student", 3), ("seg", 1), ("seg", 2)] + [("baseline", i) for i in range(1, 6)]
    for e in ev:
        if e["event"] == "progress" and e["stage"] == "baseline":
            assert set(e["elapsed_s"]) == {"baseline"} and "preview" not in e  # no synthetic anomalies to preview
    assert [e["steps"] for e in ev if e["event"] == "done"] == [{"student": 3, "seg": 2}, {"baseline": 5}]
    fl = [e for e in ev if e["event"] == "floor"]
    rec = floor.read_record(out)
    assert len(fl) == 1 and fl[0]["record"] == rec
    # The recipe's thresholds, the comparison, then the thresholds of what ships (a checked floor always ships
    # an output of plain RD or the combined score); the baseline's own calibration is not announced.
    stages = [e for e in ev if e["event"] == "stage"]
    assert [e["stage"] for e in stages[:2]] == ["calibrate", "floor"]
    recipe_th = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=False)["thresholds"]
    base_th = torch.load(os.path.join(out, floor.BASELINE_DIR, "checkpoint.pt"), weights_only=False)["thresholds"]
    assert stages[0]["thresholds"] == pytest.approx(recipe_th)
    assert rec["checked"] and rec["score"] != "recipe"
    assert len(stages) == 3 and stages[2]["thresholds"] == pytest.approx(floor.thresholds(rec, recipe_th, base_th))
    assert not any(f.startswith("baseline") for f in os.listdir(os.path.join(out, "previews")))


def test_thresholds_EachFromTheOutputItThresholds():
    r, b = {"pixel": 1.0, "pixel_f1": 0.5, "image": 2.0, "image_f1": 0.9}, {"pixel": 3.0, "pixel_f1": 0.4, "image": 4.0, "image_f1": 0.8}
    assert floor.thresholds({"score": "baseline", "map": "recipe"}, r, b) == {"pixel": 1.0, "pixel_f1": 0.5, "image": 4.0, "image_f1": 0.8}
    assert floor.thresholds({"score": "baseline", "map": "baseline"}, r, b) == b
    assert floor.thresholds({"score": "recipe", "map": "recipe"}, r, None) == r


def test_train_FloorStoppedInBaseline_ResumeFinishesIt(floor_data, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from .conftest import REPO

    out = str(tmp_path / "run")
    args = [sys.executable, "-m", "models.train", "--data", floor_data, "--out", out, "--size", str(SIZE), "--steps-student", "2",
            "--steps-seg", "300", "--batch-size", "2", "--log-every", "1", "--ckpt-every", "100000", "--random-teacher",
            "--progress-json", "-", "--preview-every", "0", "--threads", "1"]
    p = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    for line in p.stdout:
        if line.startswith('{"event":"progress"') and json.loads(line)["stage"] == "baseline":
            p.send_signal(signal.SIGTERM)
            break
        assert time.time() < deadline, "the baseline did not start within 5 minutes"
    rest, _ = p.communicate(timeout=300)
    assert p.returncode == 143, rest
    stopped = [json.loads(x) for x in rest.splitlines() if x.startswith('{"event":"stopped"')]
    assert len(stopped) == 1 and set(stopped[0]["steps"]) == {"baseline"}, rest
    at = stopped[0]["steps"]["baseline"]
    assert at < 302 and torch.load(os.path.join(out, floor.BASELINE_DIR, "checkpoint.pt"), weights_only=False)["step_student"] == at
    assert floor.read_record(out) is None  # no comparison before the baseline is done

    r = subprocess.run(args + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    ev = [json.loads(x) for x in r.stdout.splitlines() if x.startswith('{"event"')]
    resumed = [e["steps"] for e in ev if e["event"] == "resumed"]
    assert resumed == [{"student": 2, "seg": 300}, {"baseline": at}]
    # The recipe was finished: no step of it again; the baseline goes on from where it stopped.
    assert [e["step"] for e in ev if e["event"] == "progress"][0] == at + 1
    assert floor.read_record(out)["checked"] is True


def test_train_FloorResumeOfOtherImages_Refused(floor_data, tmp_path, caplog):
    out = str(tmp_path / "run")
    argv = train_argv(floor_data, out)
    # Trained on all 25 images without the floor; resumed with it, 5 of them would be "held out" after training.
    assert train.main(argv + ["--no-floor"]) == 0
    assert train.main(argv + ["--resume"]) == 1
    assert "trained on other images" in caplog.text and "--no-floor" in caplog.text
    assert floor.read_record(out) is None


def test_floor_eval_FloorRun_ShipsWhatTheRecordSays(floor_run, tmp_path, capsys):
    import shutil

    from models import ablation
    from models.rdre import metrics

    data, out = floor_run
    root = tmp_path / "cat"
    shutil.copytree(data, root)
    imgs = (smooth_images(4, 48, 9).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    write_test_split(root, imgs[:2], imgs[2:])
    run = tmp_path / "runs" / "r0"
    shutil.copytree(out, run)
    rec = dict(floor.read_record(str(run)), score="both", map="baseline", weights={"recipe": 0.3, "baseline": 0.7})
    floor.write_record(str(run), rec)
    r = ablation.floor_eval(str(run), str(root))
    t = r["test"]
    # The map's metrics are plain RD's; the image score is the record's weighted sum, computed here by hand.
    assert {k: t["floor"][k] for k in ("pixel_auroc", "pixel_ap", "aupro")} == {k: t["baseline"][k] for k in ("pixel_auroc", "pixel_ap", "aupro")}
    res = {side: ablation.evaluate_checkpoint(str(run / rel), str(root)) for side, rel in
           (("recipe", "checkpoint.pt"), ("baseline", os.path.join(floor.BASELINE_DIR, "checkpoint.pt")))}
    s = 0.3 * np.array(res["recipe"]["scores"]["rd"]["topk"]) + 0.7 * np.array(res["baseline"]["scores"]["rd"]["topk"])
    assert t["floor"]["image_auroc"] == pytest.approx(100 * metrics.auroc(s, np.array(res["recipe"]["labels"])))
    assert json.loads((run / "floor-eval.json").read_text())["test"] == t
    assert ablation.main(["floor-eval", "--table", str(tmp_path / "runs")]) == 0
    assert "| r0 | 5 | both | baseline |" in capsys.readouterr().out
    (run / floor.RECORD).unlink()
    with pytest.raises(ValueError, match="no checked floor record"):
        ablation.floor_eval(str(run), str(root))
