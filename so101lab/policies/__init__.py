"""Policies: SmolVLA (LeRobot-compatible), ACT, and the shared chunked-action execution."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from so101lab.policies.act import ACTPolicy
from so101lab.policies.act_config import ACTConfig
from so101lab.policies.chunking import ActionQueue, TemporalEnsembler
from so101lab.policies.smolvla_config import CONFIG_NAME, SmolVLAConfig
from so101lab.policies.smolvla_policy import SmolVLAPolicy

Policy = ACTPolicy | SmolVLAPolicy


def load_policy(
    path: str | Path, device: str | torch.device = "cpu", vlm_dir: str | Path | None = None
) -> Policy:
    """The checkpoint in ``path``, as the policy class its config.json ``type`` names."""
    config = Path(path, CONFIG_NAME)
    if not config.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in checkpoint directory {path}")
    kind = json.loads(config.read_text()).get("type")
    if kind == "act":
        return ACTPolicy.from_pretrained(path, device=device)
    if kind == "smolvla":
        return SmolVLAPolicy.from_pretrained(path, vlm_dir=vlm_dir, device=device)
    raise ValueError(f"{config}: policy type {kind!r} is not supported (act, smolvla)")


__all__ = [
    "ACTConfig", "ACTPolicy", "ActionQueue", "Policy", "SmolVLAConfig", "SmolVLAPolicy", "TemporalEnsembler",
    "load_policy",
]  # fmt: skip
