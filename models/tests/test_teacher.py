"""Teachers: the TFLite converter, TF padding and the torchvision ResNet18 loader."""

import glob
import os

import pytest
import torch
import torchvision

from models.rdre.preprocess import preprocess_file
from models.rdre.teacher import MobileNetV2TF, MobileNetV2Teacher, ResNet18Teacher, TFSameConv2d, build_teacher
from models.rdre.tflite_convert import convert, read_convs

from .conftest import SHARED

EXPECTED = {
    "parrot": ["macaw"],
    "hot_dog": ["hotdog, hot dog, red hot"],
    "owl": ["ruffed grouse, partridge, Bonasa umbellus", "kite", "great grey owl, great gray owl, Strix nebulosa"],
    "pets": None,  # any dog class (151..268 in torchvision order)
}


def test_convert_SanityImages_Classified(tflite_path):
    net = MobileNetV2TF()
    net.load_state_dict(convert(tflite_path))
    net.eval()
    images = sorted(glob.glob(os.path.join(SHARED, "weights", "sanity-images", "*")))
    if not images:
        pytest.skip("sanity images are absent")
    # The labels sit beside the sanity images (../shared/weights), not beside the built-in teacher.
    labels = open(os.path.join(SHARED, "weights", "imagenet_labels.txt")).read().splitlines()[1:]
    for p in images:
        x, _, _ = preprocess_file(p, 224, (0.5,) * 3, (0.5,) * 3)
        with torch.no_grad():
            top = int(net(x)[0].argmax())
        name = os.path.splitext(os.path.basename(p))[0]
        want = EXPECTED.get(name)
        if want is None:
            assert 151 <= top <= 268, f"{name}: top-1 {labels[top]}"
        else:
            assert labels[top] in want, f"{name}: top-1 {labels[top]}"


def test_read_convs_CountsAndLayouts(tflite_path):
    convs = read_convs(tflite_path)
    assert len(convs) == 53
    kinds = [k for k, _, _ in convs]
    assert kinds.count("dwconv") == 17
    assert convs[0][1].shape == (32, 3, 3, 3)  # OIHW
    assert convs[1][1].shape == (32, 1, 3, 3)  # O1HW


def test_convert_WrongFile_Errors(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        convert(str(bad))
    with pytest.raises(ValueError, match="not a TFLite"):
        convert(str(bad), check_sha=False)
    with pytest.raises(FileNotFoundError):
        convert(str(tmp_path / "missing.tflite"))


def test_MobileNetV2Teacher_init_LoadsConvertedWeights(tflite_path):
    t = MobileNetV2Teacher(tflite_path)
    rand = MobileNetV2Teacher()
    assert not torch.allclose(t.features[0][0].weight, rand.features[0][0].weight)
    assert t.mean == (0.5, 0.5, 0.5)


def test_TFSameConv2d_forward_PadsBottomRight():
    conv = torch.nn.Conv2d(1, 1, 3, 2, 1, bias=False)
    conv.__class__ = TFSameConv2d
    conv.padding = (0, 0)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left pixel of each 3x3 window
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = conv(x)
    # TF SAME: no padding at the top-left, so window (0, 0) starts at pixel (0, 0).
    assert y.shape == (1, 1, 2, 2)
    assert y[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]


def test_ResNet18Teacher_init_LoadsStateDict(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    t = build_teacher("resnet18", str(path))
    torch.testing.assert_close(t.layer3[0].conv1.weight, ref.layer3[0].conv1.weight)
    assert t.mean == (0.485, 0.456, 0.406)
    ref.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x)))))
        torch.testing.assert_close(t(x)[0], want)
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="load resnet18 weights"):
        ResNet18Teacher(str(bad))
    missing = tmp_path / "partial.pth"
    torch.save({k: v for k, v in ref.state_dict().items() if not k.startswith("layer3")}, missing)
    with pytest.raises(ValueError, match="missing keys"):
        ResNet18Teacher(str(missing))
