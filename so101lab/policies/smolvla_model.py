"""SmolVLA's flow-matching model: prefix (images, language, state) and suffix (noisy actions, time).

Inputs are already preprocessed (see ``smolvla_processor``): images [B,3,H,W] in [-1,1] at the
model resolution, right-padded language tokens with their mask, state padded to
``max_state_dim``, actions padded to ``max_action_dim``. Arguments of ``forward`` and
``sample_actions`` mean what they mean in LeRobot, so parity is checkable at this level.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import SmolVLMConfig

from so101lab.policies.smolvla_backbone import VLMWithExpert
from so101lab.policies.smolvla_config import SmolVLAConfig


def sinusoidal_time_embedding(time: Tensor, dim: int, min_period: float, max_period: float) -> Tensor:
    """[B] flow times -> [B, dim] sin/cos features over log-spaced periods (computed in float64 on CPU)."""
    if dim % 2:
        raise ValueError(f"time embedding dimension must be even, got {dim}")
    if time.ndim != 1:
        raise ValueError(f"time must have shape (batch,), got {tuple(time.shape)}")
    dtype = torch.float32 if time.device.type == "mps" else torch.float64
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=dtype, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = (2 * math.pi / period)[None, :] * time[:, None]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def attention_mask_2d(pad_mask: Tensor, block_starts: Tensor) -> Tensor:
    """Block-causal mask [B, L, L]: token i sees j when j is real and cumsum(starts)[j] <= [i].

    ``block_starts`` is 1 where a new block begins (state token, each action token), so image
    and language tokens see each other, the state sees them, and actions see all before them.
    """
    cum = torch.cumsum(block_starts, dim=1)
    causal = cum[:, None, :] <= cum[:, :, None]
    return causal & (pad_mask[:, None, :] & pad_mask[:, :, None])


class SmolVLAFlowMatching(nn.Module):
    """VLM + action expert + the small projections around them (LeRobot's ``VLAFlowMatching``)."""

    def __init__(self, config: SmolVLAConfig, vlm_config: SmolVLMConfig) -> None:
        super().__init__()
        self.config = config
        self.vlm_with_expert = VLMWithExpert(
            vlm_config,
            num_vlm_layers=config.num_vlm_layers,
            num_expert_layers=config.num_expert_layers,
            self_attn_every_n_layers=config.self_attn_every_n_layers,
            expert_width_multiplier=config.expert_width_multiplier,
            attention_mode=config.attention_mode,
            freeze_vision_encoder=config.freeze_vision_encoder,
            train_expert_only=config.train_expert_only,
            patch_positions=config.patch_positions,
        )
        hidden = vlm_config.text_config.hidden_size
        expert = self.vlm_with_expert.expert_hidden_size
        self.state_proj = nn.Linear(config.max_state_dim, hidden)
        self.action_in_proj = nn.Linear(config.max_action_dim, expert)
        self.action_out_proj = nn.Linear(expert, config.max_action_dim)
        self.action_time_mlp_in = nn.Linear(2 * expert, expert)
        self.action_time_mlp_out = nn.Linear(expert, expert)
        self.state_proj.requires_grad_(config.train_state_proj)

    def sample_noise(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        return torch.randn(shape, dtype=torch.float32, device=device)

    def sample_time(self, batch: int, device: torch.device) -> Tensor:
        """t ~ Beta(1.5, 1) squeezed into [0.001, 1]: more weight near the noise end."""
        beta = torch.distributions.Beta(torch.tensor(1.5), torch.tensor(1.0))
        return beta.sample((batch,)).to(device=device, dtype=torch.float32) * 0.999 + 0.001

    def embed_prefix(
        self,
        images: list[Tensor],
        img_masks: list[Tensor],
        lang_tokens: Tensor,
        lang_masks: Tensor,
        state: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Image tokens, language tokens (both scaled by sqrt(width)) and one state token.

        Returns embeddings [B, Lp, h], pad mask [B, Lp] and block starts [B, Lp].
        """
        vwe = self.vlm_with_expert
        embs, pads = [], []
        if len({tuple(img.shape) for img in images}) == 1:
            # All cameras through the vision tower in one batch (same math, fewer, larger GEMMs).
            image_embs = vwe.embed_image(torch.cat(images)).chunk(len(images))
        else:
            image_embs = [vwe.embed_image(img) for img in images]
        for emb, img_mask in zip(image_embs, img_masks, strict=True):
            emb = emb * torch.tensor(emb.shape[-1] ** 0.5, dtype=emb.dtype, device=emb.device)
            embs.append(emb)
            pads.append(img_mask[:, None].expand(emb.shape[0], emb.shape[1]))
        lang = vwe.embed_language_tokens(lang_tokens)
        embs.append(lang * math.sqrt(lang.shape[-1]))
        pads.append(lang_masks.bool())
        state_emb = self.state_proj(state)
        state_emb = state_emb[:, None, :] if state_emb.ndim == 2 else state_emb
        embs.append(state_emb)
        pads.append(torch.ones(state_emb.shape[:2], dtype=torch.bool, device=state_emb.device))
        embs_t = torch.cat(embs, dim=1)
        pad = torch.cat(pads, dim=1)
        starts = torch.zeros_like(pad)
        starts[:, -state_emb.shape[1] :] = True
        return embs_t, pad, starts

    def embed_suffix(self, noisy_actions: Tensor, time: Tensor) -> Tensor:
        """Noisy action tokens fused with the flow time by an MLP: [B, chunk, h']."""
        action_emb = self.action_in_proj(noisy_actions)
        time_emb = sinusoidal_time_embedding(
            time, action_emb.shape[-1], self.config.min_period, self.config.max_period
        ).to(action_emb.dtype)
        x = torch.cat([action_emb, time_emb[:, None, :].expand_as(action_emb)], dim=2)
        return self.action_time_mlp_out(F.silu(self.action_time_mlp_in(x)))

    def forward(
        self,
        images: list[Tensor],
        img_masks: list[Tensor],
        lang_tokens: Tensor,
        lang_masks: Tensor,
        state: Tensor,
        actions: Tensor,
        noise: Tensor | None = None,
        time: Tensor | None = None,
    ) -> Tensor:
        """Per-element flow-matching loss [B, chunk, max_action_dim] (unreduced, unmasked)."""
        if noise is None:
            noise = self.sample_noise(actions.shape, actions.device)
        if time is None:
            time = self.sample_time(actions.shape[0], actions.device)
        t = time[:, None, None]
        x_t = t * noise + (1 - t) * actions
        u_t = noise - actions
        prefix, prefix_pad, prefix_starts = self.embed_prefix(images, img_masks, lang_tokens, lang_masks, state)
        suffix = self.embed_suffix(x_t, time)
        suffix_pad = torch.ones(suffix.shape[:2], dtype=torch.bool, device=suffix.device)
        pad = torch.cat([prefix_pad, suffix_pad], dim=1)
        starts = torch.cat([prefix_starts, suffix_pad], dim=1)
        mask = attention_mask_2d(pad, starts)
        positions = torch.cumsum(pad, dim=1) - 1
        out = self.vlm_with_expert(prefix, suffix, mask, positions)
        v_t = self.action_out_proj(out[:, -self.config.chunk_size :].float())
        return F.mse_loss(u_t, v_t, reduction="none")

    @torch.no_grad()
    def sample_actions(
        self,
        images: list[Tensor],
        img_masks: list[Tensor],
        lang_tokens: Tensor,
        lang_masks: Tensor,
        state: Tensor,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Integrate the learned velocity from noise (t=1) to actions (t=0): [B, chunk, max_action_dim]."""
        batch = state.shape[0]
        shape = (batch, self.config.chunk_size, self.config.max_action_dim)
        if noise is None:
            noise = self.sample_noise(shape, state.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
        prefix, prefix_pad, prefix_starts = self.embed_prefix(images, img_masks, lang_tokens, lang_masks, state)
        prefix_mask = attention_mask_2d(prefix_pad, prefix_starts)
        prefix_positions = torch.cumsum(prefix_pad, dim=1) - 1
        cache = self.vlm_with_expert.encode_prefix(prefix, prefix_pad, prefix_mask, prefix_positions)
        chunk = self.config.chunk_size
        suffix_pad = torch.ones(batch, chunk, dtype=torch.bool, device=state.device)
        suffix_mask = attention_mask_2d(suffix_pad, suffix_pad)
        positions = prefix_pad.sum(dim=1, keepdim=True) + torch.arange(chunk, device=state.device)[None]
        steps = self.config.num_steps
        dt = -1.0 / steps
        x_t = noise
        for step in range(steps):
            time = torch.full((batch,), 1.0 + step * dt, dtype=torch.float32, device=state.device)
            out = self.vlm_with_expert.denoise(self.embed_suffix(x_t, time), cache, suffix_mask, positions)
            x_t = x_t + dt * self.action_out_proj(out[:, -chunk:].float())
        return x_t
