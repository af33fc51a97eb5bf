"""SmolVLM backbone + action expert: two transformer stacks that attend to each other layer by layer.

Module names match LeRobot's ``SmolVLMWithExpertModel`` (``vlm``, ``lm_expert``) so checkpoint
keys load strictly. The layers are transformers' own (SmolVLM, Llama decoder layers); the
joint attention is ours because transformers runs one stack at a time.

Layer ``i`` is a self-attention layer when ``i % self_attn_every_n_layers == 0`` (prefix and
suffix tokens in one attention, each stream with its own QKV) and otherwise a cross-attention
layer (the VLM attends to the prefix only; the expert's queries attend to the VLM layer's
RoPE'd keys and values mapped through the expert's own ``k_proj``/``v_proj``).

Inference runs the prefix once (``encode_prefix``) into a ``PrefixCache``; each Euler step
runs only the expert (``denoise``). Cross-attention keys/values depend only on the prefix, so
the cache keeps them already projected by the expert instead of re-projecting every step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AutoModel, SmolVLMConfig, SmolVLMForConditionalGeneration

ROPE_MAX_WAVELENGTH = 10_000.0


def expert_intermediate_size(hidden: int, multiplier: int = 4, multiple_of: int = 256) -> int:
    """MLP width of the action expert: ``multiple_of`` * ceil(multiplier * int(2 h / 3) / multiple_of)."""
    width = multiplier * int(2 * hidden / 3)
    return multiple_of * ((width + multiple_of - 1) // multiple_of)


def rope_tables(positions: Tensor, head_dim: int) -> tuple[Tensor, Tensor]:
    """cos/sin tables [B, L, 1, D/2] (float32) for integer positions [B, L]."""
    half = head_dim // 2
    exponents = (2.0 / head_dim) * torch.arange(half, dtype=torch.float32, device=positions.device)
    angles = positions[..., None].float() / (ROPE_MAX_WAVELENGTH**exponents)
    return torch.cos(angles)[..., None, :], torch.sin(angles)[..., None, :]


def patch_position_ids(
    rows: int, cols: int, per_side: int, device: torch.device, convention: str = "transformers4"
) -> Tensor:
    """Position-embedding index of each patch of a full (unpadded) image, row-major [rows*cols].

    Fractional coordinates bucketed into ``per_side`` buckets as SmolVLM's vision embeddings do:
    ``i / n * (1 - 1e-6)`` in transformers 4.x, ``min(i * (1 / n), 1 - 1e-6)`` in 5.x (for a 4x4
    grid [0,0,1,2, 0,0,1,2, 4,4,5,6, 8,8,9,10] against [0..15]).
    """
    boundaries = torch.arange(1 / per_side, 1.0, 1 / per_side, device=device)

    def bucket(n: int) -> Tensor:
        index = torch.arange(n, device=device, dtype=torch.float32)
        if convention == "transformers5":
            coords = torch.clamp(index * (torch.ones((), device=device) / n), max=1 - 1e-6)
        else:
            coords = index / n * (1 - 1e-6)
        return torch.bucketize(coords, boundaries, right=True)

    return (bucket(rows)[:, None] * per_side + bucket(cols)[None, :]).flatten()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate halves of x [B, L, H, D] (non-interleaved RoPE), computed in float32."""
    dtype = x.dtype
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Grouped-query attention, scores in float32. q [B,Lq,H,D], k/v [B,Lk,Hkv,D], mask bool [B,Lq,Lk].

    Fully masked rows (padding queries) get a uniform distribution, as LeRobot's eager code
    does, instead of NaN. With float32 values this is one fused SDPA call; with bfloat16
    values the probabilities are rounded to bfloat16 before the value product, as LeRobot does.
    """
    with torch.autocast(q.device.type, enabled=False):  # scores and softmax stay float32 under autocast
        return _attention_fp32_scores(q, k, v, mask)


def _attention_fp32_scores(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    batch, lq, heads, dim = q.shape
    groups = heads // k.shape[2]
    qh = q.float().transpose(1, 2)
    kh = k.float().transpose(1, 2).repeat_interleave(groups, dim=1)
    vh = v.transpose(1, 2).repeat_interleave(groups, dim=1)
    if v.dtype == torch.float32:
        bias = torch.zeros(mask.shape, dtype=torch.float32, device=q.device)
        bias.masked_fill_(~mask, torch.finfo(torch.float32).min)
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=bias[:, None])
    else:
        scores = torch.matmul(qh, kh.transpose(2, 3)) * dim**-0.5
        scores = torch.where(mask[:, None], scores, torch.finfo(torch.float32).min)
        out = torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), vh)
    return out.transpose(1, 2).reshape(batch, lq, heads * dim)


def _qkv(layer: nn.Module, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    attn = layer.self_attn
    shape = (*hidden.shape[:-1], -1, attn.head_dim)
    hidden = hidden.to(attn.q_proj.weight.dtype)
    return attn.q_proj(hidden).view(shape), attn.k_proj(hidden).view(shape), attn.v_proj(hidden).view(shape)


def _finish(layer: nn.Module, residual: Tensor, att: Tensor) -> Tensor:
    """o_proj + residual, then the MLP block with its residual.

    In-place adds keep the projection's dtype (bf16 layers stay bf16 with an fp32 residual),
    matching LeRobot's mixed-precision numerics.
    """
    out = layer.self_attn.o_proj(att.to(layer.self_attn.o_proj.weight.dtype))
    out += residual
    mlp = layer.mlp(layer.post_attention_layernorm(out))
    mlp += out
    return mlp


def _expert_kv_from_vlm(layer: nn.Module, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-attention: map the VLM's (RoPE'd) keys/values [B,L,Hkv,D] through the expert's k/v proj."""
    attn = layer.self_attn
    flat_k = key.reshape(*key.shape[:2], -1).to(attn.k_proj.weight.dtype)
    flat_v = value.reshape(*value.shape[:2], -1).to(attn.v_proj.weight.dtype)
    shape = (*key.shape[:2], -1, attn.head_dim)
    return attn.k_proj(flat_k).view(shape), attn.v_proj(flat_v).view(shape)


@dataclass
class PrefixCache:
    """Per layer: the prefix keys/values (self-attn layers) or the expert-projected ones (cross)."""

    keys: list[Tensor]
    values: list[Tensor]
    pad_mask: Tensor  # [B, Lp] bool


class VLMWithExpert(nn.Module):
    """The SmolVLM (text layers cut to ``num_vlm_layers``) and the action expert."""

    def __init__(
        self,
        vlm_config: SmolVLMConfig,
        num_vlm_layers: int,
        num_expert_layers: int,
        self_attn_every_n_layers: int,
        expert_width_multiplier: float,
        attention_mode: str = "cross_attn",
        freeze_vision_encoder: bool = True,
        train_expert_only: bool = True,
        patch_positions: str = "transformers4",
    ) -> None:
        super().__init__()
        self.patch_positions = patch_positions
        self.vlm = SmolVLMForConditionalGeneration(vlm_config)
        text = self.vlm.model.text_model
        if num_vlm_layers > 0:
            if num_vlm_layers > len(text.layers):
                raise ValueError(
                    f"num_vlm_layers={num_vlm_layers} but the VLM text model has {len(text.layers)} layers"
                )
            text.layers = text.layers[:num_vlm_layers]
        self.num_vlm_layers = len(text.layers)
        text_config = vlm_config.text_config
        expert_config = copy.deepcopy(text_config)
        expert_config.hidden_size = int(text_config.hidden_size * expert_width_multiplier)
        expert_config.intermediate_size = expert_intermediate_size(expert_config.hidden_size)
        expert_config.num_hidden_layers = self.num_vlm_layers
        if num_expert_layers > 0:
            if self.num_vlm_layers % num_expert_layers:
                raise ValueError(
                    f"num_vlm_layers ({self.num_vlm_layers}) must be a multiple of num_expert_layers "
                    f"({num_expert_layers})"
                )
            expert_config.num_hidden_layers = num_expert_layers
        self.lm_expert = AutoModel.from_config(expert_config)
        self.cross = "cross" in attention_mode
        self.every = self_attn_every_n_layers
        kv_width = text_config.num_key_value_heads * text_config.head_dim
        if self.cross:
            for i, layer in enumerate(self.lm_expert.layers):
                if self._is_self_attn(i):
                    continue
                out = expert_config.num_key_value_heads * expert_config.head_dim
                layer.self_attn.k_proj = nn.Linear(kv_width, out, bias=expert_config.attention_bias)
                layer.self_attn.v_proj = nn.Linear(kv_width, out, bias=expert_config.attention_bias)
        self.lm_expert.embed_tokens = None
        self.expert_hidden_size = expert_config.hidden_size
        self.head_dim = text_config.head_dim
        self.num_expert_layers = len(self.lm_expert.layers)
        self.freeze_vision_encoder = freeze_vision_encoder
        self.train_expert_only = train_expert_only
        self._set_requires_grad()

    # --- layout -------------------------------------------------------------------------------------

    def _is_self_attn(self, layer_idx: int) -> bool:
        return not self.cross or (self.every > 0 and layer_idx % self.every == 0)

    def expert_layer(self, layer_idx: int) -> nn.Module | None:
        """The expert layer paired with VLM layer ``layer_idx`` (None when the expert is shallower)."""
        multiple = self.num_vlm_layers // self.num_expert_layers
        if multiple > 0 and layer_idx > 0 and layer_idx % multiple != 0:
            return None
        return self.lm_expert.layers[layer_idx // multiple if multiple > 0 else layer_idx]

    def _set_requires_grad(self) -> None:
        vlm = self.vlm.model
        if self.freeze_vision_encoder:
            vlm.vision_model.requires_grad_(False)
        if self.train_expert_only:
            self.vlm.requires_grad_(False)
        else:
            # Parameters that never receive a gradient (the last layers' prefix outputs are unused).
            last = [self.num_vlm_layers - 1]
            if self.num_vlm_layers != self.num_expert_layers and self.num_vlm_layers % self.num_expert_layers == 0:
                last.append(self.num_vlm_layers - 2)
            self.vlm.lm_head.requires_grad_(False)
            for i in last:
                vlm.text_model.layers[i].requires_grad_(False)

    def train(self, mode: bool = True) -> VLMWithExpert:
        super().train(mode)
        if self.freeze_vision_encoder:
            self.vlm.model.vision_model.eval()
        if self.train_expert_only:
            self.vlm.eval()
        return self

    # --- embeddings ---------------------------------------------------------------------------------

    def embed_image(self, image: Tensor) -> Tensor:
        """[B, 3, H, W] in [-1, 1] -> image tokens [B, N, text hidden].

        Runs the SigLIP modules of transformers' vision model, but with the patch position ids of
        the model's convention (``patch_positions``), whichever transformers is installed: 4.x ids
        for smolvla_base and LeRobot 0.4.x checkpoints, 5.x ids for LeRobot 0.5/0.6 ones.
        """
        vision = self.vlm.model.vision_model
        emb = vision.embeddings
        patches = emb.patch_embedding(image.to(emb.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        rows, cols = image.shape[2] // emb.patch_size, image.shape[3] // emb.patch_size
        ids = patch_position_ids(rows, cols, emb.num_patches_per_side, image.device, self.patch_positions)
        hidden = patches + emb.position_embedding(ids)[None]
        hidden = vision.encoder(inputs_embeds=hidden, attention_mask=None).last_hidden_state
        return self.vlm.model.connector(vision.post_layernorm(hidden))

    def embed_language_tokens(self, tokens: Tensor) -> Tensor:
        return self.vlm.model.text_model.embed_tokens(tokens)

    # --- training: prefix and suffix together -------------------------------------------------------

    def forward(self, prefix: Tensor, suffix: Tensor, mask: Tensor, positions: Tensor) -> Tensor:
        """Run both stacks; return the expert's normed output for the suffix [B, Ls, h'].

        ``mask`` [B, L, L] (True = may attend) and ``positions`` [B, L] cover prefix then suffix.
        """
        text_layers = self.vlm.model.text_model.layers
        lp = prefix.shape[1]
        cos, sin = rope_tables(positions, self.head_dim)
        pcos, psin = cos[:, :lp], sin[:, :lp]
        spos = positions[:, lp:]
        ecos, esin = rope_tables(spos - spos.min(dim=1, keepdim=True).values, self.head_dim)
        for i, vlm_layer in enumerate(text_layers):
            expert = self.expert_layer(i)
            last = i == len(text_layers) - 1
            p_in = vlm_layer.input_layernorm(prefix)
            pq, pk, pv = _qkv(vlm_layer, p_in)
            pk = apply_rope(pk, pcos, psin)
            pq = apply_rope(pq, pcos, psin)
            if self._is_self_attn(i) and expert is not None:
                sq, sk, sv = _qkv(expert, expert.input_layernorm(suffix))
                q = torch.cat([pq, apply_rope(sq, cos[:, lp:], sin[:, lp:])], dim=1)
                k = torch.cat([pk, apply_rope(sk, cos[:, lp:], sin[:, lp:])], dim=1)
                v = torch.cat([pv, sv], dim=1)
                att = attention(q, k, v, mask)
                p_att, s_att = att[:, :lp], att[:, lp:]
            else:
                p_att = attention(pq, pk, pv, mask[:, :lp, :lp])
                s_att = None
                if expert is not None:
                    sq = _qkv_query(expert, expert.input_layernorm(suffix))
                    ek, ev = _expert_kv_from_vlm(expert, pk, pv)
                    s_att = attention(apply_rope(sq, ecos, esin), ek, ev, mask[:, lp:, :lp])
            if not last:  # the prefix output of the last layer is never used
                prefix = _finish(vlm_layer, prefix, p_att)
            if expert is not None:
                suffix = _finish(expert, suffix, s_att)
        return self.lm_expert.norm(suffix)

    # --- inference: prefix once, then the expert per Euler step ---------------------------------------

    def encode_prefix(self, prefix: Tensor, pad_mask: Tensor, mask: Tensor, positions: Tensor) -> PrefixCache:
        """Run the VLM over the prefix once; keep what every denoising step needs.

        ``pad_mask`` [B, Lp] marks real tokens, ``mask`` [B, Lp, Lp] is the prefix attention.
        """
        text_layers = self.vlm.model.text_model.layers
        cos, sin = rope_tables(positions, self.head_dim)
        keys, values = [], []
        for i, vlm_layer in enumerate(text_layers):
            q, k, v = _qkv(vlm_layer, vlm_layer.input_layernorm(prefix))
            k = apply_rope(k, cos, sin)
            expert = self.expert_layer(i)
            if self._is_self_attn(i) or expert is None:
                keys.append(k)
                values.append(v)
            else:
                ek, ev = _expert_kv_from_vlm(expert, k, v)
                keys.append(ek)
                values.append(ev)
            if i < len(text_layers) - 1:
                prefix = _finish(vlm_layer, prefix, attention(apply_rope(q, cos, sin), k, v, mask))
        return PrefixCache(keys, values, pad_mask)

    def denoise(self, suffix: Tensor, cache: PrefixCache, suffix_mask: Tensor, positions: Tensor) -> Tensor:
        """Expert pass for the suffix against a prefix cache; returns the normed suffix output.

        ``suffix_mask`` [B, Ls, Ls] is the suffix's own attention; ``positions`` [B, Ls] are the
        suffix token positions.
        """
        ls = suffix.shape[1]
        cos, sin = rope_tables(positions, self.head_dim)
        ecos, esin = rope_tables(positions - positions.min(dim=1, keepdim=True).values, self.head_dim)
        prefix_mask = cache.pad_mask[:, None, :].expand(-1, ls, -1)
        full_mask = torch.cat([prefix_mask, suffix_mask], dim=2)
        for i in range(self.num_vlm_layers):
            expert = self.expert_layer(i)
            if expert is None:
                continue
            hidden = expert.input_layernorm(suffix)
            if self._is_self_attn(i):
                q, k, v = _qkv(expert, hidden)
                k = torch.cat([cache.keys[i], apply_rope(k, cos, sin)], dim=1)
                v = torch.cat([cache.values[i], v], dim=1)
                att = attention(apply_rope(q, cos, sin), k, v, full_mask)
            else:
                q = _qkv_query(expert, hidden)
                att = attention(apply_rope(q, ecos, esin), cache.keys[i], cache.values[i], prefix_mask)
            suffix = _finish(expert, suffix, att)
        return self.lm_expert.norm(suffix)


def _qkv_query(layer: nn.Module, hidden: Tensor) -> Tensor:
    attn = layer.self_attn
    return attn.q_proj(hidden.to(attn.q_proj.weight.dtype)).view(*hidden.shape[:-1], -1, attn.head_dim)
