"""Exact sort-and-sweep metrics in numpy (no sklearn on these machines).

Contract: ``auroc``, ``average_precision`` (step-wise, as sklearn), ``f1_max`` (value and threshold) and
``aupro`` (MVTec AD definition: PRO over 8-connected ground-truth regions against the FPR over all
defect-free pixels, area up to FPR 0.3 with linear interpolation at the limit, divided by 0.3), each
computed over all distinct score values. Ties are handled by evaluating only at distinct thresholds.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np


def _trapz(y: np.ndarray, x: np.ndarray) -> float:
    # np.trapz is gone from NumPy 2; keep one spelling for both.
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _sweep(scores: np.ndarray, labels: np.ndarray):
    """Sorted descending; returns (thresholds, tp, fp) at each distinct score."""
    scores = np.asarray(scores).ravel()
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"metrics: {scores.size} scores but {labels.size} labels")
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    y = labels[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return s[last], tp.astype(np.float64), fp.astype(np.float64)


def auroc(scores, labels) -> float:
    _, tp, fp = _sweep(scores, labels)
    if tp[-1] == 0 or fp[-1] == 0:
        raise ValueError("auroc: need both positive and negative samples")
    tpr = np.r_[0.0, tp / tp[-1]]
    fpr = np.r_[0.0, fp / fp[-1]]
    return _trapz(tpr, fpr)


def average_precision(scores, labels) -> float:
    _, tp, fp = _sweep(scores, labels)
    if tp[-1] == 0:
        raise ValueError("average precision: no positive samples")
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_max(scores, labels) -> Tuple[float, float]:
    """(best F1, threshold reaching it): predictions are score >= threshold."""
    thr, tp, fp = _sweep(scores, labels)
    if tp[-1] == 0:
        return 0.0, float(thr[0])
    fn = tp[-1] - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12)
    i = int(np.argmax(f1))
    return float(f1[i]), float(thr[i])


def _runs(row: np.ndarray):
    """(start, end) inclusive of the True runs of a 1-D bool array."""
    d = np.diff(np.r_[0, row.astype(np.int8), 0])
    return list(zip(np.nonzero(d == 1)[0].tolist(), (np.nonzero(d == -1)[0] - 1).tolist()))


def label_regions(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """8-connected component labels (0 = background) of a bool mask, by union-find over row runs."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"label regions: want a 2-D mask, got shape {mask.shape}")
    parent: List[int] = []

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    runs = []  # (row, start, end, run id)
    prev: List[Tuple[int, int, int]] = []
    for y in range(mask.shape[0]):
        cur = []
        for a, b in _runs(mask[y]):
            rid = len(parent)
            parent.append(rid)
            for pa, pb, pid in prev:
                # 8-connectivity: runs touch if they overlap once widened by one pixel.
                if pa <= b + 1 and pb >= a - 1:
                    ra, rb = find(rid), find(pid)
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
            cur.append((a, b, rid))
            runs.append((y, a, b, rid))
        prev = cur
    labels = np.zeros(mask.shape, dtype=np.int32)
    ids: dict = {}
    for y, a, b, rid in runs:
        root = find(rid)
        if root not in ids:
            ids[root] = len(ids) + 1
        labels[y, a : b + 1] = ids[root]
    return labels, len(ids)


def aupro(maps: List[np.ndarray], masks: List[np.ndarray], fpr_limit: float = 0.3) -> float:
    scores, weights_pos, is_neg = [], [], []
    n_regions = 0
    region_sizes = []
    region_ids = []
    for m, g in zip(maps, masks):
        if m.shape != g.shape:
            raise ValueError(f"aupro: map {m.shape} and mask {g.shape} differ")
        lab, n = label_regions(g)
        sizes = np.bincount(lab.ravel(), minlength=n + 1).astype(np.float64)
        ids = lab.ravel().astype(np.int64)
        region_ids.append(np.where(ids > 0, ids + n_regions, 0))
        region_sizes.append(sizes[1:])
        n_regions += n
        # Sorting the maps' own float32 values is exact and halves the memory of 900x900 test sets.
        scores.append(np.asarray(m).ravel())
    if n_regions == 0:
        raise ValueError("aupro: no ground-truth regions")
    scores = np.concatenate(scores)
    ids = np.concatenate(region_ids)
    sizes = np.r_[0.0, np.concatenate(region_sizes)]
    n_neg = int((ids == 0).sum())
    if n_neg == 0:
        raise ValueError("aupro: no defect-free pixels")
    # Each pixel adds 1/(|region| * n_regions) to PRO or 1/n_neg to FPR once the threshold passes it.
    weight = np.zeros(sizes.size)
    weight[1:] = 1.0 / (sizes[1:] * n_regions)
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    del s
    sorted_ids = ids[order]
    del order
    pro = np.r_[0.0, np.cumsum(weight[sorted_ids])[last]]
    fpr = np.r_[0.0, np.cumsum(sorted_ids == 0)[last] / n_neg]
    fpr = np.minimum(fpr, 1.0)
    k = int(np.searchsorted(fpr, fpr_limit, side="right"))
    xs, ys = fpr[:k], pro[:k]
    if k < fpr.size:
        x0, x1, y0, y1 = fpr[k - 1], fpr[k], pro[k - 1], pro[k]
        yl = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0) if x1 > x0 else y1
        xs, ys = np.r_[xs, fpr_limit], np.r_[ys, yl]
    return _trapz(ys, xs) / fpr_limit
