"""ONNX export: contract, metadata, and parity with PyTorch in ONNX Runtime (the library the server uses)."""

import json
import os

import numpy as np
import onnx
import pytest
import torch

from models import golden
from models.export import export_model
from models.rdre.ort import OrtSession

from .conftest import smooth_images, write_png

KEYS = [
    "rdre.format_version", "rdre.input_size", "rdre.mean", "rdre.std", "rdre.resize", "rdre.teacher", "rdre.category",
    "rdre.steps_student", "rdre.steps_seg", "rdre.seed", "rdre.data_fingerprint", "rdre.score", "rdre.thresholds",
    "rdre.model_version", "rdre.created", "rdre.params", "rdre.gflops",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = golden.build_model(64, 0)
    path = str(tmp_path_factory.mktemp("onnx") / "m.onnx")
    info = dict(category="tiles", steps_student=5, steps_seg=3, seed=0, data_fingerprint="ab" * 32,
                thresholds={"pixel": 0.5, "image": 0.4}, model_version="t1")
    md = export_model(model, path, info)
    return model, path, md


def test_export_model_Contract(exported):
    model, path, md = exported
    m = onnx.load(path)
    assert m.opset_import[0].version == 17
    assert [i.name for i in m.graph.input] == ["image"]
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(m.graph.input[0]) == ["N", 3, 64, 64]
    outs = {o.name: dims(o) for o in m.graph.output}
    assert outs == {"anomaly_map": ["N", 1, 64, 64], "score": ["N"], "rd_map": ["N", 1, 64, 64]}
    props = {p.key: p.value for p in m.metadata_props}
    for k in KEYS:
        assert k in props and isinstance(props[k], str), k
    assert props["rdre.mean"] == "0.5,0.5,0.5" and props["rdre.std"] == "0.5,0.5,0.5"
    assert props["rdre.input_size"] == "64" and props["rdre.format_version"] == "1"
    assert props["rdre.resize"] == "bilinear-antialias" and props["rdre.teacher"] == "mobilenet_v2"
    assert json.loads(props["rdre.thresholds"]) == {"image": 0.4, "pixel": 0.5}
    assert int(props["rdre.params"]) == sum(p.numel() for p in model.parameters())
    assert float(props["rdre.gflops"]) > 0
    assert props["rdre.created"].endswith("Z")


@pytest.mark.parametrize("batch", [1, 3])
def test_export_model_ParityWithOnnxRuntime(exported, ort_lib, batch):
    model, path, _ = exported
    x = torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        want = [t.numpy() for t in model(x)]
    with OrtSession(path, ort_lib) as sess:
        got = sess.run({"image": x.numpy()}, ["anomaly_map", "score", "rd_map"])
        assert sess.metadata("rdre.category") == "tiles"
        assert sess.metadata("rdre.nonexistent") is None
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert np.abs(g - w).max() < 1e-4


def test_export_model_TrainedParity(ort_lib, tmp_path):
    # A briefly trained model (non-trivial BN statistics, learned mixing weights) at 128 with ASSA windows of 8.
    from models.rdre.trainer import TrainConfig, Trainer

    tr = Trainer(TrainConfig(size=128, batch_size=2, steps_student=2, steps_seg=2, log_every=100, ckpt_every=100), smooth_images(4, 128, 0))
    tr.run()
    path = str(tmp_path / "t.onnx")
    export_model(tr.model, path, {})
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        want = [t.numpy() for t in tr.model.eval()(x)]
    with OrtSession(path, ort_lib) as sess:
        got = sess.run({"image": x.numpy()}, ["anomaly_map", "score", "rd_map"])
    for g, w in zip(got, want):
        assert np.abs(g - w).max() < 1e-4


def test_golden_main_WritesFiles(tmp_path, ort_lib):
    img = (smooth_images(1, 80, 3)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)[:, :72]
    p = str(tmp_path / "img.png")
    write_png(p, img)
    out = str(tmp_path / "g")
    assert golden.main(["--out", out, "--size", "64", "--seed", "0", p]) == 0
    meta = json.load(open(os.path.join(out, "golden.json")))
    assert meta["size"] == 64 and meta["images"][0]["width"] == 72 and meta["images"][0]["height"] == 80
    x = np.load(os.path.join(out, "input_0.npy"))
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    m = np.load(os.path.join(out, "map_0.npy"))
    assert m.shape == (80, 72) and m.dtype == np.float32 and m.std() > 0
    assert np.load(os.path.join(out, "rdmap_0.npy")).shape == (80, 72)
    with OrtSession(os.path.join(out, "model.onnx"), ort_lib) as sess:
        amap, score, _ = sess.run({"image": x}, ["anomaly_map", "score", "rd_map"])
    assert abs(float(score[0]) - meta["images"][0]["score"]) < 1e-4
    from models.rdre.preprocess import map_to_image

    back = map_to_image(torch.from_numpy(amap), 80, 72)[0, 0].numpy()
    assert np.abs(back - m).max() < 1e-4


def test_golden_main_BadImage_Fails(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert golden.main(["--out", str(tmp_path / "g"), str(bad)]) == 1
