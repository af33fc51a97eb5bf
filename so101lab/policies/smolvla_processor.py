"""Everything between raw observations/batches and SmolVLA's model tensors, and back.

Raw batch (LeRobot keys): ``observation.state`` [B, S], ``observation.images.<cam>`` [B,3,H,W]
float in [0,1], ``task`` list of strings, optionally ``action`` [B, T, A] and ``action_is_pad``
[B, T]. Model inputs: state mean/std-normalised and zero-padded to ``max_state_dim``, images
resized with padding (aspect kept, zeros on the left/top) then mapped to [-1, 1], tasks with a
trailing newline tokenised with right padding, actions normalised and padded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from so101lab.contract import (
    FEATURE_ACTION,
    FEATURE_IMAGE_PREFIX,
    FEATURE_STATE,
    OBS_PIXELS,
    OBS_STATE,
)
from so101lab.policies.smolvla_config import SmolVLAConfig

NORM_EPS = 1e-8
Stats = dict[str, dict[str, Tensor]]


@dataclass
class ModelInputs:
    """Tensors in the order and meaning of ``SmolVLAFlowMatching.forward``/``sample_actions``."""

    images: list[Tensor]
    img_masks: list[Tensor]
    lang_tokens: Tensor
    lang_masks: Tensor
    state: Tensor
    actions: Tensor | None = None
    action_is_pad: Tensor | None = None


def resize_with_pad(img: Tensor, height: int, width: int, pad_value: float = 0.0) -> Tensor:
    """Bilinear resize of [B,C,H,W] to fit (height, width) keeping aspect, padded on the left/top."""
    if img.ndim != 4:
        raise ValueError(f"expected images [batch, channels, height, width], got {tuple(img.shape)}")
    cur_h, cur_w = img.shape[2:]
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    if (new_h, new_w) == (cur_h, cur_w):
        out = img  # bilinear to the same size is the identity
    elif img.is_contiguous():
        # Each channel as its own 1-channel image: same values, but torch's CPU bilinear kernel
        # takes its fast (channels-last) path, ~30x faster than on a contiguous NCHW batch.
        b, c = img.shape[:2]
        flat = img.view(b * c, 1, cur_h, cur_w)
        out = F.interpolate(flat, size=(new_h, new_w), mode="bilinear", align_corners=False).view(b, c, new_h, new_w)
    else:  # e.g. HWC frames permuted to CHW: already channels-last
        out = F.interpolate(img, size=(new_h, new_w), mode="bilinear", align_corners=False)
    return F.pad(out, (max(0, width - new_w), 0, max(0, height - new_h), 0), value=pad_value)


def pad_last_dim(x: Tensor, size: int) -> Tensor:
    """Zero-pad the last dimension to ``size``."""
    if x.shape[-1] > size:
        raise ValueError(f"vector of size {x.shape[-1]} exceeds the model's maximum {size}")
    return F.pad(x, (0, size - x.shape[-1]))


def _stats_for(stats: Stats, key: str) -> tuple[Tensor, Tensor]:
    if key not in stats or "mean" not in stats[key] or "std" not in stats[key]:
        raise KeyError(f"normalisation needs mean and std for {key!r}; stats have {sorted(stats)}")
    return stats[key]["mean"], stats[key]["std"]


class SmolVLAProcessor:
    """Normalisation (mean/std), image resizing, tokenising and padding for SmolVLA."""

    def __init__(self, config: SmolVLAConfig, tokenizer, stats: Stats) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.stats = {k: {s: torch.as_tensor(v, dtype=torch.float32) for s, v in d.items()} for k, d in stats.items()}
        for kind, mode in config.normalization_mapping.items():
            if mode not in ("IDENTITY", "MEAN_STD"):
                raise NotImplementedError(f"normalisation {mode!r} for {kind} is not supported (mean/std only)")
        for key in (FEATURE_STATE, FEATURE_ACTION):
            if self._mode(key) == "MEAN_STD":
                _stats_for(self.stats, key)  # fail at load time, not at the first step

    # --- normalisation ----------------------------------------------------------------------------

    def _mode(self, key: str) -> str:
        kind = "STATE" if key == FEATURE_STATE else "ACTION" if key == FEATURE_ACTION else "VISUAL"
        return self.config.normalization_mapping.get(kind, "IDENTITY")

    def normalize(self, key: str, x: Tensor) -> Tensor:
        if self._mode(key) != "MEAN_STD":
            return x
        mean, std = _stats_for(self.stats, key)
        return (x - mean.to(x)) / (std.to(x) + NORM_EPS)

    def unnormalize_actions(self, x: Tensor) -> Tensor:
        if self._mode(FEATURE_ACTION) != "MEAN_STD":
            return x
        mean, std = _stats_for(self.stats, FEATURE_ACTION)
        return x * std.to(x) + mean.to(x)

    # --- pieces -----------------------------------------------------------------------------------

    def tokenize(self, tasks: list[str], device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Tasks (newline appended when missing) -> right-padded token ids [B, L] and a bool mask."""
        if isinstance(tasks, str) or not all(isinstance(t, str) for t in tasks):
            raise TypeError(f"tasks must be a list of strings, got {tasks!r}")
        texts = [t if t.endswith("\n") else f"{t}\n" for t in tasks]
        enc = self.tokenizer(
            texts,
            max_length=self.config.tokenizer_max_length,
            truncation=True,
            padding=self.config.pad_language_to,
            padding_side="right",
            return_tensors="pt",
        )
        return enc["input_ids"].to(device), enc["attention_mask"].to(device=device, dtype=torch.bool)

    def prepare_images(self, batch: Mapping[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        keys = self.config.image_features
        present = [k for k in keys if k in batch]
        if not present:
            raise KeyError(f"batch has none of the policy's cameras {keys}; keys: {sorted(batch)}")
        height, width = self.config.resize_imgs_with_padding
        images, masks = [], []
        for key in present:
            img = batch[key]
            img = img[:, -1] if img.ndim == 5 else img
            img = self.normalize(key, img.float())
            img = resize_with_pad(img, height, width, pad_value=0.0) * 2.0 - 1.0
            images.append(img)
            mask = batch.get(f"{key}_padding_mask")
            masks.append(
                mask.bool() if mask is not None else torch.ones(img.shape[0], dtype=torch.bool, device=img.device)
            )
        for _ in range(min(len(keys) - len(present), self.config.empty_cameras)):
            images.append(torch.full_like(images[-1], -1.0))
            masks.append(torch.zeros_like(masks[-1]))
        return images, masks

    # --- whole batches ----------------------------------------------------------------------------

    def preprocess(self, batch: Mapping[str, object], device: torch.device | str = "cpu") -> ModelInputs:
        """Raw batch (LeRobot keys, see module doc) -> model inputs on ``device``."""
        batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        if FEATURE_STATE not in batch:
            raise KeyError(f"batch has no {FEATURE_STATE!r}; keys: {sorted(batch)}")
        if "task" not in batch:
            raise KeyError(f"batch has no 'task' (language instruction); keys: {sorted(batch)}")
        tasks = batch["task"]
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        images, img_masks = self.prepare_images(batch)
        state = batch[FEATURE_STATE].float()
        state = state[:, -1] if state.ndim > 2 else state
        state = pad_last_dim(self.normalize(FEATURE_STATE, state), self.config.max_state_dim)
        tokens, lang_masks = self.tokenize(tasks, device)
        if tokens.shape[0] != state.shape[0]:
            raise ValueError(f"{tokens.shape[0]} tasks for a batch of {state.shape[0]} states")
        actions = batch.get(FEATURE_ACTION)
        if actions is not None:
            actions = pad_last_dim(self.normalize(FEATURE_ACTION, actions.float()), self.config.max_action_dim)
        return ModelInputs(images, img_masks, tokens, lang_masks, state, actions, batch.get("action_is_pad"))

    def postprocess(self, actions: Tensor) -> Tensor:
        """Model actions [B, T, max_action_dim] -> robot actions [B, T, action_dim], unnormalised."""
        return self.unnormalize_actions(actions[..., : self.config.action_dim])

    def observation_to_batch(self, obs: Mapping[str, object], task: str | list[str]) -> dict[str, object]:
        """Env observation (``agent_pos``, ``pixels`` {camera: HxWx3 uint8}), one or batched -> raw batch."""
        if OBS_STATE not in obs:
            raise KeyError(f"observation has no {OBS_STATE!r}; keys: {sorted(obs)}")
        state = torch.as_tensor(np.asarray(obs[OBS_STATE]), dtype=torch.float32)
        single = state.ndim == 1
        state = state[None] if single else state
        batch: dict[str, object] = {FEATURE_STATE: state}
        pixels = obs.get(OBS_PIXELS, {})
        for cam in self.config.cameras:
            if cam not in pixels:
                if self.config.empty_cameras:
                    continue
                raise KeyError(f"observation has no camera {cam!r} (policy cameras {self.config.cameras})")
            img = torch.as_tensor(np.asarray(pixels[cam]))
            img = img[None] if single else img
            if img.ndim != 4 or img.shape[-1] != 3:
                raise ValueError(f"camera {cam!r}: expected HxWx3 images, got shape {tuple(img.shape)}")
            batch[f"{FEATURE_IMAGE_PREFIX}{cam}"] = img.permute(0, 3, 1, 2).float() / 255.0
        tasks = [task] * state.shape[0] if isinstance(task, str) else list(task)
        if len(tasks) != state.shape[0]:
            raise ValueError(f"{len(tasks)} tasks for {state.shape[0]} observations")
        batch["task"] = tasks
        return batch
