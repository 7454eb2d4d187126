"""The assembled RD-RE model.

Contract: ``RDRE(teacher, size, ...)`` holds the frozen teacher (also the student's encoder, as in the
paper), the student (bottleneck + decoder + cross-stage fusion), the segmentation sub-network and the map
head. ``forward(image)`` is the inference/export path: image N x 3 x S x S (normalised) ->
(anomaly_map N x 1 x S x S, score N, rd_map N x 1 x S x S). Training uses ``student_features`` and
``distance_maps``. Flags switch components off for ablations: fusion=False gives plain RD4AD-style
reverse distillation, seg=False scores with the RD map.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .anomaly_map import AnomalyMapper
from .loss import cosine_distance
from .segmentation import SegmentationNet
from .student import Student
from .teacher import Teacher


class RDRE(nn.Module):
    def __init__(
        self,
        teacher: Teacher,
        size: int = 256,
        fusion: bool = True,
        lda: bool = True,
        caams: bool = True,
        seg: bool = True,
        window: int = 8,
        lda_k: Tuple[int, int] = (4, 2),
        score: str = "topk_mean:100",
        sigma: float = 4.0,
        seg_width: int = 32,
        fusion_gate: bool = False,
        linear_out: Optional[bool] = None,
        fusion_norm: bool = False,
        output: str = "seg",
    ):
        super().__init__()
        if size % 32:
            raise ValueError(f"RD-RE: input size {size} must be a multiple of 32")
        self.size = size
        self.teacher = teacher
        # Decoder stage outputs without a final ReLU when the teacher's features are signed (None: decide by
        # the teacher). Checkpoints from before this option have no key and were built with the ReLU.
        if linear_out is None:
            linear_out = teacher.signed_features
        self.student = Student(teacher.channels, fusion=fusion, use_lda=lda, use_caams=caams, lda_k=lda_k, window=window, gate=fusion_gate,
                               linear_out=linear_out, fusion_norm=fusion_norm)
        self.use_seg = seg
        if output not in ("seg", "rd"):
            raise ValueError(f"RD-RE: output {output!r} is not seg or rd")
        # Which map the model exports as anomaly_map (and scores): the segmentation head's ("seg", the paper's)
        # or the student's RD map ("rd"; chosen on synthetic validation when training with output auto).
        self.output = output if seg else "rd"
        self.seg = SegmentationNet(3, width=seg_width) if seg else None
        self.mapper = AnomalyMapper(size, sigma, score)
        self.config: Dict[str, object] = dict(
            teacher=teacher.name, size=size, fusion=fusion, lda=lda, caams=caams, seg=seg, window=window,
            lda_k=list(lda_k), score=score, sigma=sigma, seg_width=seg_width,
        )
        if fusion_gate:
            # Only recorded when on, so checkpoints made before the option existed still match.
            self.config["fusion_gate"] = True
        if linear_out:
            self.config["linear_out"] = True
        if fusion_norm:
            self.config["fusion_norm"] = True
        if seg and output != "seg":
            self.config["output"] = output

    def set_output(self, output: str) -> None:
        """Switch the exported map (seg or rd) after training; the config records it."""
        if output not in ("seg", "rd") or (output == "seg" and self.seg is None):
            raise ValueError(f"RD-RE: cannot output {output!r} (segmentation head: {self.seg is not None})")
        self.output = output
        if output == "seg":
            self.config.pop("output", None)
        else:
            self.config["output"] = output

    def train(self, mode: bool = True) -> "RDRE":
        super().train(mode)
        self.teacher.train(False)
        return self

    def teacher_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        with torch.no_grad():
            return self.teacher(x)

    def student_features(self, encoder_feats: List[torch.Tensor]) -> List[torch.Tensor]:
        return self.student(encoder_feats)

    @staticmethod
    def distance_maps(ft: List[torch.Tensor], fs: List[torch.Tensor]) -> List[torch.Tensor]:
        return [cosine_distance(t, s) for t, s in zip(ft, fs)]

    def seg_input(self, distances: List[torch.Tensor]) -> torch.Tensor:
        h, w = int(distances[0].shape[-2]), int(distances[0].shape[-1])
        ups = [d if d.shape[-1] == w else F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False) for d in distances]
        return torch.cat(ups, dim=1)

    def forward(self, image: torch.Tensor):
        return self.maps(self.teacher(image))

    def maps(self, ft: List[torch.Tensor]):
        """(anomaly_map, score, rd_map) from the teacher's features of the image (what forward returns)."""
        # The student's encoder is the frozen teacher: at inference both see the same image.
        fs = self.student(ft)
        d = self.distance_maps(ft, fs)
        rd_map = self.mapper.rd_map(d)
        if self.seg is not None and self.output == "seg":
            anomaly_map = self.mapper.smooth(self.mapper.upsample(self.seg(self.seg_input(d))))
        else:
            anomaly_map = rd_map
        return anomaly_map, self.mapper.score(anomaly_map), rd_map


def count_params(model: RDRE, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, size: int) -> int:
    """Multiply-accumulates of one forward pass at size x size (convs, linears, attention matmuls)."""
    total = [0]
    hooks = []

    def conv_hook(m, inp, out):
        k = m.weight.shape[2] * m.weight.shape[3] * (m.in_channels // m.groups)
        total[0] += out.numel() * k

    def convt_hook(m, inp, out):
        total[0] += inp[0].numel() * m.out_channels * m.weight.shape[2] * m.weight.shape[3] // m.groups

    def lin_hook(m, inp, out):
        total[0] += out.numel() * m.in_features

    from .caams_ff import ASSA

    def assa_hook(m, inp, out):
        n, c, h, w = inp[0].shape
        mm = m.effective_window(int(h), int(w))
        tokens = n * h * w
        total[0] += 2 * tokens * mm * mm * c  # QK^T and AV

    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.ConvTranspose2d):
            hooks.append(mod.register_forward_hook(convt_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(lin_hook))
        elif isinstance(mod, ASSA):
            hooks.append(mod.register_forward_hook(assa_hook))
    try:
        with torch.no_grad():
            model.eval()
            model(torch.zeros(1, 3, size, size))
    finally:
        for h in hooks:
            h.remove()
    return total[0]
