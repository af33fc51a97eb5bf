"""A loaded policy as one function: observation arrays + instructions -> an action chunk.

The policy server and the in-process latency-aware evaluation both call ``Predictor.predict``,
so a chunk is computed the same way wherever it runs. It also holds the inference options that
trade accuracy for speed (precision, flow-matching steps, int8 linear layers) and real-time
chunking's guidance for SmolVLA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from so101lab.contract import OBS_PIXELS, OBS_STATE
from so101lab.policies import ACTPolicy, Policy, SmolVLAPolicy, load_policy


@dataclass
class Guidance:
    """Real-time chunking input: the previous chunk's actions still to run when the new one lands.

    ``actions`` [B, P, D] (contract units) are the planned actions for the new chunk's first P
    steps; the first ``delay`` of them will certainly run (they execute while the policy
    computes), the rest are blended in with decaying weight.
    """

    actions: np.ndarray
    delay: int


class DynamicInt8Linear(nn.Module):
    """An ``nn.Linear`` with int8 weights (per-output-channel scales), activations quantised per call.

    ``weight`` is an empty float32 placeholder: the SmolVLA code reads ``layer.weight.dtype`` to
    cast its inputs, and the int8 kernel takes float32.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        float_linear = nn.Linear(linear.in_features, linear.out_features, linear.bias is not None)
        float_linear.load_state_dict({k: v.float() for k, v in linear.state_dict().items()})
        spec = {nn.Linear: per_channel_dynamic_qconfig}
        self.inner = quantize_dynamic(nn.Sequential(float_linear), spec, dtype=torch.qint8)[0]
        self.register_buffer("weight", torch.empty(0, device=linear.weight.device), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float())


def quantize_int8(policy: Policy) -> int:
    """Dynamic int8 quantisation of SmolVLA's VLM + expert linear layers (CPU only); returns how many.

    The small projections around them stay float32. Changes the outputs: scripts/bench_policy.py
    measures by how much.
    """
    if not isinstance(policy, SmolVLAPolicy):
        raise ValueError("int8 quantisation is implemented for SmolVLA")
    if policy.device.type != "cpu":
        raise ValueError("int8 dynamic quantisation runs on the CPU only")
    count = 0
    for module in list(policy.model.vlm_with_expert.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                setattr(module, name, DynamicInt8Linear(child))
                count += 1
    return count


class Predictor:
    """Chunks from a policy for batched env observations, in contract units (float32 numpy)."""

    def __init__(self, policy: Policy, *, num_steps: int | None = None, int8: bool = False) -> None:
        self.policy = policy
        if num_steps is not None:
            if not isinstance(policy, SmolVLAPolicy):
                raise ValueError("num_steps (flow-matching steps) applies to SmolVLA only")
            if num_steps < 1:
                raise ValueError(f"num_steps must be >= 1, got {num_steps}")
            policy.config.num_steps = num_steps
        if int8:
            quantize_int8(policy)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", dtype: str = "float32",
             vlm_dir: str | Path | None = None, num_steps: int | None = None, int8: bool = False) -> Predictor:
        return cls(load_policy(path, device=device, vlm_dir=vlm_dir, dtype=dtype), num_steps=num_steps, int8=int8)

    @property
    def info(self) -> dict[str, Any]:
        """What a client needs to drive this policy: sizes, cameras and their image shapes."""
        config = self.policy.config
        shapes = {cam: list(config.input_features[key].shape[1:])
                  for cam, key in zip(config.cameras, config.image_features, strict=True)}
        return {
            "policy_type": config.policy_type,
            "chunk_size": config.chunk_size,
            "n_action_steps": config.n_action_steps,
            "action_dim": int(config.output_features["action"].shape[0]),
            "cameras": list(config.cameras),
            "image_shapes": shapes,
            "device": str(self.policy.device),
            "dtype": str(self.policy.inference_dtype).removeprefix("torch."),
            "rtc": isinstance(self.policy, SmolVLAPolicy),
        }

    def reset(self) -> None:
        self.policy.reset()

    def predict(self, obs: dict[str, Any], tasks: list[str], guidance: Guidance | None = None,
                noise: torch.Tensor | None = None) -> np.ndarray:
        """Batched observation (``agent_pos`` [B, S], ``pixels`` {cam: [B, H, W, 3]}) -> chunk [B, T, D]."""
        state = np.asarray(obs[OBS_STATE])
        if state.ndim != 2:
            raise ValueError(f"predict takes batched observations: agent_pos [B, S], got shape {state.shape}")
        if len(tasks) != state.shape[0]:
            raise ValueError(f"{len(tasks)} instructions for {state.shape[0]} observations")
        if isinstance(self.policy, ACTPolicy):
            if guidance is not None:
                raise ValueError("real-time chunking guidance needs a flow-matching policy (SmolVLA), not ACT")
            chunk = self.policy.predict_action_chunk({OBS_STATE: state, OBS_PIXELS: obs.get(OBS_PIXELS, {})})
        else:
            batch = self.policy.processor.observation_to_batch(obs, list(tasks))
            if guidance is None:
                chunk = self.policy.predict_action_chunk(batch, noise)
            else:
                from so101lab.inference.rtc import predict_guided_chunk

                chunk = predict_guided_chunk(self.policy, batch, guidance, noise)
        return chunk.numpy().astype(np.float32)
