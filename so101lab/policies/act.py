"""ACT: a CVAE transformer that predicts chunks of future joint targets from cameras and state.

The shape of Zhao et al. (2023), sized to train on a CPU: each camera image is resized (to
``image_size``) and encoded by a small strided CNN into a grid of tokens; a transformer
encoder reads [latent, state, camera tokens]; a decoder turns ``chunk_size`` learned queries
into actions. In training a small encoder over the demonstrated chunk gives the latent (a
CVAE, L1 + KL loss); at inference the latent is zero. Checkpoints use the layout of our
SmolVLA ones: config.json, model.safetensors, normaliser stats in processor files.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from so101lab.contract import FEATURE_ACTION, FEATURE_STATE, OBS_PIXELS, OBS_STATE
from so101lab.policies.act_config import ACTConfig
from so101lab.policies.augment import color_jitter
from so101lab.policies.checkpoint import load_model_state, load_stats, save_checkpoint_files
from so101lab.policies.chunking import ActionQueue, TemporalEnsembler
from so101lab.policies.device import inference_precision, set_precision

Stats = dict[str, dict[str, Tensor]]


def _encoder(config: ACTConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        config.dim_model, config.n_heads, config.dim_feedforward, config.dropout, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(config.dim_model), enable_nested_tensor=False)


def _conv_stage(c_in: int, c_out: int, refine: bool) -> nn.Sequential:
    """Halve the resolution, then (``refine``) one more conv at that resolution."""
    layers = [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True)]
    if refine:
        layers += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class ACTModel(nn.Module):
    """The network on normalised tensors: images [B, cams, 3, h, w], state [B, S], actions [B, T, A]."""

    def __init__(self, config: ACTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim_model
        # Two extra input channels hold each pixel's (x, y) in -1..1 ("CoordConv"): a conv stack is
        # translation-equivariant, and where the cube is in the image is what the policy must read.
        channels = (5, *config.cnn_channels, d)
        h, w = config.image_size
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        # No refining conv at the first (largest) resolution: it would cost more than the rest together.
        stages = [_conv_stage(a, b, refine=i > 0) for i, (a, b) in enumerate(itertools.pairwise(channels))]
        self.backbone = nn.Sequential(*stages)
        n_tokens = 2 + len(config.cameras) * config.tokens_per_camera
        self.state_in = nn.Linear(config.state_dim, d)
        self.latent_in = nn.Linear(config.latent_dim, d)
        self.encoder_pos = nn.Parameter(torch.randn(1, n_tokens, d) * 0.02)
        self.encoder = _encoder(config, config.n_encoder_layers)
        dec_layer = nn.TransformerDecoderLayer(
            d, config.n_heads, config.dim_feedforward, config.dropout, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(dec_layer, config.n_decoder_layers, norm=nn.LayerNorm(d))
        self.queries = nn.Parameter(torch.randn(1, config.chunk_size, d) * 0.02)
        self.action_out = nn.Linear(d, config.action_dim)
        if config.use_vae:
            self.vae_cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
            self.vae_state_in = nn.Linear(config.state_dim, d)
            self.vae_action_in = nn.Linear(config.action_dim, d)
            self.vae_pos = nn.Parameter(torch.randn(1, 2 + config.chunk_size, d) * 0.02)
            self.vae_encoder = _encoder(config, config.n_vae_encoder_layers)
            self.vae_out = nn.Linear(d, 2 * config.latent_dim)

    def encode_latent(self, state: Tensor, actions: Tensor, is_pad: Tensor | None) -> tuple[Tensor, Tensor]:
        """(mu, log variance) of the latent style variable of a demonstrated chunk."""
        b = state.shape[0]
        tokens = torch.cat(
            [self.vae_cls.expand(b, -1, -1), self.vae_state_in(state)[:, None], self.vae_action_in(actions)], dim=1
        )
        mask = None
        if is_pad is not None:
            mask = torch.cat([torch.zeros(b, 2, dtype=torch.bool, device=state.device), is_pad.bool()], dim=1)
        out = self.vae_encoder(tokens + self.vae_pos, src_key_padding_mask=mask)[:, 0]
        mu, log_var = self.vae_out(out).chunk(2, dim=-1)
        return mu, log_var

    def forward(
        self, images: Tensor, state: Tensor, actions: Tensor | None = None, is_pad: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Predicted normalised chunk [B, T, A], and the latent's (mu, log_var) when training the CVAE."""
        b = images.shape[0]
        mu = log_var = None
        if self.config.use_vae and actions is not None:
            mu, log_var = self.encode_latent(state, actions, is_pad)
            latent = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
        else:
            latent = state.new_zeros(b, self.config.latent_dim)
        flat = images.flatten(0, 1)
        flat = torch.cat([flat, self.coords.expand(flat.shape[0], -1, -1, -1)], dim=1)
        features = self.backbone(flat)  # [B*cams, d, h', w']
        features = features.flatten(2).transpose(1, 2).reshape(b, -1, self.config.dim_model)
        tokens = torch.cat([self.latent_in(latent)[:, None], self.state_in(state)[:, None], features], dim=1)
        memory = self.encoder(tokens + self.encoder_pos)
        decoded = self.decoder(self.queries.expand(b, -1, -1), memory)
        return self.action_out(decoded), mu, log_var


class ACTPolicy(nn.Module):
    """ACT with its normalisation, image preprocessing, checkpoint IO and action execution."""

    def __init__(self, config: ACTConfig, stats: Stats) -> None:
        super().__init__()
        self.config = config
        self.model = ACTModel(config)
        self.stats = {k: {s: torch.as_tensor(v, dtype=torch.float32) for s, v in d.items()} for k, d in stats.items()}
        for key in (FEATURE_STATE, FEATURE_ACTION, *config.image_features):
            if key not in self.stats or not {"mean", "std"} <= set(self.stats[key]):
                raise KeyError(f"ACT needs mean and std stats for {key!r}; stats have {sorted(self.stats)}")
        # Non-persistent buffers: they follow .to(device) but live in the processor files, not the weights.
        self.register_buffer("state_mean", self.stats[FEATURE_STATE]["mean"].reshape(-1), persistent=False)
        self.register_buffer("state_std", self.stats[FEATURE_STATE]["std"].reshape(-1), persistent=False)
        self.register_buffer("action_mean", self.stats[FEATURE_ACTION]["mean"].reshape(-1), persistent=False)
        self.register_buffer("action_std", self.stats[FEATURE_ACTION]["std"].reshape(-1), persistent=False)
        image_mean = torch.stack([self.stats[k]["mean"].reshape(3) for k in config.image_features])
        image_std = torch.stack([self.stats[k]["std"].reshape(3) for k in config.image_features])
        self.register_buffer("image_mean", image_mean[None, :, :, None, None], persistent=False)
        self.register_buffer("image_std", image_std[None, :, :, None, None], persistent=False)
        self.inference_dtype = torch.float32
        self.reset()

    # --- checkpoints ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> ACTPolicy:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint directory {path} does not exist")
        policy = cls(ACTConfig.load(path), load_stats(path))
        policy.load_state_dict(load_model_state(path, set(policy.state_dict())), strict=True)
        return policy.to(device)

    def save_pretrained(self, path: str | Path) -> Path:
        return save_checkpoint_files(path, self.config, self.state_dict(), self.stats)

    @property
    def device(self) -> torch.device:
        return self.model.action_out.weight.device

    def set_inference_precision(self, dtype: torch.dtype) -> None:
        """Run chunks in ``dtype`` (weights cast once, autocast at inference); float32 changes nothing."""
        set_precision(self.model, dtype)
        self.inference_dtype = dtype

    # --- preprocessing ----------------------------------------------------------------------------

    def resize_frames(self, frames: Tensor) -> Tensor:
        """Camera frames, uint8 [N, H, W, 3] or float [N, 3, H, W] in 0..1 -> uint8 [N, 3, h, w].

        The one image pipeline of training (applied once when a dataset is cached) and control
        (every step), so both see the same quantised pixels.
        """
        if frames.dtype == torch.uint8:
            frames = frames.permute(0, 3, 1, 2).float() / 255.0
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected frames [N, H, W, 3] uint8 or [N, 3, H, W] float, got {tuple(frames.shape)}")
        if tuple(frames.shape[-2:]) != self.config.image_size:
            frames = F.interpolate(frames, size=self.config.image_size, mode="bilinear", antialias=True)
        return (frames * 255.0).round().clamp(0, 255).to(torch.uint8)

    def normalize_inputs(self, images: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 images [B, cams, 3, h, w] and raw state [B, S] -> the model's normalised inputs."""
        images = (images.float() / 255.0 - self.image_mean) / self.image_std
        return images, (state.float() - self.state_mean) / self.state_std

    def _shift(self, images: Tensor) -> Tensor:
        """Random translation by up to ``augment_shift`` pixels (edge-padded), per sample and camera."""
        s = self.config.augment_shift
        if s == 0:
            return images
        b, c, ch, h, w = images.shape
        flat = F.pad(images.flatten(0, 1), (s, s, s, s), mode="replicate")
        dx, dy = torch.randint(0, 2 * s + 1, (2, b * c)).tolist()
        return torch.stack([flat[i, :, y : y + h, x : x + w] for i, (x, y) in enumerate(zip(dx, dy))]).view(
            b, c, ch, h, w
        )

    # --- training ---------------------------------------------------------------------------------

    def forward(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Loss of a batch: ``images`` uint8 [B, cams, 3, h, w], ``observation.state`` [B, S],
        ``action`` [B, T, A] and ``action_is_pad`` [B, T] (steps past the episode end)."""
        images = batch["images"].to(self.device)
        if self.training:
            images = self._shift(images)
            if self.config.augment_color:
                images = color_jitter(images.float() / 255.0, self.config.augment_color) * 255.0
        images, state = self.normalize_inputs(images, batch[FEATURE_STATE].to(self.device))
        target = (batch[FEATURE_ACTION].to(self.device).float() - self.action_mean) / self.action_std
        is_pad = batch["action_is_pad"].to(self.device).bool()
        pred, mu, log_var = self.model(images, state, target, is_pad)
        valid = (~is_pad)[..., None].float()
        l1 = ((pred - target).abs() * valid).sum() / (valid.sum() * self.config.action_dim).clamp(min=1)
        loss, info = l1, {"l1": float(l1.detach())}
        if mu is not None:
            kl = (-0.5 * (1 + log_var - mu.pow(2) - log_var.exp())).sum(-1).mean()
            loss = l1 + self.config.kl_weight * kl
            info["kl"] = float(kl.detach())
        return loss, info

    # --- control ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget planned actions; call when an episode starts."""
        c = self.config
        self.queue = ActionQueue(c.n_action_steps)
        self.ensembler = TemporalEnsembler(c.temporal_ensemble_coeff) if c.temporal_ensemble_coeff else None

    def observation_images(self, obs: Mapping[str, object]) -> Tensor:
        """uint8 [B, cams, 3, h, w] from an env observation (single or batched)."""
        pixels = obs.get(OBS_PIXELS, {})
        per_camera = []
        for cam in self.config.cameras:
            if cam not in pixels:
                raise KeyError(f"observation has no camera {cam!r} (policy cameras {self.config.cameras})")
            frames = torch.as_tensor(np.asarray(pixels[cam]))
            frames = frames[None] if frames.ndim == 3 else frames
            if frames.ndim != 4 or frames.shape[-1] != 3:
                raise ValueError(f"camera {cam!r}: expected HxWx3 images, got shape {tuple(frames.shape)}")
            per_camera.append(self.resize_frames(frames))
        return torch.stack(per_camera, dim=1)

    @torch.no_grad()
    def predict_action_chunk(self, obs: Mapping[str, object]) -> Tensor:
        """Env observation -> action chunk [B, chunk_size, A] in contract units."""
        self.eval()
        if OBS_STATE not in obs:
            raise KeyError(f"observation has no {OBS_STATE!r}; keys: {sorted(obs)}")
        state = torch.as_tensor(np.asarray(obs[OBS_STATE]), dtype=torch.float32)
        state = state[None] if state.ndim == 1 else state
        images, state = self.normalize_inputs(self.observation_images(obs).to(self.device), state.to(self.device))
        with inference_precision(self.device, self.inference_dtype):
            pred, _, _ = self.model(images, state)
        return (pred.float() * self.action_std + self.action_mean).cpu()

    @torch.no_grad()
    def select_action(self, obs: Mapping[str, object], task: str | list[str] | None = None) -> np.ndarray:
        """Next joint target(s): [A] for one env, [N, A] for a batch. ACT ignores the instruction."""
        single = np.asarray(obs[OBS_STATE]).ndim == 1
        if self.ensembler is not None:
            action = self.ensembler.update(self.predict_action_chunk(obs))
        else:
            action = self.queue.pop(lambda: self.predict_action_chunk(obs))
        out = action.numpy().astype(np.float32)
        return out[0] if single else out

