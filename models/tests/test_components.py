"""Shapes and behaviour of every RD-RE component."""

import pytest
import torch

from models.rdre.anomaly_map import AnomalyMapper, gaussian_kernel
from models.rdre.caams_ff import ASSA, CAAMSFF, window_partition, window_reverse
from models.rdre.lda import LDA
from models.rdre.model import RDRE, count_macs, count_params
from models.rdre.segmentation import ASPP, CoordAttention, SegmentationNet
from models.rdre.student import OCBE, Student
from models.rdre.teacher import MobileNetV2Teacher, ResNet18Teacher, build_teacher

STRIDES = (4, 8, 16)


@pytest.mark.parametrize("size", [256, 512])
def test_Teacher_forward_shapes(size):
    for teacher in (MobileNetV2Teacher(), ResNet18Teacher()):
        with torch.no_grad():
            feats = teacher(torch.randn(1, 3, size, size))
        assert [tuple(f.shape) for f in feats] == [(1, c, size // s, size // s) for c, s in zip(teacher.channels, STRIDES)]


def test_Teacher_train_StaysFrozenInEval():
    t = MobileNetV2Teacher()
    model = RDRE(t, 64)
    model.train()
    assert not t.training
    assert all(not m.training for m in t.modules())
    assert all(not p.requires_grad for p in t.parameters())
    assert model.student.training


def test_build_teacher_UnknownName_Errors():
    with pytest.raises(ValueError, match="unknown teacher"):
        build_teacher("vgg")
    with pytest.raises(FileNotFoundError):
        build_teacher("resnet18", "/nonexistent/resnet18.pth")


@pytest.mark.parametrize("size", [256, 512])
def test_Student_forward_MatchesTeacherShapes(size):
    chans = MobileNetV2Teacher.channels
    feats = [torch.randn(1, c, size // s, size // s) for c, s in zip(chans, STRIDES)]
    student = Student(chans).eval()
    with torch.no_grad():
        out = student(feats)
        b = student.bottleneck(feats)
    assert [o.shape for o in out] == [f.shape for f in feats]
    assert tuple(b.shape) == (1, 2 * chans[2], size // 32, size // 32)


def test_Student_lr_groups_SplitsFusionModules():
    s = Student((24, 32, 96))
    student_p, fusion_p = s.lr_groups()
    assert len(student_p) > 0 and len(fusion_p) > 0
    assert len(student_p) + len(fusion_p) == len(list(s.parameters()))
    plain = Student((24, 32, 96), fusion=False)
    assert plain.lr_groups()[1] == []


def test_Student_forward_FusionUsesEncoderFeatures():
    chans = (24, 32, 96)
    torch.manual_seed(0)
    feats = [torch.randn(1, c, 64 // s, 64 // s) for c, s in zip(chans, STRIDES)]
    s = Student(chans).eval()
    with torch.no_grad():
        a = s(feats)
        # Changing only F_Se2 reaches the stride-8 output through the fusion, not just via the bottleneck.
        s.bottleneck.block.conv1.weight.zero_()
        s.bottleneck.block.bn2.weight.zero_()
        base = s(feats)
        feats2 = [feats[0], feats[1] + 1.0, feats[2]]
        moved = s(feats2)
    assert not torch.allclose(a[1], base[1])
    assert not torch.allclose(base[1], moved[1])


@pytest.mark.parametrize("size,k", [(256, 4), (256, 2), (512, 4), (512, 2)])
def test_LDA_forward_Shapes(size, k):
    hw = size // 8 if k == 4 else size // 16
    x = torch.randn(2, 32, hw, hw)
    lda = LDA(32, k)
    assert lda(x).shape == x.shape
    assert lda.weights(x).shape == (2, 32, hw // k, hw // k)


def test_LDA_weights_DependOnLocalWindowOnly():
    torch.manual_seed(0)
    lda = LDA(16, 4).eval()
    x = torch.randn(1, 16, 16, 16)
    y = x.clone()
    y[:, :, 4:8, 8:12] += 3 * torch.randn(1, 16, 4, 4)  # window (1, 2) only
    with torch.no_grad():
        cx, cy = lda.weights(x), lda.weights(y)
        ox = lda(x)
    diff = (cx - cy).abs().sum(dim=1)[0]
    assert diff[1, 2] > 1e-3
    diff[1, 2] = 0
    assert diff.max() == 0
    assert ((cx > 0) & (cx < 1)).all()
    up = cx.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    torch.testing.assert_close(ox, x * up)


def test_LDA_weights_ZeroForFlatWindows():
    # Max - avg is zero on a constant window: C then depends only on the biases, same for every window.
    lda = LDA(8, 2).eval()
    x = torch.ones(1, 8, 8, 8) * torch.arange(8.0).view(1, 8, 1, 1)
    with torch.no_grad():
        c = lda.weights(x)
    assert torch.allclose(c, c[:, :, :1, :1].expand_as(c))


def test_LDA_forward_IndivisibleSize_Errors():
    with pytest.raises(ValueError, match="not divisible"):
        LDA(8, 4)(torch.randn(1, 8, 10, 10))


def test_window_partition_RoundTrip():
    x = torch.randn(3, 5, 16, 24)
    w = window_partition(x, 8)
    assert w.shape == (3 * 2 * 3, 64, 5)
    torch.testing.assert_close(window_reverse(w, 8, 16, 24), x)


@pytest.mark.parametrize("size,c", [(256, 96), (256, 32), (512, 96), (512, 32)])
def test_CAAMSFF_forward_Shapes(size, c):
    hw = size // 16 if c == 96 else size // 8
    x = torch.randn(1, c, hw, hw)
    with torch.no_grad():
        assert CAAMSFF(c).eval()(x).shape == x.shape


def test_ASSA_attention_SparseBranchZeroesNegativeScores():
    torch.manual_seed(0)
    a = ASSA(16, 2, window=4)
    with torch.no_grad():
        a.mix.copy_(torch.tensor([50.0, -50.0]))  # all weight on the sparse branch
        x = torch.randn(2, 16, 16)
        _, _, _, logits = a.scores(x)
        attn, _ = a.attention(x)
    assert (logits < 0).any() and (logits > 0).any()
    # The dense share is softmax(-100) ~ 1e-44: anything above that would come from the sparse branch.
    assert attn[logits <= 0].abs().max() < 1e-30
    torch.testing.assert_close(attn[logits > 0], torch.relu(logits[logits > 0]) ** 2, rtol=1e-4, atol=1e-6)


def test_ASSA_attention_DenseBranchIsSoftmax():
    torch.manual_seed(1)
    a = ASSA(16, 2, window=4)
    with torch.no_grad():
        a.mix.copy_(torch.tensor([-50.0, 50.0]))
        x = torch.randn(2, 16, 16)
        attn, _ = a.attention(x)
    torch.testing.assert_close(attn.sum(-1), torch.ones_like(attn.sum(-1)), rtol=1e-4, atol=1e-4)


def test_ASSA_forward_WindowsAreIndependent():
    torch.manual_seed(2)
    a = ASSA(16, 2, window=8).eval()
    x = torch.randn(1, 16, 16, 16)
    y = x.clone()
    y[:, :, :8, :8] += 1
    with torch.no_grad():
        ox, oy = a(x), a(y)
    assert not torch.allclose(ox[:, :, :8, :8], oy[:, :, :8, :8])
    torch.testing.assert_close(ox[:, :, 8:, :], oy[:, :, 8:, :])
    torch.testing.assert_close(ox[:, :, :8, 8:], oy[:, :, :8, 8:])


def test_ASSA_position_bias_ChangesOutput():
    torch.manual_seed(3)
    a = ASSA(16, 2, window=4).eval()
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        before = a(x)
        a.bias_table.add_(torch.randn_like(a.bias_table))
        after = a(x)
    assert not torch.allclose(before, after)
    # A smaller window (tiny feature maps) reuses the centre of the same table.
    assert a.position_bias(2).shape == (2, 4, 4)


@pytest.mark.parametrize("size", [256, 512])
def test_SegmentationNet_forward_Shapes(size):
    x = torch.rand(1, 3, size // 4, size // 4)
    with torch.no_grad():
        p = SegmentationNet().eval()(x)
    assert p.shape == (1, 1, size // 4, size // 4)
    assert ((p > 0) & (p < 1)).all()


def test_CoordAttention_weights_FactorisedByAxis():
    torch.manual_seed(0)
    ca = CoordAttention(16).eval()
    x = torch.randn(1, 16, 12, 10)
    with torch.no_grad():
        a_h, a_w = ca.weights(x)
        out = ca(x)
    assert a_h.shape == (1, 16, 12, 1) and a_w.shape == (1, 16, 1, 10)
    torch.testing.assert_close(out, x * a_h * a_w)
    # Changing one row moves that row's weight most.
    y = x.clone()
    y[:, :, 5, :] += 5
    with torch.no_grad():
        b_h, _ = ca.weights(y)
    d = (a_h - b_h).abs().sum(dim=1).flatten()
    assert int(d.argmax()) == 5


def test_ASPP_forward_GlobalBranchSeesWholeMap():
    torch.manual_seed(0)
    aspp = ASPP(8, 8, rates=(1, 2)).eval()
    x = torch.randn(1, 8, 16, 16)
    y = x.clone()
    y[:, :, 15, 15] += 10  # far corner: beyond the local receptive field of (0, 0)
    with torch.no_grad():
        assert aspp(x).shape == (1, 8, 16, 16)
        assert not torch.allclose(aspp(x)[:, :, 0, 0], aspp(y)[:, :, 0, 0])


def test_AnomalyMapper_score_TopkAndMax():
    m = torch.zeros(2, 1, 32, 32)
    m[0, 0, 0, :10] = 1.0
    m[1, 0, 5, 5] = 4.0
    top = AnomalyMapper(32, 0, "topk_mean:10")
    torch.testing.assert_close(top.score(m), torch.tensor([1.0, 0.4]))
    assert AnomalyMapper(32, 0, "max").score(m).tolist() == [1.0, 4.0]
    with pytest.raises(ValueError):
        AnomalyMapper(32, 0, "median")


def test_AnomalyMapper_smooth_KeepsMassAndSpreads():
    mapper = AnomalyMapper(64, 4.0)
    m = torch.zeros(1, 1, 64, 64)
    m[0, 0, 32, 32] = 1.0
    s = mapper.smooth(m)
    assert s.shape == m.shape
    assert abs(float(s.sum()) - 1.0) < 1e-4
    assert float(s.max()) < 0.02 and float(s[0, 0, 32, 40]) > 0
    assert abs(float(gaussian_kernel(4.0).sum()) - 1) < 1e-6


@pytest.mark.parametrize("size", [256, 512])
def test_RDRE_forward_OutputShapes(size):
    model = RDRE(MobileNetV2Teacher(), size).eval()
    with torch.no_grad():
        amap, score, rd = model(torch.randn(1, 3, size, size))
    assert amap.shape == (1, 1, size, size) and rd.shape == (1, 1, size, size) and score.shape == (1,)


def test_RDRE_init_BadSize_Errors():
    with pytest.raises(ValueError, match="multiple of 32"):
        RDRE(MobileNetV2Teacher(), 100)


def test_RDRE_ablation_PlainRDHasNoFusionOrSeg():
    full = RDRE(MobileNetV2Teacher(), 64)
    plain = RDRE(MobileNetV2Teacher(), 64, fusion=False, seg=False)
    assert count_params(plain) < count_params(full)
    assert plain.seg is None
    with torch.no_grad():
        amap, _, rd = plain.eval()(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(amap, rd)


def test_count_macs_GrowsWithResolution():
    model = RDRE(MobileNetV2Teacher(), 64)
    a, b = count_macs(model, 64), count_macs(model, 128)
    assert 3.5 * a < b < 4.5 * a


def test_OCBE_forward_ResNetWidths():
    feats = [torch.randn(1, 64, 64, 64), torch.randn(1, 128, 32, 32), torch.randn(1, 256, 16, 16)]
    with torch.no_grad():
        assert OCBE((64, 128, 256)).eval()(feats).shape == (1, 512, 8, 8)


def test_Student_forward_ClosedGateIsPlainDecoder():
    chans = (24, 32, 96)
    torch.manual_seed(0)
    feats = [torch.randn(1, c, 64 // s, 64 // s) for c, s in zip(chans, STRIDES)]
    s = Student(chans, gate=True).eval()
    with torch.no_grad():
        out = s(feats)
        d3 = s.layer3(s.bottleneck(feats))
        d2 = s.layer2(d3)
        torch.testing.assert_close(out[2], d3)
        torch.testing.assert_close(out[1], d2)
        torch.testing.assert_close(out[0], s.layer1(d2))
        s.fuse2.gate.fill_(1.0)
        assert not torch.allclose(s(feats)[1], d2)
    assert "fusion_gate" not in RDRE(MobileNetV2Teacher(), 64).config
    assert RDRE(MobileNetV2Teacher(), 64, fusion_gate=True).config["fusion_gate"] is True


def test_Student_forward_LinearOutCanGoNegative():
    # MobileNetV2's taps are signed; a ReLU at the end of each decoder stage would cap the cosine similarity.
    chans = (24, 32, 96)
    feats = [torch.randn(2, c, s, s) for c, s in zip(chans, (16, 8, 4))]
    torch.manual_seed(0)
    with torch.no_grad():
        relu_out = Student(chans, fusion=False).eval()(feats)
        lin_out = Student(chans, fusion=False, linear_out=True).eval()(feats)
    assert all(float(f.min()) >= 0 for f in relu_out)
    assert all(float(f.min()) < 0 for f in lin_out)


def test_RDRE_init_LinearOutFollowsTeacher():
    assert MobileNetV2Teacher.signed_features and not ResNet18Teacher.signed_features
    assert RDRE(MobileNetV2Teacher(), 64).config["linear_out"] is True
    assert "linear_out" not in RDRE(ResNet18Teacher(), 64).config
    # Checkpoints written before the option have no key; they must rebuild the ReLU decoder they were trained with.
    assert "linear_out" not in RDRE(MobileNetV2Teacher(), 64, linear_out=False).config
