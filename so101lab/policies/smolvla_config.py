"""SmolVLA hyperparameters, read from and written to LeRobot's ``config.json``.

Field names and defaults are LeRobot 0.4.4's, so a checkpoint's config round-trips: what we
write, LeRobot parses, and keys we do not use (``use_amp``, ``rtc_config`` ...) are kept.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from so101lab.contract import FEATURE_ACTION, FEATURE_IMAGE_PREFIX, FEATURE_STATE

CONFIG_NAME = "config.json"
POLICY_TYPE = "smolvla"
# so101lab's own choices that LeRobot's strict config parser would reject as config.json keys.
OPTIONS_NAME = "so101lab.json"
PATCH_POSITIONS = ("transformers4", "transformers5")
LOSSES = ("lerobot06", "lerobot04")
# config.json keys LeRobot >= 0.6 writes and 0.4.4 rejects: never written back, so every version
# loads what we save; their presence says the checkpoint was written under transformers 5.
LEROBOT06_KEYS = ("pretrained_revision",)


@dataclass
class Feature:
    """A policy input/output feature as LeRobot describes it (type STATE/VISUAL/ACTION, shape)."""

    type: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "shape": list(self.shape)}


FEATURE_FIELDS = ("input_features", "output_features")


class PolicyFeatures:
    """What every policy config derives from its LeRobot features, and its config.json IO.

    Subclasses are dataclasses naming their ``policy_type`` (config.json's ``type``).
    """

    policy_type: ClassVar[str]
    input_features: dict[str, Feature]
    output_features: dict[str, Feature]

    def to_dict(self) -> dict[str, Any]:
        """config.json content: the type, then every field (features as LeRobot writes them)."""
        out: dict[str, Any] = {"type": self.policy_type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in FEATURE_FIELDS:
                value = {k: v.to_dict() for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def _fields_from_dict(cls, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Constructor arguments for the fields found in a config.json dict, and the other keys."""
        data = dict(data)
        kind = data.pop("type", cls.policy_type)
        if kind != cls.policy_type:
            raise ValueError(f"config.json is for policy type {kind!r}, not {cls.policy_type!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {k: data.pop(k) for k in list(data) if k in fields}
        for key, value in kwargs.items():
            if key in FEATURE_FIELDS:
                kwargs[key] = {k: Feature(v["type"], tuple(v["shape"])) for k, v in value.items()}
            elif value is not None and str(fields[key].type).startswith("tuple"):
                kwargs[key] = tuple(value)
        return kwargs, data

    @property
    def image_features(self) -> list[str]:
        return [k for k, f in self.input_features.items() if f.type == "VISUAL"]

    @property
    def cameras(self) -> list[str]:
        """Camera names in feature order (``observation.images.<camera>``)."""
        return [k.removeprefix(FEATURE_IMAGE_PREFIX) for k in self.image_features]

    @property
    def action_dim(self) -> int:
        if FEATURE_ACTION not in self.output_features:
            raise ValueError(f"config has no {FEATURE_ACTION!r} output feature")
        return self.output_features[FEATURE_ACTION].shape[0]

    @property
    def state_dim(self) -> int:
        if FEATURE_STATE not in self.input_features:
            raise ValueError(f"config has no {FEATURE_STATE!r} input feature")
        return self.input_features[FEATURE_STATE].shape[0]

    def save(self, directory: str | Path) -> None:
        Path(directory, CONFIG_NAME).write_text(json.dumps(self.to_dict(), indent=4))

    @classmethod
    def load(cls, directory: str | Path):
        path = Path(directory, CONFIG_NAME)
        if not path.is_file():
            raise FileNotFoundError(f"no {CONFIG_NAME} in checkpoint directory {directory}")
        return cls.from_dict(json.loads(path.read_text()))


@dataclass
class SmolVLAConfig(PolicyFeatures):
    """Model hyperparameters (LeRobot's SmolVLAConfig fields)."""

    policy_type: ClassVar[str] = POLICY_TYPE
    input_features: dict[str, Feature] = field(default_factory=dict)
    output_features: dict[str, Feature] = field(default_factory=dict)
    n_obs_steps: int = 1
    chunk_size: int = 50
    n_action_steps: int = 50
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
    )
    max_state_dim: int = 32
    max_action_dim: int = 32
    resize_imgs_with_padding: tuple[int, int] = (512, 512)
    empty_cameras: int = 0
    tokenizer_max_length: int = 48
    num_steps: int = 10
    use_cache: bool = True
    """Sampling keeps the prefix's keys/values across denoising steps; False (recompute them every step,
    the same actions, slower) is refused."""
    freeze_vision_encoder: bool = True
    train_expert_only: bool = True
    train_state_proj: bool = True
    optimizer_lr: float = 1e-4
    optimizer_betas: tuple[float, float] = (0.9, 0.95)
    optimizer_eps: float = 1e-8
    optimizer_weight_decay: float = 1e-10
    optimizer_grad_clip_norm: float = 10.0
    scheduler_warmup_steps: int = 1_000
    scheduler_decay_steps: int = 30_000
    scheduler_decay_lr: float = 2.5e-6
    vlm_model_name: str = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    load_vlm_weights: bool = False
    """A fresh policy starts its VLM from the weights in the local VLM directory instead of random ones.
    A checkpoint holds its own VLM weights, so loading one ignores this (as LeRobot ends up doing)."""
    add_image_special_tokens: bool = False
    attention_mode: str = "cross_attn"
    prefix_length: int = -1
    pad_language_to: str = "longest"
    num_expert_layers: int = -1
    num_vlm_layers: int = 16
    self_attn_every_n_layers: int = 2
    expert_width_multiplier: float = 0.75
    min_period: float = 4e-3
    max_period: float = 4.0
    # LeRobot keys we carry but do not interpret (device, use_amp, rtc_config, ...).
    extra: dict[str, Any] = field(default_factory=dict)
    # so101lab options, kept in so101lab.json beside config.json (see ``load`` for the defaults).
    patch_positions: str = "transformers4"
    """SigLIP patch position ids as transformers 4 (smolvla_base, LeRobot 0.4.x) or 5 (LeRobot 0.5/0.6)
    computes them; a model behaves as trained only under its own convention."""
    loss: str = "lerobot06"
    """'lerobot06': mean over the real action dims and in-episode steps (LeRobot 0.6); 'lerobot04': mean
    over all max_action_dim padded dims and steps, past-the-end steps zeroed (LeRobot 0.4)."""

    def __post_init__(self) -> None:
        if self.n_action_steps > self.chunk_size:
            raise ValueError(f"n_action_steps ({self.n_action_steps}) must not exceed chunk_size ({self.chunk_size})")
        if self.attention_mode != "cross_attn" and "cross" in self.attention_mode:
            raise ValueError(f"unknown attention_mode {self.attention_mode!r}")
        if not self.use_cache:
            raise NotImplementedError(
                "use_cache=False is not supported: sampling always reuses the prefix's keys/values (the same "
                "actions as recomputing them every denoising step, faster)"
            )
        if self.add_image_special_tokens:
            raise NotImplementedError("add_image_special_tokens=True is not supported (LeRobot default False)")
        if self.prefix_length > 0:
            raise NotImplementedError("prefix_length > 0 (fixed-length prefix padding) is not supported")
        if self.pad_language_to not in ("longest", "max_length"):
            raise ValueError(f"pad_language_to must be 'longest' or 'max_length', got {self.pad_language_to!r}")
        if self.patch_positions not in PATCH_POSITIONS:
            raise ValueError(f"patch_positions must be one of {PATCH_POSITIONS}, got {self.patch_positions!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")

    def options(self) -> dict[str, str]:
        """What so101lab.json holds."""
        return {"patch_positions": self.patch_positions, "loss": self.loss}

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in self.options():
            out.pop(key)
        extra = {k: v for k, v in out.pop("extra").items() if k not in LEROBOT06_KEYS}
        defaults = {"n_obs_steps": 1, "device": "cpu", "use_amp": False, "use_peft": False, "push_to_hub": False}
        for key, value in {**defaults, **extra}.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SmolVLAConfig:
        """Keys we do not interpret are kept in ``extra`` and written back (but LEROBOT06_KEYS)."""
        kwargs, rest = cls._fields_from_dict({k: v for k, v in data.items() if k != "extra"})
        return cls(**kwargs, extra=rest)

    def save(self, directory: str | Path) -> None:
        super().save(directory)
        Path(directory, OPTIONS_NAME).write_text(json.dumps(self.options(), indent=4))

    @classmethod
    def load(cls, directory: str | Path, patch_positions: str | None = None) -> SmolVLAConfig:
        """The checkpoint's config. Patch positions: ``patch_positions`` if given, else so101lab.json's,
        else transformers 5 where config.json has a key only LeRobot >= 0.6 writes, else transformers 4
        (smolvla_base, LeRobot 0.4.x; LeRobot 0.5.x leaves no mark: pass ``patch_positions``)."""
        path = Path(directory, CONFIG_NAME)
        if not path.is_file():
            raise FileNotFoundError(f"no {CONFIG_NAME} in checkpoint directory {directory}")
        data = json.loads(path.read_text())
        options_file = Path(directory, OPTIONS_NAME)
        options = json.loads(options_file.read_text()) if options_file.is_file() else {}
        if "patch_positions" not in options:
            options["patch_positions"] = "transformers5" if set(LEROBOT06_KEYS) & set(data) else "transformers4"
        if patch_positions is not None:
            options["patch_positions"] = patch_positions
        return dataclasses.replace(cls.from_dict(data), **options)


def so101_features(
    cameras: tuple[str, ...], image_hw: tuple[int, int], state_dim: int = 6, action_dim: int = 6
) -> tuple[dict[str, Feature], dict[str, Feature]]:
    """Input/output features of an SO-101 policy with the given cameras (contract keys)."""
    inputs = {FEATURE_STATE: Feature("STATE", (state_dim,))}
    for cam in cameras:
        inputs[f"{FEATURE_IMAGE_PREFIX}{cam}"] = Feature("VISUAL", (3, *image_hw))
    return inputs, {FEATURE_ACTION: Feature("ACTION", (action_dim,))}


def preset_config(
    preset: str,
    vlm_dir: str | Path,
    cameras: tuple[str, ...],
    image_hw: tuple[int, int],
    state_dim: int = 6,
    action_dim: int = 6,
    **overrides: Any,
) -> SmolVLAConfig:
    """A fresh SmolVLA config for a size preset (``full``, ``small``, ``tiny``; see vlm_presets).

    The images are resized to the preset's vision resolution (512 px for ``full``).
    """
    from so101lab.policies.vlm_presets import PRESETS

    if preset not in PRESETS:
        raise ValueError(f"unknown SmolVLA preset {preset!r}; choose one of {sorted(PRESETS)}")
    size = PRESETS[preset]["vision"]["image_size"]
    inputs, outputs = so101_features(cameras, image_hw, state_dim, action_dim)
    kwargs: dict[str, Any] = dict(
        input_features=inputs,
        output_features=outputs,
        vlm_model_name=str(vlm_dir),
        num_vlm_layers=PRESETS[preset]["num_vlm_layers"],
        resize_imgs_with_padding=(size, size),
    )
    kwargs.update(overrides)
    return SmolVLAConfig(**kwargs)
