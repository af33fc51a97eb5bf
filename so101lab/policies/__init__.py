"""Policies: SmolVLA (LeRobot-compatible), ACT, and the shared chunked-action execution."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from so101lab.policies.act import ACTPolicy
from so101lab.policies.act_config import LEGACY_POLICY_TYPE, ACTConfig
from so101lab.policies.chunking import ActionQueue, TemporalEnsembler
from so101lab.policies.device import resolve_device, resolve_dtype
from so101lab.policies.smolvla_config import CONFIG_NAME, SmolVLAConfig
from so101lab.policies.smolvla_policy import SmolVLAPolicy
from so101lab.policies.train_state import PRETRAINED

Policy = ACTPolicy | SmolVLAPolicy


def load_policy(
    path: str | Path,
    device: str | torch.device = "cpu",
    vlm_dir: str | Path | None = None,
    dtype: str | torch.dtype = "float32",
) -> Policy:
    """The checkpoint in ``path``, as the policy class its config.json ``type`` names.

    ``path`` is a policy directory or a training checkpoint (``checkpoints/<step>``), whose
    ``pretrained_model/`` is the policy: ``so101lab train`` prints and lists the latter.
    ``device`` may be ``auto`` (cuda, mps, cpu); ``dtype`` is the inference precision.
    """
    path = policy_dir(path)
    kind = json.loads((path / CONFIG_NAME).read_text()).get("type")
    where = resolve_device(device)
    if kind in (ACTConfig.policy_type, LEGACY_POLICY_TYPE):
        policy: Policy = ACTPolicy.from_pretrained(path, device=where)
    elif kind == SmolVLAConfig.policy_type:
        policy = SmolVLAPolicy.from_pretrained(path, vlm_dir=vlm_dir, device=where)
    else:
        raise ValueError(
            f"{path / CONFIG_NAME}: policy type {kind!r} is not supported ({ACTConfig.policy_type}, "
            f"{SmolVLAConfig.policy_type})"
        )
    policy.set_inference_precision(resolve_dtype(dtype, where))
    return policy


def policy_dir(path: str | Path) -> Path:
    """The directory holding the policy's config.json: ``path``, or its ``pretrained_model/``."""
    path = Path(path)
    for candidate in (path, path / PRETRAINED):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise FileNotFoundError(
        f"no {CONFIG_NAME} in {path} or {path / PRETRAINED}: pass a policy directory or a training checkpoint "
        "(outputs/train/checkpoints/<step>)"
    )


__all__ = [
    "ACTConfig", "ACTPolicy", "ActionQueue", "Policy", "SmolVLAConfig", "SmolVLAPolicy", "TemporalEnsembler",
    "load_policy", "policy_dir",
]  # fmt: skip
