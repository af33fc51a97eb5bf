"""ACT hyperparameters, read from and written to a checkpoint's ``config.json`` (``type: so101lab_act``).

Our ACT is not LeRobot's (a small CNN, no ResNet-18), so its checkpoints carry their own type:
LeRobot cannot load them, and a LeRobot ACT checkpoint is refused here by name, not by a key
mismatch. Checkpoints written before the rename say ``act`` and load if their keys are ours.

The features use the same LeRobot description as SmolVLA's config (``input_features`` with the
camera images at the resolution the robot records), so launchers size envs and cameras the
same way for either policy. ``image_size`` is what the network sees after resizing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from so101lab.policies.smolvla_config import Feature, PolicyFeatures

POLICY_TYPE = "so101lab_act"
LEGACY_POLICY_TYPE = "act"
# Keys only LeRobot's ACT config has: they tell its checkpoints from our old "act" ones.
LEROBOT_ACT_KEYS = frozenset({"vision_backbone", "pretrained_backbone_weights", "replace_final_stride_with_dilation"})


@dataclass
class ACTConfig(PolicyFeatures):
    """Action Chunking Transformer (Zhao et al. 2023) sized for CPU training."""

    policy_type: ClassVar[str] = POLICY_TYPE
    input_features: dict[str, Feature] = field(default_factory=dict)
    output_features: dict[str, Feature] = field(default_factory=dict)
    image_size: tuple[int, int] = (96, 128)
    """(height, width) the camera images are resized to before the CNN."""
    chunk_size: int = 30
    n_action_steps: int = 10
    """Actions of each chunk executed before the next prediction (without temporal ensembling)."""
    temporal_ensemble_coeff: float | None = None
    """If set, predict every step and average overlapping chunks with weights exp(-coeff * age)."""
    dim_model: int = 128
    n_heads: int = 4
    dim_feedforward: int = 512
    n_encoder_layers: int = 4
    n_decoder_layers: int = 1
    cnn_channels: tuple[int, ...] = (16, 32, 64)
    """Channels of the stride-2 conv stages before the last one (which outputs dim_model)."""
    dropout: float = 0.1
    use_vae: bool = True
    latent_dim: int = 32
    n_vae_encoder_layers: int = 2
    kl_weight: float = 10.0
    augment_shift: int = 4
    """Random image shift (pixels, at image_size) during training."""
    augment_color: float = 0.0
    """Colour jitter amplitude during training (so101lab.policies.augment.color_jitter); 0: off."""
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    )
    optimizer_lr: float = 3e-4
    optimizer_weight_decay: float = 1e-4
    optimizer_grad_clip_norm: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(f"n_action_steps ({self.n_action_steps}) must be in 1..chunk_size ({self.chunk_size})")
        if self.dim_model % self.n_heads:
            raise ValueError(f"dim_model ({self.dim_model}) must be divisible by n_heads ({self.n_heads})")
        if any(s % 2 ** (len(self.cnn_channels) + 1) for s in self.image_size):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by {2 ** (len(self.cnn_channels) + 1)} "
                f"(one halving per conv stage)"
            )

    @property
    def tokens_per_camera(self) -> int:
        factor = 2 ** (len(self.cnn_channels) + 1)
        return (self.image_size[0] // factor) * (self.image_size[1] // factor)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ACTConfig:
        if data.get("type") == LEGACY_POLICY_TYPE:
            if LEROBOT_ACT_KEYS & set(data):
                raise ValueError(
                    "this is a LeRobot ACT checkpoint (ResNet-18 backbone); so101lab's ACT is a different, smaller "
                    f"network (type {POLICY_TYPE!r}) and cannot load it: run it with LeRobot, or train ours with "
                    "`so101lab train --policy act`"
                )
            data = {**data, "type": POLICY_TYPE}
        kwargs, unknown = cls._fields_from_dict(data)
        if unknown:
            raise ValueError(f"unknown ACT config keys {sorted(unknown)}")
        return cls(**kwargs)
