"""Cosine distillation and focal + L1 segmentation losses."""

import pytest
import torch

from models.rdre.loss import cosine_distance, distillation_loss, focal_loss, segmentation_loss


def test_cosine_distance_Values():
    t = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(cosine_distance(t, 3 * t), torch.zeros(2, 1, 4, 4), atol=1e-6, rtol=0)
    torch.testing.assert_close(cosine_distance(t, -t), 2 * torch.ones(2, 1, 4, 4), atol=1e-6, rtol=0)
    with pytest.raises(ValueError):
        cosine_distance(t, t[:, :4])


def test_distillation_loss_SumOfMeans():
    ft = [torch.randn(2, c, s, s) for c, s in ((4, 8), (8, 4), (16, 2))]
    fs = [torch.randn_like(f) for f in ft]
    want = sum(float(cosine_distance(a, b).mean()) for a, b in zip(ft, fs))
    assert abs(float(distillation_loss(ft, fs)) - want) < 1e-5
    assert float(distillation_loss(ft, ft)) < 1e-5


def test_distillation_loss_AnomalyWeightAddsMaskedMean():
    ft = [torch.randn(2, c, s, s) for c, s in ((4, 8), (8, 4), (16, 2))]
    fs = [torch.randn_like(f) for f in ft]
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, :4, :4] = 1  # one quadrant of the first sample; the second sample stays normal
    plain = float(distillation_loss(ft, fs))
    want = plain
    for a, b in zip(ft, fs):
        d = cosine_distance(a, b)
        m = torch.nn.functional.interpolate(mask, size=d.shape[-2:], mode="area") > 0.5
        want += 0.5 * float(d[m].mean())
    assert abs(float(distillation_loss(ft, fs, mask, 0.5)) - want) < 1e-5
    # Weight 0, or a batch without synthetic anomalies, is exactly the paper's loss.
    assert float(distillation_loss(ft, fs, mask, 0.0)) == pytest.approx(plain, abs=1e-6)
    assert float(distillation_loss(ft, fs, torch.zeros_like(mask), 2.0)) == pytest.approx(plain, abs=1e-6)


def test_segmentation_loss_LowerForBetterPrediction():
    y = torch.zeros(1, 1, 8, 8)
    y[..., 2:5, 2:5] = 1
    good = y * 0.9 + 0.05
    bad = torch.full_like(y, 0.5)
    assert segmentation_loss(good, y) < segmentation_loss(bad, y)
    assert float(segmentation_loss(y, y)) < 1e-4
    # Focal down-weights easy pixels: confident correct ones cost far less than in plain BCE.
    p = torch.full((1, 1, 2, 2), 0.9)
    assert focal_loss(p, torch.ones_like(p), gamma=4) < 1e-4 * -torch.log(p).mean() * 10
    with pytest.raises(ValueError):
        segmentation_loss(good, y[..., :4])
