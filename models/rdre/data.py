"""Dataset folders for training: the layouts of docs/datasets.md, masks, and the training-data fingerprint.

Contract (the same rules as the Go reader, backend/dataset, which the lead cross-checks with ``train-list``):

- Layouts, detected in this order: ``visa`` (``ROOT/split_csv/1cls.csv``); the root as one category:
  ``mvtec2`` (``test_public/``), ``mvtec3d`` (``train/good/rgb`` or ``test/*/rgb``), ``loco`` (a kind folder
  of ``ground_truth/`` holds folders), ``btad`` (``train/ok`` or ``test/ok``), ``mvtec`` (``train/`` or
  ``test/``); the root as a folder of such categories, each detected on its own (a folder of categories of
  different layouts is named by their sorted names joined with ",", e.g. ``btad,mvtec``); ``images+masks``
  (a sub-folder with ``Imgs/``); ``plain`` (a ``good/`` folder). ``layout=`` forces one: a category layout
  reads the root when it detects as that layout, else the sub-folders that do.
- Training images: ``CAT/train/good/*`` (mvtec, mvtec2, loco), ``CAT/train/good/rgb/*`` (mvtec3d),
  ``CAT/train/ok/*`` (btad), the ``1cls.csv`` rows with split ``train`` and label ``normal`` (also ``good`` or
  ``0``, any case) (visa; paths relative to ROOT; rows naming no image file inside the root are skipped with
  a warning). ``images+masks`` and ``plain`` have no training split (ValueError), nor does a dataset whose
  training folders are empty.
- Image names end in .png .jpg .jpeg .bmp .tif .tiff in any case; names starting with "." are skipped at
  every level; symlinks are followed as Go's os.Root follows them (relative and inside the root). Lists are
  sorted by the slash-separated path relative to the root (byte order); an image whose category and stem
  an earlier one already has (``000.jpg`` beside ``000.png``) is left out with a warning, as Go's duplicate
  key.
- Masks (``mask_for``): the first file in byte order named ``STEM_mask.EXT`` or ``STEM.EXT`` (any image
  extension, ``_mask`` in any case); a defect pixel is any non-zero value of a lossless mask (grey, 16-bit,
  palette index whatever its colour, RGB not black, RGBA not black and not fully transparent) and, in a
  JPEG, grey (a colour JPEG: its brightest channel) >= 128.

``load_train`` returns the training images pre-processed to S x S in [0, 1] (not yet normalised, so that
synthesis works on pixel values); ``fingerprint`` is sha256 over the sorted training file names and contents.

Command line (no torch import): ``python3 -m models.rdre.data train-list ROOT [--layout NAME]`` prints
``{"layout": NAME, "train": ["rel/path.png", ...]}``; errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

MVTEC, MVTEC2, MVTEC3D, LOCO, VISA, BTAD, IMAGES_MASKS, PLAIN = (
    "mvtec", "mvtec2", "mvtec3d", "loco", "visa", "btad", "images+masks", "plain")
# Every layout in detection order (the Go side's LayoutNames).
LAYOUTS = (VISA, MVTEC2, MVTEC3D, LOCO, BTAD, MVTEC, IMAGES_MASKS, PLAIN)
# Layouts of one category folder (a dataset root may be one category or a folder of them), in detection order.
CATEGORY_LAYOUTS = (MVTEC2, MVTEC3D, LOCO, BTAD, MVTEC)
NO_TRAIN = (IMAGES_MASKS, PLAIN)
# Folder of the normal training images of each category layout, relative to the category.
TRAIN_DIR = {MVTEC: "train/good", MVTEC2: "train/good", MVTEC3D: "train/good/rgb", LOCO: "train/good", BTAD: "train/ok"}
VISA_CSV = "split_csv/1cls.csv"
VISA_COLUMNS = ("object", "split", "label", "image", "mask")
VISA_NORMAL = ("normal", "good", "0")  # labels (any case) read as a normal image, as the Go side reads them

log = logging.getLogger("models.rdre.data")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS)


def hidden(name: str) -> bool:
    return name.startswith(".")


def _join(*parts: str) -> str:
    """Slash-join relative path parts, dropping the root's "" (so _join("", "train") is "train")."""
    return "/".join(p for p in parts if p not in ("", "."))


def _valid_path(p: str) -> bool:
    """Go's fs.ValidPath: a relative slash path without "", "." or ".." elements (except "." itself)."""
    return p == "." or (p != "" and all(e not in ("", ".", "..") for e in p.split("/")))


def _stem(name: str) -> str:
    return os.path.splitext(os.path.basename(name))[0]


def mask_stem(name: str) -> str:
    """The image stem a mask file belongs to: STEM_mask.EXT ("_mask" in any case) or STEM.EXT."""
    s = _stem(name)
    return s[:-5] if len(s) > 5 and s[-5:].lower() == "_mask" else s


class _Tree:
    """Read-only view of a dataset root: relative slash paths, hidden names skipped, symlinks confined.

    Symlinks are followed as Go's os.Root follows them (the Go side opens the root as one): a relative link
    whose target stays inside the root is followed; an absolute link, or one whose target leaves the root
    (even for a moment through ".."), is not, and what it names is left out with a warning."""

    MAX_LINKS = 40

    def __init__(self, root: str):
        if not os.path.isdir(root):
            raise ValueError(f"dataset {root}: not a folder")
        self.root = root
        self.real = os.path.realpath(root)
        self._resolved: Dict[str, Optional[str]] = {}

    def path(self, rel: str) -> str:
        return self.root if rel in ("", ".") else os.path.join(self.root, *rel.split("/"))

    def resolve(self, rel: str) -> Optional[str]:
        """The real path of rel with every symlink resolved inside the root; None when it leaves the root."""
        if rel in self._resolved:
            return self._resolved[rel]
        stack: List[str] = []
        queue = [c for c in rel.split("/") if c not in ("", ".")]
        links = 0
        out: Optional[str] = None
        while True:
            if not queue:
                out = os.path.join(self.real, *stack)
                break
            c = queue.pop(0)
            if c in ("", "."):
                continue
            if c == "..":
                if not stack:
                    break
                stack.pop()
                continue
            p = os.path.join(self.real, *stack, c)
            if os.path.islink(p):
                links += 1
                try:
                    target = os.readlink(p)
                except OSError:
                    break
                if links > self.MAX_LINKS or os.path.isabs(target):
                    break
                queue = target.split("/") + queue
                continue
            stack.append(c)
        if out is None and os.path.lexists(self.path(rel)):
            log.warning("dataset %s: %s skipped: path leaves the dataset root", self.root, rel)
        self._resolved[rel] = out
        return out

    def isdir(self, rel: str) -> bool:
        r = self.resolve(rel)
        return r is not None and os.path.isdir(r)

    def isfile(self, rel: str) -> bool:
        r = self.resolve(rel)
        return r is not None and os.path.isfile(r)

    def _names(self, rel: str) -> List[str]:
        try:
            names = os.listdir(self.path(rel))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise ValueError(f"dataset {self.root}: cannot list {self.path(rel)}: {err}") from err
        return sorted(n for n in names if not hidden(n))

    def subdirs(self, rel: str) -> List[str]:
        if not self.isdir(rel):
            return []
        return [n for n in self._names(rel) if self.isdir(_join(rel, n))]

    def images(self, rel: str) -> List[str]:
        """Relative paths of the image files directly in folder rel (sorted)."""
        if not self.isdir(rel):
            return []
        return [_join(rel, n) for n in self._names(rel) if is_image_name(n) and self.isfile(_join(rel, n))]


def _is_mvtec3d(t: _Tree, d: str) -> bool:
    return t.isdir(_join(d, "train/good/rgb")) or any(t.isdir(_join(d, "test", k, "rgb")) for k in t.subdirs(_join(d, "test")))


def _is_loco(t: _Tree, d: str) -> bool:
    gt = _join(d, "ground_truth")
    return any(t.subdirs(_join(gt, k)) for k in t.subdirs(gt))


# Detection of each layout at folder d (a category candidate, or the root for whole-set layouts).
_DETECT = {
    VISA: lambda t, d: t.isfile(_join(d, VISA_CSV)),
    MVTEC2: lambda t, d: t.isdir(_join(d, "test_public")),
    MVTEC3D: _is_mvtec3d,
    LOCO: _is_loco,
    BTAD: lambda t, d: t.isdir(_join(d, "train/ok")) or t.isdir(_join(d, "test/ok")),
    MVTEC: lambda t, d: t.isdir(_join(d, "train")) or t.isdir(_join(d, "test")),
    IMAGES_MASKS: lambda t, d: any(t.isdir(_join(d, c, "Imgs")) for c in t.subdirs(d)),
    PLAIN: lambda t, d: t.isdir(_join(d, "good")),
}


def _category_layout(t: _Tree, d: str) -> Optional[str]:
    for name in CATEGORY_LAYOUTS:
        if _DETECT[name](t, d):
            return name
    return None


def _check_layout(layout: Optional[str], root: str) -> None:
    if layout and layout not in LAYOUTS:  # "" detects, as None does
        raise ValueError(f'dataset {root}: unknown layout "{layout}" (want one of {", ".join(LAYOUTS)})')


def _plan(t: _Tree, forced: Optional[str]) -> Tuple[str, List[Tuple[str, str]]]:
    """(layout name, [(category folder relative to the root, its layout)]); "" is the root itself.

    A dataset whose categories have different layouts is named by their sorted names joined with ","."""
    if forced:
        if forced not in CATEGORY_LAYOUTS or _DETECT[forced](t, ""):
            return forced, [("", forced)]
        cats = [(d, forced) for d in t.subdirs("") if _DETECT[forced](t, d)]
        if not cats:
            raise ValueError(f"dataset {t.root}: layout {forced}: the root is not such a category and has no sub-folder "
                             f"that is (want {TRAIN_DIR[forced]}; see docs/datasets.md)")
        return forced, cats
    if _DETECT[VISA](t, ""):
        return VISA, [("", VISA)]
    own = _category_layout(t, "")
    if own:
        return own, [("", own)]
    cats = [(d, lay) for d in t.subdirs("") for lay in [_category_layout(t, d)] if lay]
    if cats:
        return ",".join(sorted({lay for _, lay in cats})), cats
    for name in (IMAGES_MASKS, PLAIN):
        if _DETECT[name](t, ""):
            return name, [("", name)]
    raise ValueError(f"dataset {t.root}: no known layout (want one of {', '.join(LAYOUTS)}; see docs/datasets.md)")


def detect_layout(root: str, layout: Optional[str] = None) -> str:
    """The layout name of the dataset at root, detected in the order of docs/datasets.md."""
    _check_layout(layout, root)
    return _plan(_Tree(root), layout)[0]


def _visa_train(t: _Tree) -> List[Tuple[str, str]]:
    """(image path, object) of the 1cls.csv rows with split train and a normal label.

    Rows the Go side skips with a warning (a split other than train/test, an image path that is not a
    valid relative path, not an image name or not a file inside the root) are skipped with a warning."""
    csv_path = t.path(VISA_CSV)
    out = []
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            head = next(reader, None)
            if head is None:
                raise ValueError(f"dataset {t.root}: {csv_path} is empty (want the header {','.join(VISA_COLUMNS)})")
            col = {h.strip().lower(): i for i, h in enumerate(head)}
            for c in VISA_COLUMNS:
                if c not in col:
                    raise ValueError(f'dataset {t.root}: {csv_path}: no "{c}" column (want {",".join(VISA_COLUMNS)})')
            for line, rec in enumerate(reader, start=2):
                def get(c: str) -> str:
                    i = col[c]
                    return rec[i].strip() if i < len(rec) else ""

                split, img = get("split"), get("image")
                if split not in ("train", "test"):
                    log.warning("%s line %d skipped: split %r is neither train nor test", csv_path, line, split)
                    continue
                if not _valid_path(img) or not is_image_name(img) or not t.isfile(img):
                    log.warning("%s line %d skipped: image %r is not an image file inside the dataset", csv_path, line, img)
                    continue
                if split == "train" and get("label").lower() in VISA_NORMAL:
                    out.append((img, get("object")))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"dataset {t.root}: cannot read {csv_path}: {err}") from err
    if not out:
        raise ValueError(f"dataset {t.root}: {csv_path} has no row of an image with split train and label normal")
    return out


def train_list(root: str, layout: Optional[str] = None) -> Tuple[str, List[str]]:
    """(layout, normal training image paths relative to root with "/" separators, sorted in byte order).

    As on the Go side an image whose key (category and stem) is already taken by an earlier one in that
    order (000.jpg beside 000.png) is left out with a warning."""
    _check_layout(layout, root)
    t = _Tree(root)
    name, cats = _plan(t, layout)
    if name in NO_TRAIN:
        raise ValueError(f"dataset {root}: layout {name} has no training split (its images are all test images); "
                         f"train on a layout with normal training images ({', '.join(CATEGORY_LAYOUTS + (VISA,))})")
    if name == VISA:
        found = _visa_train(t)
    else:
        found = [(f, c) for c, lay in cats for f in t.images(_join(c, TRAIN_DIR[lay]))]
        if not found:
            where = ", ".join(t.path(_join(c, TRAIN_DIR[lay])) for c, lay in cats)
            raise ValueError(f"dataset {root}: no training images in {where} (layout {name})")
    seen = {}
    out = []
    for rel, cat in sorted(set(found)):
        key = (cat, _stem(rel))
        if key in seen:
            log.warning("dataset %s: training image %s skipped: its key %s/good/%s is taken by %s", root, rel, cat, key[1], seen[key])
            continue
        seen[key] = rel
        out.append(rel)
    return name, out


def train_files(root: str, layout: Optional[str] = None) -> List[str]:
    """Paths (root joined with the relative path) of the normal training images, sorted as the Go side."""
    return [os.path.join(root, *rel.split("/")) for rel in train_list(root, layout)[1]]


def _images(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if not hidden(f) and is_image_name(f) and os.path.isfile(os.path.join(folder, f)))


def test_files(root: str) -> List[Tuple[str, str, str]]:
    """(kind, stem, path) of every test image of an MVTec-layout category, sorted by kind then name."""
    tdir = os.path.join(root, "test")
    if not os.path.isdir(tdir):
        raise ValueError(f"dataset {root}: no test folder")
    out = []
    for kind in sorted(k for k in os.listdir(tdir) if not hidden(k)):
        for p in _images(os.path.join(tdir, kind)):
            out.append((kind, os.path.splitext(os.path.basename(p))[0], p))
    if not out:
        raise ValueError(f"dataset {root}: test folder has no images")
    return out


def find_mask(folder: str, stem: str) -> Optional[str]:
    """The mask file of image STEM in folder: the first (byte order) image file named STEM_mask.EXT or
    STEM.EXT ("_mask" and the extension in any case), as the Go side pairs them."""
    if not os.path.isdir(folder):
        return None
    for n in sorted(os.listdir(folder)):
        if not hidden(n) and is_image_name(n) and mask_stem(n) == stem and os.path.isfile(os.path.join(folder, n)):
            return os.path.join(folder, n)
    return None


def _soft_edges(a) -> bool:
    """An 8-bit 0/255 mask with blurred or noisy edges (the Go side's imageio.softEdges): more than two
    non-zero levels, >= 70 % of the non-zero pixels in 1..31 or 224..255, and bright (>= 128) pixels at least
    as many as dark ones."""
    import numpy as np

    nz = a[a != 0]
    if nz.size == 0 or len(np.unique(nz)) <= 2:
        return False
    lo = int((nz < 128).sum())
    hi = nz.size - lo
    ends = int(((nz < 32) | (nz >= 224)).sum())
    return lo > 0 and hi >= lo and 10 * ends >= 7 * nz.size


def decode_mask(path: str):
    """Bool HxW defect mask of a mask file by the rule of docs/datasets.md."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as im:
            fmt, mode, trans = im.format, im.mode, im.info.get("transparency")
            if fmt == "JPEG":  # lossy: grey >= 128; a colour JPEG by its brightest channel, as the Go side reads it
                if mode == "L":
                    return np.asarray(im) >= 128
                return np.asarray(im.convert("RGB")).max(axis=-1) >= 128
            if mode == "P":  # the palette index, whatever its colour or transparency
                return np.asarray(im) != 0
            if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
                rgba = np.asarray(im.convert("RGBA"))
                return rgba[..., :3].any(axis=-1) & (rgba[..., 3] != 0)
            if mode in ("1", "L", "I", "F") or mode.startswith("I;"):
                a = np.asarray(im)
                if a.ndim != 2:
                    a = np.asarray(im.convert("I"))
                if mode == "L" and _soft_edges(a):
                    return a >= 128  # 0/255 with blurred or noisy edges: read at the midpoint
                m = a != 0
                if isinstance(trans, int) and mode != "1":  # a PNG tRNS grey value is fully transparent
                    m &= a != trans
                return m
            rgb = np.asarray(im.convert("RGB"))
            m = rgb.any(axis=-1)
            if mode == "RGB" and isinstance(trans, tuple):  # a PNG tRNS colour is fully transparent
                m &= ~(rgb == np.asarray(trans[:3], dtype=rgb.dtype)).all(axis=-1)
            return m
    except (OSError, ValueError) as err:
        raise ValueError(f"mask {path}: {err}") from err


def mask_for(root: str, kind: str, stem: str, height: int, width: int):
    """Ground-truth mask of test image KIND/STEM as bool HxW; a missing mask (or kind good) means no defect."""
    import numpy as np

    p = None if kind == "good" else find_mask(os.path.join(root, "ground_truth", kind), stem)
    if p is None:
        return np.zeros((height, width), dtype=bool)
    m = decode_mask(p)
    if m.shape != (height, width):
        raise ValueError(f"mask {p}: size {m.shape[1]}x{m.shape[0]} differs from image {width}x{height}")
    return m


def load_train(root: str, size: int, layout: Optional[str] = None, files: Optional[Sequence[str]] = None):
    """The training images as an Nx3xSxS float tensor in [0, 1] (files: the list train_files gave)."""
    import torch

    from .preprocess import load_rgb, resize

    files = list(files) if files is not None else train_files(root, layout)
    return torch.cat([resize(load_rgb(p), size) for p in files], dim=0)


def fingerprint(files: List[str], root: Optional[str] = None) -> str:
    """sha256 over the training file names and contents, sorted by name.

    The name is the file's base name (as always, so fingerprints of one category stay what they were); when
    two files share a base name (a folder of categories) and root is given, it is the path relative to root.
    """
    names = [os.path.basename(p) for p in files]
    if root is not None and len(set(names)) != len(names):
        names = [os.path.relpath(p, root).replace(os.sep, "/") for p in files]
    h = hashlib.sha256()
    for name, p in sorted(zip(names, files), key=lambda pair: pair[0]):
        h.update(name.encode())
        h.update(b"\0")
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 1 like every other error of this command
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = _Parser(prog="python3 -m models.rdre.data", description="Dataset reader of the trainer (docs/datasets.md).")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    tl = sub.add_parser("train-list", help="print the training images as JSON {layout, train}")
    tl.add_argument("root", metavar="ROOT")
    tl.add_argument("--layout", default=None, help="force a layout: " + ", ".join(LAYOUTS))
    args = p.parse_args(argv)
    if args.cmd != "train-list":
        p.error("want a command: train-list")
    try:
        name, rels = train_list(args.root, args.layout)
    except ValueError as err:
        print(f"train-list: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"layout": name, "train": rels}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
