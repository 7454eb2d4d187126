"""Dataset reader of the trainer (models/rdre/data.py) on tiny generated folders of every layout in
docs/datasets.md: training lists, detection, errors, the train-list command and the mask rule."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from models.rdre import data
from models.rdre.data import LAYOUTS, detect_layout, fingerprint, mask_for, train_files, train_list

REPO = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def img(root, rel, size=(4, 4), value=0, fmt=None):
    """Write a small RGB image at root/rel (format from the extension unless fmt)."""
    p = os.path.join(str(root), *rel.split("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(p, format=fmt)
    return p


def touch(root, rel, text="x"):
    p = os.path.join(str(root), *rel.split("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)


def junk(root, folder):
    """Files every listing must skip: hidden names, a macOS resource fork, a non-image, a folder named .png."""
    touch(root, f"{folder}/notes.txt")
    img(root, f"{folder}/.hidden.png")
    touch(root, f"{folder}/._000.png", "not an image")
    os.makedirs(os.path.join(str(root), *folder.split("/"), "dir.png"), exist_ok=True)
    img(root, f"{folder}/.tmp/000.png")


def mvtec_category(root, cat=""):
    pre = f"{cat}/" if cat else ""
    img(root, pre + "train/good/000.png")
    img(root, pre + "train/good/001.PNG")
    img(root, pre + "train/good/002.JPG", fmt="JPEG")
    junk(root, pre + "train/good")
    img(root, pre + "test/good/000.png")
    img(root, pre + "test/scratch/000.png")
    img(root, pre + "ground_truth/scratch/000_mask.png")


# ---- layouts with a training split ---------------------------------------------------------------------


def test_train_list_MVTecCategory_SortedSkipsHiddenAndNonImages(tmp_path):
    mvtec_category(tmp_path)
    assert train_list(str(tmp_path)) == ("mvtec", ["train/good/000.png", "train/good/001.PNG", "train/good/002.JPG"])
    assert train_files(str(tmp_path)) == [os.path.join(str(tmp_path), "train", "good", n) for n in ("000.png", "001.PNG", "002.JPG")]


def test_train_list_MVTecFolderOfCategories_ByteOrderOfRelativePath(tmp_path):
    # "a-b/..." sorts before "a/..." in byte order ("-" < "/") although the folder "a" sorts before "a-b".
    mvtec_category(tmp_path, "a")
    mvtec_category(tmp_path, "a-b")
    mvtec_category(tmp_path, "B")
    mvtec_category(tmp_path, ".cache")  # hidden category
    touch(tmp_path, "docs/license.txt")  # a folder that is no category
    img(tmp_path, "readme.png")
    name, rels = train_list(str(tmp_path))
    assert name == "mvtec"
    want = [f"{c}/train/good/{n}" for c in ("B", "a-b", "a") for n in ("000.png", "001.PNG", "002.JPG")]
    assert rels == want
    assert rels == sorted(rels, key=lambda s: s.encode())


def test_train_list_MVTec2_TrainGoodOnlyNotValidation(tmp_path):
    for c in ("can", "fruit_jelly"):
        img(tmp_path, f"{c}/train/good/000_regular.png")
        img(tmp_path, f"{c}/train/good/001_regular.png")
        img(tmp_path, f"{c}/validation/good/000_regular.png")
        img(tmp_path, f"{c}/test_public/good/000_regular.png")
        img(tmp_path, f"{c}/test_public/bad/000_regular.png")
        img(tmp_path, f"{c}/test_public/ground_truth/bad/000_regular_mask.png")
        img(tmp_path, f"{c}/test_private/000_regular.png")
        img(tmp_path, f"{c}/test_private_mixed/000_regular.png")
    junk(tmp_path, "can/train/good")
    assert train_list(str(tmp_path)) == ("mvtec2", [
        "can/train/good/000_regular.png", "can/train/good/001_regular.png",
        "fruit_jelly/train/good/000_regular.png", "fruit_jelly/train/good/001_regular.png"])
    assert train_list(str(tmp_path / "can")) == ("mvtec2", ["train/good/000_regular.png", "train/good/001_regular.png"])


def test_train_list_MVTec3D_RgbOnly(tmp_path):
    root = tmp_path / "bagel"
    img(root, "train/good/rgb/000.png")
    img(root, "train/good/rgb/001.png")
    img(root, "train/good/xyz/000.tiff")
    img(root, "train/good/xyz/001.tiff")
    img(root, "validation/good/rgb/000.png")
    img(root, "test/crack/rgb/000.png")
    img(root, "test/crack/gt/000.png")
    junk(root, "train/good/rgb")
    assert train_list(str(root)) == ("mvtec3d", ["train/good/rgb/000.png", "train/good/rgb/001.png"])
    assert train_list(str(tmp_path)) == ("mvtec3d", ["bagel/train/good/rgb/000.png", "bagel/train/good/rgb/001.png"])


def test_detect_layout_MVTec3D_FromTestRgb(tmp_path):
    img(tmp_path, "train/good/000.png")  # no train/good/rgb, but test/*/rgb marks the layout
    img(tmp_path, "test/good/rgb/000.png")
    assert detect_layout(str(tmp_path)) == "mvtec3d"
    with pytest.raises(ValueError, match=r"no training images in .*train/good/rgb"):
        train_list(str(tmp_path))
    assert train_list(str(tmp_path), layout="mvtec") == ("mvtec", ["train/good/000.png"])


def test_train_list_LOCO_DetectedByMaskFolders(tmp_path):
    img(tmp_path, "breakfast_box/train/good/000.png")
    img(tmp_path, "breakfast_box/train/good/001.png")
    img(tmp_path, "breakfast_box/validation/good/000.png")
    img(tmp_path, "breakfast_box/test/logical_anomalies/000.png")
    img(tmp_path, "breakfast_box/ground_truth/logical_anomalies/000/000.png")
    img(tmp_path, "breakfast_box/ground_truth/logical_anomalies/000/001.png")
    assert train_list(str(tmp_path)) == ("loco", ["breakfast_box/train/good/000.png", "breakfast_box/train/good/001.png"])
    # Without the folder of masks it reads as MVTec AD: hidden folders in ground_truth/KIND do not count.
    root = tmp_path / "m"
    mvtec_category(root)
    os.makedirs(root / "ground_truth" / "scratch" / ".thumbs")
    assert detect_layout(str(root)) == "mvtec"


def visa_root(tmp_path):
    root = tmp_path / "visa"
    rows = [("object", "split", "label", "image", "mask")]
    for obj in ("pcb1", "candle"):
        for i in (1, 0):
            rel = f"{obj}/Data/Images/Normal/{i:04d}.JPG"
            img(root, rel, fmt="JPEG")
            rows.append((obj, "train", "normal", rel, ""))
        rel = f"{obj}/Data/Images/Normal/0100.JPG"
        img(root, rel, fmt="JPEG")
        rows.append((obj, "test", "normal", rel, ""))
        rel = f"{obj}/Data/Images/Anomaly/000.JPG"
        img(root, rel, fmt="JPEG")
        img(root, f"{obj}/Data/Masks/Anomaly/000.png")
        rows.append((obj, "test", "anomaly", rel, f"{obj}/Data/Masks/Anomaly/000.png"))
    rows.append(("candle", "train", "anomaly", "candle/Data/Images/Anomaly/000.JPG", "candle/Data/Masks/Anomaly/000.png"))
    img(root, "candle/Data/Images/Normal/0999.JPG", fmt="JPEG")  # on disk but not in the CSV
    touch(root, "split_csv/1cls.csv", "\n".join(",".join(r) for r in rows) + "\n")
    return root


def test_train_list_VisA_CsvTrainNormalRows(tmp_path):
    root = visa_root(tmp_path)
    assert train_list(str(root)) == ("visa", [
        "candle/Data/Images/Normal/0000.JPG", "candle/Data/Images/Normal/0001.JPG",
        "pcb1/Data/Images/Normal/0000.JPG", "pcb1/Data/Images/Normal/0001.JPG"])
    assert train_files(str(root))[0] == os.path.join(str(root), "candle", "Data", "Images", "Normal", "0000.JPG")


def test_train_list_VisA_BadRowsSkippedWithWarning(tmp_path, caplog):
    # As the Go side: a missing image, a path leaving the root, a non-image name or an unknown split skip
    # the row with a warning naming the CSV line; labels good and 0 are normal too.
    root = visa_root(tmp_path)
    img(tmp_path, "outside.png")
    img(root, "fryum/Data/Images/Normal/0000.JPG", fmt="JPEG")
    img(root, "fryum/Data/Images/Normal/0001.JPG", fmt="JPEG")
    with open(root / "split_csv" / "1cls.csv", "a") as f:
        f.write("fryum,train,normal,fryum/Data/Images/Normal/0404.JPG,\n")  # line 11: missing
        f.write("fryum,train,normal,../outside.png,\n")
        f.write("fryum,train,normal,./fryum/Data/Images/Normal/0000.JPG,\n")
        f.write("fryum,train,normal,split_csv/1cls.csv,\n")
        f.write("fryum,Train,normal,fryum/Data/Images/Normal/0000.JPG,\n")
        f.write("fryum,train,Good,fryum/Data/Images/Normal/0000.JPG,\n")
        f.write("fryum,train,0,fryum/Data/Images/Normal/0001.JPG,\n")
    with caplog.at_level("WARNING", logger="models.rdre.data"):
        name, rels = train_list(str(root))
    assert name == "visa"
    assert rels[:2] == ["candle/Data/Images/Normal/0000.JPG", "candle/Data/Images/Normal/0001.JPG"]
    assert rels[2:4] == ["fryum/Data/Images/Normal/0000.JPG", "fryum/Data/Images/Normal/0001.JPG"]
    assert len(rels) == 6
    text = caplog.text
    assert "1cls.csv line 11 skipped" in text and "0404.JPG" in text
    assert "../outside.png" in text and "./fryum" in text and "split_csv/1cls.csv'" in text
    assert "split 'Train' is neither train nor test" in text


def test_train_list_VisA_NoTrainRows_Error(tmp_path):
    root = tmp_path / "visa"
    img(root, "x/Data/Images/Normal/0000.JPG", fmt="JPEG")
    touch(root, "split_csv/1cls.csv", "object,split,label,image,mask\nx,test,normal,x/Data/Images/Normal/0000.JPG,\n")
    with pytest.raises(ValueError, match="1cls.csv has no row of an image with split train and label normal"):
        train_list(str(root))


def btad_product(root, nn):
    img(root, f"{nn}/train/ok/0000.bmp")
    img(root, f"{nn}/train/ok/0001.BMP")
    img(root, f"{nn}/train/ok/0002.png")
    img(root, f"{nn}/test/ok/0000.bmp")
    img(root, f"{nn}/test/ko/0000.bmp")
    img(root, f"{nn}/ground_truth/ko/0000.png")


def test_train_list_BTAD_ProductAndFolderOfProducts(tmp_path):
    btad_product(tmp_path, "01")
    btad_product(tmp_path, "03")
    junk(tmp_path, "01/train/ok")
    assert train_list(str(tmp_path / "01")) == ("btad", ["train/ok/0000.bmp", "train/ok/0001.BMP", "train/ok/0002.png"])
    assert train_list(str(tmp_path)) == ("btad", [f"{p}/train/ok/{n}" for p in ("01", "03") for n in ("0000.bmp", "0001.BMP", "0002.png")])
    with Image.open(train_files(str(tmp_path))[0]) as im:
        assert im.format == "BMP"


# ---- layouts without a training split, forced layouts, errors -------------------------------------------


def test_train_list_ImagesMasks_NoTrainSplit(tmp_path):
    img(tmp_path, "MT_Blowhole/Imgs/exp1.jpg", fmt="JPEG")
    img(tmp_path, "MT_Blowhole/Imgs/exp1.png")
    img(tmp_path, "MT_Free/Imgs/exp2.jpg", fmt="JPEG")
    img(tmp_path, "MT_Free/Imgs/exp2.png")
    assert detect_layout(str(tmp_path)) == "images+masks"
    with pytest.raises(ValueError, match=r"layout images\+masks has no training split"):
        train_files(str(tmp_path))


def test_train_list_Plain_NoTrainSplit(tmp_path):
    img(tmp_path, "good/000.png")
    img(tmp_path, "crack/000.png")
    img(tmp_path, "ground_truth/crack/000_mask.png")
    assert detect_layout(str(tmp_path)) == "plain"
    with pytest.raises(ValueError, match="layout plain has no training split") as err:
        train_files(str(tmp_path))
    assert str(tmp_path) in str(err.value)


def test_train_list_ForcedLayout(tmp_path):
    mvtec_category(tmp_path)
    with pytest.raises(ValueError, match="layout plain has no training split"):
        train_list(str(tmp_path), layout="plain")
    # A forced category layout reads the root when it detects as that layout, else its sub-folders that do.
    for name in ("btad", "loco", "mvtec2", "mvtec3d"):
        with pytest.raises(ValueError, match=f"layout {name}: the root is not such a category and has no sub-folder that is"):
            train_list(str(tmp_path), layout=name)
    with pytest.raises(ValueError, match=r"cannot read .*split_csv/1cls.csv"):
        train_list(str(tmp_path), layout="visa")
    assert train_list(str(tmp_path), layout="mvtec") == train_list(str(tmp_path))
    assert train_list(str(tmp_path), layout="") == train_list(str(tmp_path))
    # btad forced on a folder holding one BTAD product and one MVTec category: only the product.
    btad_product(tmp_path / "set", "01")
    mvtec_category(tmp_path / "set", "bottle")
    assert train_list(str(tmp_path / "set"), layout="btad") == ("btad", ["01/train/ok/0000.bmp", "01/train/ok/0001.BMP", "01/train/ok/0002.png"])


def test_train_list_UnknownLayout_ListsValidNames(tmp_path):
    mvtec_category(tmp_path)
    with pytest.raises(ValueError) as err:
        train_list(str(tmp_path), layout="mvtec-ad")
    for name in LAYOUTS:
        assert name in str(err.value)


def test_train_list_Errors_NameTheFolder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        train_list(str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="no known layout") as err:
        train_list(str(tmp_path))
    assert str(tmp_path) in str(err.value)
    img(tmp_path, "c/test/good/000.png")  # a category with a test split only
    with pytest.raises(ValueError, match=r"no training images in .*train/good") as err:
        train_list(str(tmp_path / "c"))
    assert str(tmp_path / "c") in str(err.value)


def test_train_list_MixedCategoryLayouts_EachOnItsOwn(tmp_path):
    mvtec_category(tmp_path, "bottle")
    btad_product(tmp_path, "01")
    img(tmp_path, "bagel/train/good/rgb/000.png")
    assert train_list(str(tmp_path)) == ("btad,mvtec,mvtec3d", [
        "01/train/ok/0000.bmp", "01/train/ok/0001.BMP", "01/train/ok/0002.png", "bagel/train/good/rgb/000.png",
        "bottle/train/good/000.png", "bottle/train/good/001.PNG", "bottle/train/good/002.JPG"])
    # mvtec forced: every sub-folder with train/ or test/ is read as MVTec AD (BTAD's train/ok is no train/good).
    assert train_list(str(tmp_path), layout="mvtec")[1] == ["bottle/train/good/000.png", "bottle/train/good/001.PNG", "bottle/train/good/002.JPG"]


def test_train_list_DuplicateStem_FirstInOrderKept(tmp_path, caplog):
    img(tmp_path, "a/train/good/000.png")
    img(tmp_path, "a/train/good/000.jpg", fmt="JPEG")
    img(tmp_path, "b/train/good/000.png")  # another category: another key
    with caplog.at_level("WARNING", logger="models.rdre.data"):
        assert train_list(str(tmp_path))[1] == ["a/train/good/000.jpg", "b/train/good/000.png"]
    assert "a/train/good/000.png skipped" in caplog.text


def test_train_list_Symlinks_FollowedAsGoOsRoot(tmp_path, caplog):
    # Go opens the root as an os.Root: relative links that stay inside are followed; absolute links (even to
    # a file inside) and links that leave the root are not.
    root = tmp_path / "cat"
    mvtec_category(root)
    good = root / "train" / "good"
    outside = img(tmp_path, "elsewhere/999.png")
    os.symlink(outside, good / "999.png")
    os.symlink("../../../elsewhere/999.png", good / "996.png")
    os.symlink("../../test/good/000.png", good / "997.png")
    os.symlink("000.png", good / "998.png")
    os.symlink(str(good / "000.png"), good / "995.png")
    os.symlink("../../test/../../cat/test/good/000.png", good / "994.png")  # leaves the root for a moment
    with caplog.at_level("WARNING", logger="models.rdre.data"):
        assert train_list(str(root))[1] == ["train/good/000.png", "train/good/001.PNG", "train/good/002.JPG",
                                            "train/good/997.png", "train/good/998.png"]
    for n in ("994", "995", "996", "999"):
        assert f"train/good/{n}.png skipped: path leaves the dataset root" in caplog.text
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink("../cat/train", linked / "train")  # a split folder outside the root
    with pytest.raises(ValueError, match="no known layout"):
        train_list(str(linked))


# ---- command line --------------------------------------------------------------------------------------


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "models.rdre.data", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_cli_train_list_PrintsJson(tmp_path):
    btad_product(tmp_path, "02")
    r = run_cli("train-list", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"layout": "btad", "train": ["02/train/ok/0000.bmp", "02/train/ok/0001.BMP", "02/train/ok/0002.png"]}
    r = run_cli("train-list", str(tmp_path), "--layout", "mvtec")
    assert r.returncode == 1 and r.stdout == "" and "no training images" in r.stderr


def test_cli_train_list_ErrorsExitOne(tmp_path):
    img(tmp_path, "good/000.png")
    img(tmp_path, "crack/000.png")
    r = run_cli("train-list", str(tmp_path))
    assert r.returncode == 1 and r.stdout == "" and "no training split" in r.stderr
    r = run_cli("train-list", str(tmp_path), "--layout", "nope")
    assert r.returncode == 1 and "want one of visa, mvtec2, mvtec3d, loco, btad, mvtec, images+masks, plain" in r.stderr
    assert run_cli().returncode == 1


def test_data_module_DoesNotImportTorch():
    code = "import sys, models.rdre.data; sys.exit(int('torch' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60).returncode == 0


def test_train_main_Layout_ReachesTrainList(tmp_path):
    from models import train

    mvtec_category(tmp_path / "cat")
    assert train.main(["--data", str(tmp_path / "cat"), "--layout", "plain", "--out", str(tmp_path / "o"), "--random-teacher"]) == 1
    assert train.main(["--data", str(tmp_path / "cat"), "--layout", "bogus", "--out", str(tmp_path / "o"), "--random-teacher"]) == 1


# ---- test files, fingerprint, masks --------------------------------------------------------------------


def test_test_files_SkipsHidden(tmp_path):
    mvtec_category(tmp_path)
    junk(tmp_path, "test/scratch")
    img(tmp_path, "test/.tmp/000.png")
    assert [(k, s) for k, s, _ in data.test_files(str(tmp_path))] == [("good", "000"), ("scratch", "000")]


def old_fingerprint(files):
    import hashlib

    h = hashlib.sha256()
    for p in sorted(files, key=os.path.basename):
        h.update(os.path.basename(p).encode())
        h.update(b"\0")
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def test_fingerprint_OneCategory_Unchanged_Collisions_UseRelativePaths(tmp_path):
    mvtec_category(tmp_path / "a")
    files = train_files(str(tmp_path / "a"))
    assert fingerprint(files) == fingerprint(files, str(tmp_path / "a")) == old_fingerprint(files)
    mvtec_category(tmp_path / "all" / "x")
    img(tmp_path / "all", "y/train/good/000.png", value=200)
    both = train_files(str(tmp_path / "all"))
    fp = fingerprint(both, str(tmp_path / "all"))
    # Swap the two 000.png contents: the old name-only hash cannot tell, the relative-path one can.
    a, b = tmp_path / "all" / "x" / "train" / "good" / "000.png", tmp_path / "all" / "y" / "train" / "good" / "000.png"
    ca, cb = a.read_bytes(), b.read_bytes()
    a.write_bytes(cb)
    b.write_bytes(ca)
    assert fingerprint(both, str(tmp_path / "all")) != fp


def save(root, rel, im, **kw):
    p = os.path.join(str(root), *rel.split("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    im.save(p, **kw)


def test_mask_for_Grey01_And_ClassIds(tmp_path):
    a = np.zeros((4, 4), np.uint8)
    a[1, 1], a[2, 2], a[3, 3] = 1, 2, 255
    save(tmp_path, "ground_truth/scratch/000_mask.png", Image.fromarray(a))
    assert np.array_equal(mask_for(str(tmp_path), "scratch", "000", 4, 4), a != 0)
    assert not mask_for(str(tmp_path), "good", "000", 4, 4).any()
    assert not mask_for(str(tmp_path), "scratch", "001", 4, 4).any()  # no mask file: no defect
    with pytest.raises(ValueError, match="differs from image"):
        mask_for(str(tmp_path), "scratch", "000", 4, 5)


def test_mask_for_Palette_IndexNotColour(tmp_path):
    im = Image.new("P", (4, 4))
    im.putpalette([255, 255, 255, 0, 0, 0] + [0] * (254 * 3))  # index 0 is white, index 1 black
    idx = np.zeros((4, 4), np.uint8)
    idx[0, :2] = 1
    im.putdata(idx.ravel().tolist())
    save(tmp_path, "ground_truth/hole/007_mask.png", im)
    with Image.open(tmp_path / "ground_truth" / "hole" / "007_mask.png") as check:
        assert check.mode == "P"
    assert np.array_equal(mask_for(str(tmp_path), "hole", "007", 4, 4), idx != 0)


def test_mask_for_16bit(tmp_path):
    a = np.zeros((4, 4), np.uint16)
    a[0, 0], a[1, 2], a[3, 3] = 1, 300, 65535
    save(tmp_path, "ground_truth/dent/000.png", Image.fromarray(a))  # STEM.png, no _mask suffix
    with Image.open(tmp_path / "ground_truth" / "dent" / "000.png") as check:
        assert check.mode.startswith("I")
    assert np.array_equal(mask_for(str(tmp_path), "dent", "000", 4, 4), a != 0)


def test_mask_for_RGBA_TransparentIsNotDefect(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[0, 0] = (255, 0, 0, 255)  # red, opaque: defect
    a[0, 1] = (255, 0, 0, 0)  # red, fully transparent: not
    a[0, 2] = (0, 0, 0, 255)  # black, opaque: not
    a[0, 3] = (0, 0, 9, 1)  # dark blue, barely opaque: defect
    save(tmp_path, "ground_truth/ko/0000.PNG", Image.fromarray(a, "RGBA"))
    want = np.zeros((4, 4), bool)
    want[0, 0] = want[0, 3] = True
    assert np.array_equal(mask_for(str(tmp_path), "ko", "0000", 4, 4), want)


def test_mask_for_RGB_NotBlack(tmp_path):
    a = np.zeros((4, 4, 3), np.uint8)
    a[2, 1] = (0, 1, 0)
    save(tmp_path, "ground_truth/ko/0001_mask.bmp", Image.fromarray(a, "RGB"))
    assert np.argwhere(mask_for(str(tmp_path), "ko", "0001", 4, 4)).tolist() == [[2, 1]]


def test_mask_for_JPEG_Threshold128(tmp_path):
    a = np.zeros((16, 16), np.uint8)
    a[:8, :8] = 255  # defect
    a[8:, :8] = 40  # compression-level noise, below 128: not a defect
    a[:8, 8:] = 200  # defect
    save(tmp_path, "ground_truth/crack/000_mask.jpg", Image.fromarray(a), quality=95)
    want = a >= 128
    assert np.array_equal(mask_for(str(tmp_path), "crack", "000", 16, 16), want)


def test_mask_for_Names_AnyCase_FirstInByteOrder(tmp_path):
    one = np.zeros((4, 4), np.uint8)
    one[0, 0] = 255
    full = Image.fromarray(np.full((4, 4), 255, np.uint8))
    gt = tmp_path / "ground_truth" / "cut"
    save(tmp_path, "ground_truth/cut/000_MASK.TIF", Image.fromarray(one))
    save(tmp_path, "ground_truth/cut/._000.png", full)  # hidden
    save(tmp_path, "ground_truth/cut/000_mask.txt", full, format="PNG")  # not an image name
    assert np.array_equal(mask_for(str(tmp_path), "cut", "000", 4, 4), one != 0)
    # With STEM.* and STEM_mask.* both there, the first in byte order is the mask, as on the Go side.
    save(tmp_path, "ground_truth/cut/000.bmp", full)
    assert data.find_mask(str(gt), "000") == str(gt / "000.bmp")
    assert mask_for(str(tmp_path), "cut", "000", 4, 4).all()
    assert data.find_mask(str(gt), "001") is None
    assert data.mask_stem("_mask.png") == "_mask" and data.mask_stem("x_Mask.png") == "x"


def test_mask_for_PngTransparentValue(tmp_path):
    a = np.zeros((4, 4), np.uint8)
    a[0, 0], a[0, 1] = 255, 7
    save(tmp_path, "ground_truth/k/000.png", Image.fromarray(a), transparency=7)
    assert np.argwhere(mask_for(str(tmp_path), "k", "000", 4, 4)).tolist() == [[0, 0]]
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[1, 1], rgb[1, 2] = (9, 9, 9), (0, 200, 0)
    save(tmp_path, "ground_truth/k/001.png", Image.fromarray(rgb, "RGB"), transparency=(9, 9, 9))
    assert np.argwhere(mask_for(str(tmp_path), "k", "001", 4, 4)).tolist() == [[1, 2]]


def test_mask_for_ColourJPEG_BrightestChannel(tmp_path):
    a = np.zeros((16, 16, 3), np.uint8)
    a[:8, :8] = (255, 0, 0)  # pure red: luma 76, brightest channel 255: defect
    a[8:, 8:] = (60, 60, 60)
    save(tmp_path, "ground_truth/k/000.jpeg", Image.fromarray(a, "RGB"), quality=95)
    want = np.zeros((16, 16), bool)
    want[:8, :8] = True
    assert np.array_equal(mask_for(str(tmp_path), "k", "000", 16, 16), want)


def test_train_list_VisA_BomAndMissingColumns(tmp_path):
    root = tmp_path / "visa"
    img(root, "fryum/Data/Images/Normal/0000.JPG", fmt="JPEG")
    p = root / "split_csv" / "1cls.csv"
    p.parent.mkdir(parents=True)
    p.write_bytes("\ufeffobject,split,label,image,mask\r\nfryum, train ,normal,fryum/Data/Images/Normal/0000.JPG,\r\n".encode())
    assert train_list(str(root)) == ("visa", ["fryum/Data/Images/Normal/0000.JPG"])
    p.write_text("object,split,image\nfryum,train,fryum/Data/Images/Normal/0000.JPG\n")
    with pytest.raises(ValueError, match=r'1cls.csv: no "label" column'):
        train_list(str(root))
