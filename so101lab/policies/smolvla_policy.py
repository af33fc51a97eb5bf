"""SmolVLAPolicy: the flow-matching model with its processor, checkpoint IO and action queue.

``from_pretrained`` reads a LeRobot SmolVLA checkpoint directory; ``save_pretrained`` writes
one LeRobot loads. ``select_action(obs, task)`` takes an env observation dict (sim or real,
single or batched) and returns the next absolute joint target(s) in contract units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoTokenizer

from so101lab.policies.checkpoint import (
    load_model_state,
    load_stats,
    load_vlm_weights,
    resolve_vlm_dir,
    save_checkpoint,
)
from so101lab.policies.chunking import ActionQueue
from so101lab.policies.device import inference_precision, set_precision
from so101lab.policies.smolvla_config import SmolVLAConfig
from so101lab.policies.smolvla_model import SmolVLAFlowMatching
from so101lab.policies.smolvla_processor import ModelInputs, SmolVLAProcessor, Stats


class SmolVLAPolicy(nn.Module):
    """SmolVLA (LeRobot-compatible) for training and closed-loop control."""

    def __init__(self, config: SmolVLAConfig, vlm_dir: str | Path, stats: Stats, *, vlm_weights: bool = True) -> None:
        """``vlm_weights=False`` skips ``config.load_vlm_weights`` (the caller loads a full checkpoint)."""
        super().__init__()
        self.config = config
        self.vlm_dir = Path(vlm_dir)
        vlm_config = AutoConfig.from_pretrained(self.vlm_dir)
        tokenizer = AutoTokenizer.from_pretrained(self.vlm_dir)
        # Parameter dtypes follow the VLM config as in LeRobot (a config declaring bfloat16
        # gives bfloat16 text/expert layers; vision and the projections around stay float32).
        self.model = SmolVLAFlowMatching(config, vlm_config)
        if config.load_vlm_weights and vlm_weights:
            load_vlm_weights(self.model.vlm_with_expert.vlm, self.vlm_dir)
        self.processor = SmolVLAProcessor(config, tokenizer, stats)
        self.queue = ActionQueue(config.n_action_steps)
        self.inference_dtype = torch.float32

    # --- checkpoints ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        vlm_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        patch_positions: str | None = None,
    ) -> SmolVLAPolicy:
        """Load a LeRobot SmolVLA checkpoint directory (strict keys). ``vlm_dir`` overrides vlm_model_name;
        ``patch_positions`` ("transformers4"/"transformers5") the convention ``SmolVLAConfig.load`` infers."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint directory {path} does not exist")
        config = SmolVLAConfig.load(path, patch_positions)
        vlm = resolve_vlm_dir(config.vlm_model_name, path, vlm_dir)
        policy = cls(config, vlm, load_stats(path), vlm_weights=False)
        state = load_model_state(path, set(policy.state_dict()))
        policy.load_state_dict(state, strict=True)
        return policy.to(device)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write config.json, model.safetensors and LeRobot processor files into ``path``.

        ``vlm_model_name`` (and the tokenizer name) become the absolute local VLM directory, so
        LeRobot on this machine loads the checkpoint without a hub.
        """
        vlm = str(self.vlm_dir.resolve())
        config = dataclasses.replace(self.config, vlm_model_name=vlm)
        return save_checkpoint(path, config, self.state_dict(), self.processor.stats, vlm)

    @property
    def device(self) -> torch.device:
        return self.model.action_out_proj.weight.device

    def set_inference_precision(self, dtype: torch.dtype) -> None:
        """Run chunks in ``dtype`` (weights cast once, autocast at inference); float32 changes nothing,
        so a checkpoint's own mixed float32/bfloat16 layout (and LeRobot parity) is kept."""
        set_precision(self.model, dtype)
        self.inference_dtype = dtype

    # --- training ---------------------------------------------------------------------------------

    def loss(
        self, batch: Mapping[str, object], noise: Tensor | None = None, time: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Mean flow-matching loss of a raw batch (LeRobot keys incl. ``action`` [B, chunk, A]).

        Steps marked by ``action_is_pad`` (past the episode end) are left out. ``config.loss``:
        "lerobot06" averages over the real action dims and in-episode steps (LeRobot 0.6);
        "lerobot04" zeroes the padded steps and averages over all ``max_action_dim`` dims.
        """
        inputs = self.processor.preprocess(batch, self.device)
        if inputs.actions is None:
            raise KeyError("training batch has no 'action'")
        losses = self.forward_inputs(inputs, noise, time)
        if self.config.loss == "lerobot06":
            losses = losses[..., : self.config.action_dim]
        if inputs.action_is_pad is not None:
            valid = ~inputs.action_is_pad.bool()
            losses = losses * valid[..., None]
        if self.config.loss == "lerobot06" and inputs.action_is_pad is not None:
            loss = losses.sum() / (valid.sum() * losses.shape[-1]).clamp_min(1)
        else:
            loss = losses.mean()
        return loss, {"loss": float(loss.detach())}

    def forward(
        self, batch: Mapping[str, object], noise: Tensor | None = None, time: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Same as ``loss``: the training forward, so DDP/accelerate wrappers see it."""
        return self.loss(batch, noise, time)

    def forward_inputs(self, inputs: ModelInputs, noise: Tensor | None = None, time: Tensor | None = None) -> Tensor:
        return self.model(
            inputs.images,
            inputs.img_masks,
            inputs.lang_tokens,
            inputs.lang_masks,
            inputs.state,
            inputs.actions,
            noise,
            time,
        )

    # --- inference --------------------------------------------------------------------------------

    @torch.no_grad()
    def predict_action_chunk(self, batch: Mapping[str, object], noise: Tensor | None = None) -> Tensor:
        """Raw batch -> unnormalised action chunk [B, chunk_size, action_dim]."""
        self.eval()
        inputs = self.processor.preprocess(batch, self.device)
        with inference_precision(self.device, self.inference_dtype):
            actions = self.model.sample_actions(
                inputs.images, inputs.img_masks, inputs.lang_tokens, inputs.lang_masks, inputs.state, noise
            )
        return self.processor.postprocess(actions.float()).cpu()

    def reset(self) -> None:
        """Drop queued actions; call when an episode starts (also applies a changed n_action_steps)."""
        self.queue = ActionQueue(self.config.n_action_steps)

    @torch.no_grad()
    def select_action(
        self, obs: Mapping[str, object], task: str | list[str], noise: Tensor | None = None
    ) -> np.ndarray:
        """Next joint target(s) for an env observation: [A] for one env, [N, A] for a batch of envs."""
        batch = self.processor.observation_to_batch(obs, task)
        single = np.asarray(obs["agent_pos"]).ndim == 1
        action = self.queue.pop(lambda: self.predict_action_chunk(batch, noise))
        out = action.numpy().astype(np.float32)
        return out[0] if single else out
