"""Real-time chunking (Black et al., 2025) for flow-matching SmolVLA: inpaint a chunk's start.

While chunk k runs, chunk k+1 is computed from a newer observation. Its first ``delay`` actions
will run before it lands, so they must match what chunk k still plans there; the rest of the
overlap should blend in. At each Euler step the predicted clean chunk x0 = x_t - t v(x_t) is
pulled toward the queued actions Y by a vector-Jacobian product:

    v <- v - w(t) * (dx0/dx_t)^T [W * (Y - x0)]

with W 1 over the first ``delay`` steps, decaying exponentially (the paper's schedule) to 0 at
the end of the queued actions, and w(t) = min(max_weight, (1 - tau) / (tau r^2)), tau = 1 - t,
r^2 = (1 - tau)^2 / (tau^2 + (1 - tau)^2). This follows the paper (LeRobot's implementation
drops the Jacobian; ours keeps it). The prefix cache is computed once, without gradients.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from so101lab.contract import FEATURE_ACTION
from so101lab.inference.predictor import Guidance
from so101lab.policies.device import inference_precision
from so101lab.policies.smolvla_model import attention_mask_2d
from so101lab.policies.smolvla_policy import SmolVLAPolicy
from so101lab.policies.smolvla_processor import pad_last_dim

MAX_GUIDANCE_WEIGHT = 10.0  # LeRobot's RTCConfig default


def prefix_weights(delay: int, overlap: int, chunk: int) -> Tensor:
    """[chunk] weights: 1 for i < delay, exponential decay over delay..overlap, 0 from ``overlap`` on."""
    delay = min(delay, overlap)
    weights = torch.zeros(chunk)
    weights[:delay] = 1.0
    n = overlap - delay
    if n > 0:
        c = torch.linspace(1, 0, n + 2)[1:-1]
        weights[delay:overlap] = c * torch.expm1(c) / (math.e - 1)
    return weights


def guidance_weight(t: float, max_weight: float = MAX_GUIDANCE_WEIGHT) -> float:
    """w(t) of the paper; infinite at the first step (tau = 0), so clipped there."""
    tau = 1.0 - t
    if tau <= 0.0:
        return max_weight
    if tau >= 1.0:
        return 0.0
    inv_r2 = ((1 - tau) ** 2 + tau**2) / (1 - tau) ** 2
    return min(max_weight, (1 - tau) / tau * inv_r2)


def predict_guided_chunk(policy: SmolVLAPolicy, batch: dict, guidance: Guidance, noise: Tensor | None = None,
                         max_weight: float = MAX_GUIDANCE_WEIGHT) -> Tensor:
    """Unnormalised chunk [B, chunk, action_dim] whose start is inpainted toward ``guidance.actions``."""
    policy.eval()
    model, config = policy.model, policy.config
    device = policy.device
    inputs = policy.processor.preprocess(batch, device)
    b, chunk = inputs.state.shape[0], config.chunk_size
    planned = torch.as_tensor(np.asarray(guidance.actions), dtype=torch.float32, device=device)
    if planned.ndim != 3 or planned.shape[0] != b:
        raise ValueError(f"guidance actions must be [batch={b}, steps, dim], got {tuple(planned.shape)}")
    overlap = min(planned.shape[1], chunk)
    target = torch.zeros(b, chunk, config.max_action_dim, device=device)
    target[:, :overlap] = pad_last_dim(policy.processor.normalize(FEATURE_ACTION, planned[:, :overlap]),
                                       config.max_action_dim)
    mask = torch.zeros(config.max_action_dim, device=device)
    mask[: planned.shape[2]] = 1.0  # padded action dims are free
    weights = prefix_weights(guidance.delay, overlap, chunk).to(device)[None, :, None] * mask
    with torch.no_grad(), inference_precision(device, policy.inference_dtype):
        prefix, prefix_pad, prefix_starts = model.embed_prefix(
            inputs.images, inputs.img_masks, inputs.lang_tokens, inputs.lang_masks, inputs.state)
        cache = model.vlm_with_expert.encode_prefix(
            prefix, prefix_pad, attention_mask_2d(prefix_pad, prefix_starts), torch.cumsum(prefix_pad, dim=1) - 1)
    suffix_pad = torch.ones(b, chunk, dtype=torch.bool, device=device)
    suffix_mask = attention_mask_2d(suffix_pad, suffix_pad)
    positions = prefix_pad.sum(dim=1, keepdim=True) + torch.arange(chunk, device=device)[None]
    x_t = model.sample_noise((b, chunk, config.max_action_dim), device) if noise is None else noise.to(device)
    dt = -1.0 / config.num_steps
    for step in range(config.num_steps):
        t = 1.0 + step * dt
        time = torch.full((b,), t, dtype=torch.float32, device=device)
        x = x_t.detach().requires_grad_(True)
        with torch.enable_grad(), inference_precision(device, policy.inference_dtype):
            out = model.vlm_with_expert.denoise(model.embed_suffix(x, time), cache, suffix_mask, positions)
            v = model.action_out_proj(out[:, -chunk:].float()).float()
            x0 = x - t * v
            error = ((target - x0) * weights).detach()
            correction = torch.autograd.grad(x0, x, error)[0]
        x_t = x_t + dt * (v.detach() - guidance_weight(t, max_weight) * correction)
    return policy.processor.postprocess(x_t.detach().float()).cpu()
