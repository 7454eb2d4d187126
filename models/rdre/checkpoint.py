"""Reading training checkpoints of either format.

Contract: ``configs(st)`` returns (model config, training config) of a loaded checkpoint dict. Format 2
keeps RDRE's constructor arguments under ``config`` and the training settings under ``train_config``;
format 1 kept them under ``model_config`` and ``config``.
"""

from __future__ import annotations

from typing import Tuple


def configs(st: dict) -> Tuple[dict, dict]:
    if not isinstance(st, dict) or "model" not in st:
        raise ValueError("checkpoint: not an RD-RE training checkpoint")
    if "model_config" in st:
        return st["model_config"], st["config"]
    return st["config"], st.get("train_config", {})
