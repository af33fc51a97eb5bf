"""LeRobot policy checkpoint directories: config.json, model.safetensors and processor files.

Layout (LeRobot 0.4.x): ``policy_preprocessor.json`` lists the input steps (rename, batch,
newline, tokenizer, device, normalizer) and ``policy_postprocessor.json`` the output steps
(unnormalizer, device); stateful steps keep their statistics in
``<pipeline>_step_<i>_<registry name>.safetensors`` with keys ``<feature>.<stat>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from so101lab.policies.smolvla_config import PolicyFeatures, SmolVLAConfig
from so101lab.policies.smolvla_processor import Stats

MODEL_FILE = "model.safetensors"
PREPROCESSOR = "policy_preprocessor"
POSTPROCESSOR = "policy_postprocessor"
# Buffers of pre-0.4 checkpoints, which kept normalisation inside the model.
LEGACY_NORM_PREFIXES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")


def resolve_vlm_dir(name: str, checkpoint_dir: Path | None, override: str | Path | None = None) -> Path:
    """The local SmolVLM config/tokenizer directory for ``vlm_model_name`` (never a hub download).

    Tried in order: ``override``; ``name`` as a path (absolute, or relative to the checkpoint
    directory, then to the working directory).
    """
    candidates = [Path(override)] if override is not None else []
    path = Path(name)
    if path.is_absolute():
        candidates.append(path)
    else:
        if checkpoint_dir is not None:
            candidates.append(checkpoint_dir / path)
        candidates.append(Path.cwd() / path)
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate.resolve()
    raise FileNotFoundError(
        f"SmolVLM directory for vlm_model_name={name!r} not found (tried {[str(c) for c in candidates]}). "
        "so101lab never downloads it: pass the local directory holding the VLM's config.json and "
        "tokenizer files (e.g. a local copy of HuggingFaceTB/SmolVLM2-500M-Video-Instruct)."
    )


def load_vlm_weights(vlm: torch.nn.Module, vlm_dir: Path) -> None:
    """The pretrained SmolVLM's weights from ``vlm_dir`` into ``vlm`` (text layers past the cut are dropped).

    Every weight of ``vlm`` must be found: a partly random VLM would pass silently for a pretrained one.
    """
    files = sorted(vlm_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"load_vlm_weights is set but {vlm_dir} has no *.safetensors weights: put the VLM's weights there "
            "(e.g. a local copy of HuggingFaceTB/SmolVLM2-500M-Video-Instruct) or set load_vlm_weights=False"
        )
    state: dict[str, Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    expected = vlm.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise KeyError(f"{vlm_dir}: the VLM weights lack {len(missing)} keys of the model, e.g. {missing[:5]}")
    vlm.load_state_dict({k: state[k].to(v.dtype) for k, v in expected.items()}, strict=True)


def _flatten_stats(stats: Stats) -> dict[str, Tensor]:
    return {
        f"{key}.{stat}": torch.as_tensor(v).float().contiguous() for key, d in stats.items() for stat, v in d.items()
    }


def _unflatten_stats(flat: dict[str, Tensor]) -> Stats:
    stats: Stats = {}
    for name, value in flat.items():
        key, _, stat = name.rpartition(".")
        stats.setdefault(key, {})[stat] = value
    return stats


def load_stats(directory: Path) -> Stats:
    """Normalisation stats from the preprocessor's normalizer step (or legacy model buffers)."""
    spec_path = directory / f"{PREPROCESSOR}.json"
    if spec_path.is_file():
        spec = json.loads(spec_path.read_text())
        for step in spec.get("steps", []):
            if step.get("registry_name") == "normalizer_processor" and step.get("state_file"):
                return _unflatten_stats(load_file(str(directory / step["state_file"])))
    model = directory / MODEL_FILE
    legacy = {k: v for k, v in load_file(str(model)).items() if k.startswith(LEGACY_NORM_PREFIXES)}
    stats: Stats = {}
    for name, value in legacy.items():
        # normalize_inputs.buffer_observation_state.mean -> observation.state / mean
        _, buffer, stat = name.split(".", 2)
        key = buffer.removeprefix("buffer_").replace("_", ".")
        stats.setdefault(key, {})[stat] = value
    if not stats:
        raise FileNotFoundError(f"no normalisation stats in {directory} (no {PREPROCESSOR}.json normalizer step)")
    return stats


def load_model_state(directory: Path, expected: set[str]) -> dict[str, Tensor]:
    """model.safetensors with strict key matching against ``expected`` (legacy norm buffers dropped)."""
    path = directory / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in checkpoint directory {directory}")
    state = {k: v for k, v in load_file(str(path)).items() if not k.startswith(LEGACY_NORM_PREFIXES)}
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise KeyError(
            f"{path} does not match the model built from its config.json: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}"
        )
    return state


def _features_json(features: dict) -> dict:
    return {k: v.to_dict() for k, v in features.items()}


def save_processors(
    directory: Path, config: PolicyFeatures, stats: Stats, input_steps: list[dict] = (), device: str = "cpu"
) -> None:
    """Write the pre/post-processor JSON and stats files in LeRobot's layout.

    The preprocessor is rename, batch, ``input_steps`` (policy-specific, e.g. a tokenizer),
    device, normalizer; the postprocessor is unnormalizer, device. Features and normalisation
    modes are the config's.
    """
    output_features, norm_map = config.output_features, config.normalization_mapping
    steps = [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "to_batch_processor", "config": {}},
        *input_steps,
        {"registry_name": "device_processor", "config": {"device": device, "float_dtype": None}},
    ]
    pre_state = f"{PREPROCESSOR}_step_{len(steps)}_normalizer_processor.safetensors"
    post_state = f"{POSTPROCESSOR}_step_0_unnormalizer_processor.safetensors"
    all_features = _features_json(config.input_features | output_features)
    pre = {
        "name": PREPROCESSOR,
        "steps": [
            *steps,
            {
                "registry_name": "normalizer_processor",
                "config": {"eps": 1e-8, "features": all_features, "norm_map": dict(norm_map)},
                "state_file": pre_state,
            },
        ],
    }
    post = {
        "name": POSTPROCESSOR,
        "steps": [
            {
                "registry_name": "unnormalizer_processor",
                "config": {"eps": 1e-8, "features": _features_json(output_features), "norm_map": dict(norm_map)},
                "state_file": post_state,
            },
            {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
        ],
    }
    flat = _flatten_stats(stats)
    (directory / f"{PREPROCESSOR}.json").write_text(json.dumps(pre, indent=2))
    (directory / f"{POSTPROCESSOR}.json").write_text(json.dumps(post, indent=2))
    save_file(flat, str(directory / pre_state))
    save_file(flat, str(directory / post_state))


def save_checkpoint_files(
    directory: str | Path,
    config: PolicyFeatures,
    state: dict[str, Tensor],
    stats: Stats,
    input_steps: list[dict] = (),
    device: str = "cpu",
) -> Path:
    """Write a policy checkpoint directory (config.json, model.safetensors, processors); returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config.save(directory)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(directory / MODEL_FILE))
    save_processors(directory, config, stats, input_steps, device)
    return directory


def save_checkpoint(
    directory: str | Path, config: SmolVLAConfig, state: dict[str, Tensor], stats: Stats, tokenizer_name: str
) -> Path:
    """Write a LeRobot-loadable SmolVLA checkpoint directory; returns it."""
    steps = [
        {"registry_name": "smolvla_new_line_processor", "config": {}},
        {
            "registry_name": "tokenizer_processor",
            "config": {
                "max_length": config.tokenizer_max_length,
                "task_key": "task",
                "padding_side": "right",
                "padding": config.pad_language_to,
                "truncation": True,
                "tokenizer_name": tokenizer_name,
            },
        },
    ]
    return save_checkpoint_files(directory, config, state, stats, steps, config.extra.get("device") or "cpu")
