"""DRAEM anomaly synthesis: masks, textures and the blend of Eq. 1."""

import numpy as np
import pytest
import torch
from PIL import Image

from models.rdre.synthesis import AnomalySynthesizer, blend, perlin_2d, perlin_mask, procedural_texture

from .conftest import smooth_images


def test_perlin_2d_ShapeAndRange():
    g = torch.Generator().manual_seed(0)
    n = perlin_2d(64, (4, 8), g)
    assert n.shape == (64, 64)
    assert n.abs().max() <= 1.5 and n.std() > 0.05
    # Odd sizes and periods that do not divide them still work (cropped from a larger grid).
    assert perlin_2d(50, (3, 7), g).shape == (50, 50)


def test_perlin_mask_BinaryNonEmpty():
    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        m = perlin_mask(64, g)
        assert m.shape == (1, 64, 64)
        assert set(m.unique().tolist()) <= {0.0, 1.0}
        assert m.sum() > 0


def test_procedural_texture_Range():
    g = torch.Generator().manual_seed(2)
    for _ in range(6):
        t = procedural_texture(32, g)
        assert t.shape == (3, 32, 32) and t.min() >= 0 and t.max() <= 1 and t.std() > 0.01


def test_blend_MatchesEquation1():
    i_n, a = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    m = (torch.rand(1, 8, 8) > 0.5).float()
    out = blend(i_n, a, m, 0.3)
    inside = m.expand_as(i_n) > 0
    torch.testing.assert_close(out[inside], (0.3 * a + 0.7 * i_n)[inside])
    torch.testing.assert_close(out[~inside], i_n[~inside])


def test_AnomalySynthesizer_call_BlendsAsEquation1():
    size = 32
    synth = AnomalySynthesizer(size, None, normal_prob=0.25)
    x = smooth_images(16, size, 0)
    params = []
    xa, m = synth(x, torch.Generator().manual_seed(3), params)
    assert xa.shape == x.shape and m.shape == (16, 1, size, size)
    assert len(params) == 16
    anomalous = 0
    for i, (a, beta) in enumerate(params):
        if a is None:
            assert m[i].sum() == 0
            torch.testing.assert_close(xa[i], x[i])
            continue
        anomalous += 1
        assert 0.15 <= beta <= 1.0
        assert m[i].sum() > 0
        torch.testing.assert_close(xa[i], beta * m[i] * a + (1 - beta) * m[i] * x[i] + (1 - m[i]) * x[i])
        outside = m[i].expand_as(x[i]) == 0
        torch.testing.assert_close(xa[i][outside], x[i][outside])
    assert 4 <= anomalous <= 16


def test_AnomalySynthesizer_call_SeedReproduces():
    synth = AnomalySynthesizer(32, None)
    x = smooth_images(4, 32, 0)
    a1, m1 = synth(x, torch.Generator().manual_seed(7))
    a2, m2 = synth(x, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(m1, m2)


def test_AnomalySynthesizer_init_SourceFolder(tmp_path):
    for i in range(3):
        arr = (np.random.RandomState(i).rand(40, 50, 3) * 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"t{i}.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    synth = AnomalySynthesizer(32, str(tmp_path), normal_prob=0.0)
    assert synth.sources.shape == (3, 3, 32, 32)
    xa, m = synth(smooth_images(2, 32, 0), torch.Generator().manual_seed(0))
    assert (m.flatten(1).sum(1) > 0).all()


def test_AnomalySynthesizer_init_BadInput_Errors(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        AnomalySynthesizer(32, str(tmp_path))
    with pytest.raises(ValueError, match="normal_prob"):
        AnomalySynthesizer(32, None, normal_prob=1.5)
    with pytest.raises(ValueError, match="built for"):
        AnomalySynthesizer(32, None)(torch.rand(1, 3, 16, 16), torch.Generator())
