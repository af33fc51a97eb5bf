"""Regenerate tests/fixtures/smolvla_tiny (LeRobot 0.4.4) or smolvla_tiny_061 (LeRobot 0.6.1): tiny
SmolVLA checkpoints made and saved by that LeRobot.

Run with a reference LeRobot python (never a project dependency):

    /root/.cache/lerobot-ref/bin/python scripts/make_fixtures_smolvla.py        # -> smolvla_tiny/
    /root/.cache/lerobot-ref-061/bin/python scripts/make_fixtures_smolvla.py    # -> smolvla_tiny_061/

(with ONEDNN_MAX_CPU_ISA=AVX512_CORE, as tests/conftest.py sets, for the bfloat16 numbers).
Writes, under the fixture directory:
- vlm/         the tiny SmolVLM config + byte-level tokenizer (so101lab.policies.vlm_presets)
- checkpoint/  LeRobot's save_pretrained output (config.json, model.safetensors, processors)
- reference.safetensors + reference.json  raw inputs, fixed noise/time and LeRobot's outputs
  (tokens, action chunk at model and policy level, training losses) for the parity tests.
- the same three with a ``_bf16`` suffix for a VLM config declaring bfloat16, as the
  published SmolVLM2 does (LeRobot then runs the VLM and expert layers in bfloat16).

Also ``--check-load DIR``: load a checkpoint directory saved by so101lab in LeRobot (strict)
and print a JSON report (used to check that what we save loads back in LeRobot).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
CAMERAS = ("front", "wrist")
IMAGE_HW = (48, 64)  # not square: exercises resize-with-pad
TASK = "pick up the red cube"
CHUNK = 10
BATCH = 2


def _load_presets():
    # By path: importing so101lab would pull in MuJoCo, which this venv need not have.
    spec = importlib.util.spec_from_file_location("vlm_presets", ROOT / "so101lab/policies/vlm_presets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _features():
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(6,))}
    for cam in CAMERAS:
        inputs[f"observation.images.{cam}"] = PolicyFeature(type=FeatureType.VISUAL, shape=(3, *IMAGE_HW))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(6,))}
    return inputs, outputs


def _stats(gen: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
    stats = {}
    for key in ("observation.state", "action"):
        stats[key] = {
            "mean": torch.randn(6, generator=gen) * 10,
            "std": torch.rand(6, generator=gen) * 5 + 1,
            "min": torch.full((6,), -100.0),
            "max": torch.full((6,), 100.0),
        }
    for cam in CAMERAS:
        stats[f"observation.images.{cam}"] = {
            "mean": torch.full((3, 1, 1), 0.5),
            "std": torch.full((3, 1, 1), 0.25),
            "min": torch.zeros(3, 1, 1),
            "max": torch.ones(3, 1, 1),
        }
    return stats


def make(out: Path, dtype: str) -> None:
    """One variant: ``float32`` -> vlm/, checkpoint/, reference.*; ``bfloat16`` -> *_bf16."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    presets = _load_presets()
    suffix = "" if dtype == "float32" else "_bf16"
    vlm_name = f"vlm{suffix}"
    vlm_dir = presets.write_vlm_dir(out / vlm_name, "tiny", dtype)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    inputs, outputs = _features()
    config = SmolVLAConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        vlm_model_name=str(vlm_dir),
        chunk_size=CHUNK,
        n_action_steps=CHUNK,
        num_vlm_layers=presets.PRESETS["tiny"]["num_vlm_layers"],
        resize_imgs_with_padding=(64, 64),
        push_to_hub=False,
    )
    policy = SmolVLAPolicy(config)
    # Random init leaves the projections near default; perturb every weight so parity is not trivial.
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    stats = _stats(gen)
    pre, post = make_smolvla_pre_post_processors(config, dataset_stats=stats)
    ckpt = out / f"checkpoint{suffix}"
    policy.save_pretrained(ckpt)
    pre.save_pretrained(ckpt)
    post.save_pretrained(ckpt)
    # Name the VLM directory relative to the checkpoint, not by this machine's absolute path
    # (so101lab resolves it against the checkpoint dir; LeRobot against the working dir).
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["vlm_model_name"] = f"../{vlm_name}"
    (ckpt / "config.json").write_text(json.dumps(cfg, indent=4))
    pre_json = json.loads((ckpt / "policy_preprocessor.json").read_text())
    for step in pre_json["steps"]:
        if step["registry_name"] == "tokenizer_processor":
            step["config"]["tokenizer_name"] = f"../{vlm_name}"
    (ckpt / "policy_preprocessor.json").write_text(json.dumps(pre_json, indent=2))

    ref = {}
    images = {cam: torch.rand(BATCH, 3, *IMAGE_HW, generator=gen) for cam in CAMERAS}
    state = torch.randn(BATCH, 6, generator=gen) * 20
    actions = torch.randn(BATCH, CHUNK, 6, generator=gen) * 20
    noise = torch.randn(BATCH, CHUNK, config.max_action_dim, generator=gen)
    time = torch.tensor([0.3, 0.8])
    tasks = [TASK, "put the blue cube in the bowl"]
    raw = {"observation.state": state, "action": actions, "task": tasks}
    for cam in CAMERAS:
        raw[f"observation.images.{cam}"] = images[cam]
        ref[f"input.images.{cam}"] = images[cam]
    ref["input.state"] = state
    ref["input.actions"] = actions
    ref["noise"] = noise
    ref["time"] = time

    policy.eval()
    batch = pre(raw)
    ref["lang_tokens"] = batch["observation.language.tokens"]
    ref["lang_masks"] = batch["observation.language.attention_mask"]
    ref["norm.state"] = batch["observation.state"]
    ref["norm.actions"] = batch["action"]
    with torch.no_grad():
        img_list, img_masks = policy.prepare_images(batch)
        st = policy.prepare_state(batch)
        for i, img in enumerate(img_list):
            ref[f"model.image.{i}"] = img
        ref["model.state"] = st
        sampled = policy.model.sample_actions(
            img_list,
            img_masks,
            batch["observation.language.tokens"],
            batch["observation.language.attention_mask"],
            st,
            noise=noise.clone(),
        )
        ref["model.sample_actions"] = sampled
        losses = policy.model.forward(
            img_list,
            img_masks,
            batch["observation.language.tokens"],
            batch["observation.language.attention_mask"],
            st,
            policy.prepare_action(batch),
            noise=noise.clone(),
            time=time.clone(),
        )
        ref["model.losses"] = losses
        loss, _ = policy.forward(dict(batch), noise=noise.clone(), time=time.clone())
        ref["policy.loss"] = loss.reshape(1)
        policy.reset()
        chunk = policy.predict_action_chunk(dict(batch), noise=noise.clone())
        ref["policy.chunk_normalized"] = chunk
        ref["policy.chunk"] = post(chunk)
    save_file({k: v.contiguous() for k, v in ref.items()}, str(out / f"reference{suffix}.safetensors"))
    meta = {
        "tasks": tasks,
        "cameras": list(CAMERAS),
        "lerobot_version": _lerobot_version(),
        "dtype": dtype,
        # bfloat16 matmuls round differently per kernel family (AVX2, AVX-512, AMX): the tests compare
        # bfloat16 numbers only on a CPU of the same family.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    (out / f"reference{suffix}.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps({"written": str(out), **meta}))


def _lerobot_version() -> str:
    from importlib.metadata import version

    return version("lerobot")


def check_load(path: Path) -> None:
    """Load a so101lab-saved checkpoint with LeRobot (strict) and run its processors once."""
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action
    from safetensors.torch import load_file

    report: dict[str, object] = {"path": str(path)}
    policy = SmolVLAPolicy.from_pretrained(str(path), strict=True)
    report["loaded_strict"] = True
    pre = PolicyProcessorPipeline.from_pretrained(str(path), "policy_preprocessor.json")
    post = PolicyProcessorPipeline.from_pretrained(
        str(path),
        "policy_postprocessor.json",
        to_transition=policy_action_to_transition,
        to_output=transition_to_policy_action,
    )
    inputs = path / "inputs.safetensors"
    if inputs.exists():
        data = load_file(str(inputs))
        tasks = json.loads((path / "inputs.json").read_text())["tasks"]
        raw = {k: v for k, v in data.items() if k != "noise"}
        raw["task"] = tasks
        policy.eval()
        batch = pre(raw)
        with torch.no_grad():
            chunk = post(policy.predict_action_chunk(batch, noise=data["noise"]))
        save_file({"chunk": chunk.contiguous()}, str(path / "lerobot_chunk.safetensors"))
        report["chunk_shape"] = list(chunk.shape)
    print(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: the fixture directory of this LeRobot")
    parser.add_argument("--check-load", type=Path, default=None)
    args = parser.parse_args()
    if args.check_load is not None:
        check_load(args.check_load)
    else:
        default = "smolvla_tiny" if _lerobot_version().startswith("0.4") else "smolvla_tiny_061"
        for dtype in ("float32", "bfloat16"):
            make(args.out or FIXTURES / default, dtype)
    sys.exit(0)


if __name__ == "__main__":
    main()
