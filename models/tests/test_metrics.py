"""The numpy evaluator against the shared metric vectors and brute force; predict + evaluate CLIs."""

import json
import os

import numpy as np
import pytest

from models import evaluate as evaluate_cli
from models.rdre import metrics

from .conftest import SHARED

VECTORS = os.path.join(SHARED, "metrics-vectors")


def brute_auroc(s, y):
    pos, neg = s[y], s[~y]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size))


def test_auroc_MatchesPairCounting():
    rng = np.random.RandomState(0)
    s = rng.randint(0, 6, 300).astype(np.float32)  # heavy ties
    y = rng.rand(300) < 0.3
    assert abs(metrics.auroc(s, y) - brute_auroc(s, y)) < 1e-12


def test_average_precision_MatchesDefinition():
    rng = np.random.RandomState(1)
    s = rng.randint(0, 8, 200).astype(np.float64)
    y = rng.rand(200) < 0.4
    want = 0.0
    prev_r = 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        pred = s >= t
        tp = (pred & y).sum()
        r = tp / y.sum()
        want += (r - prev_r) * tp / pred.sum()
        prev_r = r
    assert abs(metrics.average_precision(s, y) - want) < 1e-12


def test_label_regions_EightConnectivity():
    m = np.zeros((7, 7), bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True  # diagonal chain: one region
    m[4, 4:7] = True
    m[5, 3] = True  # touches (4, 4) at a corner
    m[6, 0] = True
    lab, n = metrics.label_regions(m)
    assert n == 3
    assert lab[0, 0] == lab[2, 2] and lab[4, 6] == lab[5, 3] and lab[6, 0] not in (lab[0, 0], lab[4, 4])
    assert (lab > 0).sum() == m.sum()


@pytest.mark.parametrize("case", ["v1_tiny8", "v3_ties64"])
def test_evaluate_SharedVectors(case):
    root = os.path.join(VECTORS, case)
    if not os.path.isdir(root):
        pytest.skip(f"metric vectors {root} are absent")
    exp = json.load(open(os.path.join(root, "expected.json")))
    cat = exp["category"]
    res = evaluate_cli.evaluate(os.path.join(root, "maps", cat, "test"), os.path.join(root, "data", cat), os.path.join(root, "scores.json"))
    assert abs(res["pixel_auroc"] - exp["pixel_auroc"]) < 1e-9
    assert abs(res["pixel_ap"] - exp["pixel_ap"]) < 1e-9
    assert abs(res["aupro"] - exp["pixel_aupro"]) < 1e-9
    assert abs(res["image_auroc"] - exp["image_auroc"]) < 1e-9
    assert abs(res["pixel_f1_max"] - exp["pixel_f1_max"]) < 1e-9
    assert abs(res["pixel_f1_threshold"] - exp["pixel_f1_max_threshold"]) < 1e-9
    assert abs(res["image_f1_max"] - exp["image_f1_max"]) < 1e-9


def test_aupro_PerfectAndBadInput():
    g = np.zeros((10, 10), bool)
    g[2:4, 2:4] = True
    m = g.astype(np.float32)
    assert abs(metrics.aupro([m], [g]) - 1.0) < 1e-12
    with pytest.raises(ValueError):
        metrics.aupro([m], [np.zeros((10, 10), bool)])
    with pytest.raises(ValueError):
        metrics.auroc(np.ones(3), np.ones(3, bool))


def test_predict_evaluate_EndToEnd(mvtec_dir, tmp_path, ort_lib):
    """Train for a few steps on the tiny category, export, predict with ONNX Runtime and evaluate."""
    from models import predict, train

    out = str(tmp_path / "run")
    rc = train.main(["--data", mvtec_dir, "--random-teacher", "--size", "64", "--batch-size", "4", "--steps-student", "3",
                     "--steps-seg", "2", "--out", out, "--export", "--log-every", "1"])
    assert rc == 0
    assert os.path.isfile(os.path.join(out, "model.onnx")) and os.path.isfile(os.path.join(out, "train.log"))
    maps = str(tmp_path / "maps")
    assert predict.main(["--model", os.path.join(out, "model.onnx"), "--data", mvtec_dir, "--out", maps]) == 0
    scores = json.load(open(os.path.join(maps, "scores.json")))
    assert sorted(scores) == ["good/000", "good/001", "scratch/000", "scratch/001"]
    m = np.load(os.path.join(maps, "scratch", "000.npy"))
    assert m.shape == (40, 48) and m.dtype == np.float32
    # The checkpoint path (PyTorch) gives the same maps as the ONNX file (ONNX Runtime).
    maps_pt = str(tmp_path / "maps_pt")
    assert predict.main(["--model", os.path.join(out, "checkpoint.pt"), "--data", mvtec_dir, "--out", maps_pt]) == 0
    assert np.abs(np.load(os.path.join(maps_pt, "scratch", "000.npy")) - m).max() < 1e-4
    res = evaluate_cli.evaluate(maps, mvtec_dir, os.path.join(maps, "scores.json"))
    for k in ("image_auroc", "pixel_auroc", "pixel_ap", "aupro"):
        assert 0.0 <= res[k] <= 1.0
    assert evaluate_cli.main(["--maps", str(tmp_path / "nowhere"), "--gt", mvtec_dir]) == 1
