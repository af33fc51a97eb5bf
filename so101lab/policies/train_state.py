"""Training state beside a policy checkpoint: optimizer, LR schedule, RNG and step, for exact resume.

Layout under a checkpoint directory (as LeRobot's): ``pretrained_model/`` (the policy) and
``training_state/`` with ``optimizer_state.safetensors`` + ``optimizer_param_groups.json``,
``scheduler_state.json``, ``rng_state.safetensors`` and ``training_step.json``. With a weight
average on, ``pretrained_model/`` holds the averaged weights (what evaluation and deployment
use) and ``training_state/raw_model.safetensors`` the raw ones the optimizer continues from.
"""

from __future__ import annotations

import ast
import json
import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

PRETRAINED = "pretrained_model"
TRAINING_STATE = "training_state"
RAW_MODEL = "raw_model.safetensors"


class WeightAverage:
    """Exponential moving average of a model's weights: steadier than the last step's weights.

    The decay ramps up as ``(1 + step) / (10 + step)`` towards ``decay``, so early checkpoints are
    not dominated by the initial weights. Non-float entries (counters) are copied.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"weight average decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model: torch.nn.Module, step: int) -> None:
        """Fold in the weights after optimizer step ``step`` (0-based)."""
        keep = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, value in model.state_dict().items():
                if value.is_floating_point():
                    self.weights[name].lerp_(value, 1.0 - keep)
                else:
                    self.weights[name].copy_(value)

    @contextmanager
    def swapped_into(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """Within the block ``model`` holds the averaged weights (e.g. to save them)."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.weights)
        try:
            yield model
        finally:
            model.load_state_dict(raw)


def save_raw_weights(directory: Path, model: torch.nn.Module) -> None:
    out = directory / TRAINING_STATE
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / RAW_MODEL))


def load_raw_weights(directory: Path, model: torch.nn.Module) -> None:
    """Put the raw (not averaged) weights of a checkpoint back into ``model`` to resume training."""
    path = directory / TRAINING_STATE / RAW_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: was checkpoint {directory} trained with a weight average?")
    model.load_state_dict(load_file(str(path)))


def cosine_with_warmup(
    optimizer: Optimizer,
    peak_lr: float,
    decay_lr: float,
    warmup_steps: int,
    decay_steps: int,
    total_steps: int,
) -> LambdaLR:
    """LeRobot's cosine-decay-with-warmup schedule, squeezed into ``total_steps`` when shorter.

    Linear warmup from lr/(warmup+1) to lr, then cosine from lr to ``decay_lr`` at
    ``decay_steps`` (counted from step 0), constant after. Refuses a warmup as long as the run:
    the learning rate would never reach its peak.
    """
    if total_steps < decay_steps:
        warmup_steps = int(warmup_steps * total_steps / decay_steps)
        decay_steps = total_steps
    if warmup_steps >= total_steps:
        raise ValueError(
            f"warmup of {warmup_steps} steps in a run of {total_steps}: the learning rate would never reach its "
            "peak; lower --warmup-steps"
        )

    def factor(step: int) -> float:
        if step < warmup_steps:
            if step <= 0:
                return 1 / (warmup_steps + 1)
            frac = 1 - step / warmup_steps
            return (1 / (warmup_steps + 1) - 1) * frac + 1
        alpha = decay_lr / peak_lr
        cosine = 0.5 * (1 + math.cos(math.pi * min(step, decay_steps) / decay_steps))
        return (1 - alpha) * cosine + alpha

    return LambdaLR(optimizer, factor)


def _flatten_optimizer(optimizer: Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_training_state(
    directory: Path, step: int, optimizer: Optimizer, scheduler: LambdaLR, extra: dict | None = None
) -> None:
    out = directory / TRAINING_STATE
    out.mkdir(parents=True, exist_ok=True)
    tensors, meta = _flatten_optimizer(optimizer)
    save_file(tensors, str(out / "optimizer_state.safetensors"))
    (out / "optimizer_param_groups.json").write_text(json.dumps(meta))
    (out / "scheduler_state.json").write_text(json.dumps(scheduler.state_dict()))
    np_state = np.random.get_state()
    rng = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64))}
    save_file(rng, str(out / "rng_state.safetensors"))
    meta_rng = {
        "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": repr(random.getstate()),
    }
    (out / "training_step.json").write_text(json.dumps({"step": step, "rng": meta_rng, **(extra or {})}))


def saved_training_step(directory: Path) -> dict:
    """A checkpoint's training_step.json: its ``step`` and the ``args`` it was trained with (if saved)."""
    return json.loads((directory / TRAINING_STATE / "training_step.json").read_text())


def load_training_state(directory: Path, optimizer: Optimizer, scheduler: LambdaLR) -> dict:
    """Restore optimizer, scheduler and RNG state in place; returns training_step.json (has ``step``)."""
    src = directory / TRAINING_STATE
    if not src.is_dir():
        raise FileNotFoundError(f"no {TRAINING_STATE}/ in checkpoint {directory}")
    tensors = load_file(str(src / "optimizer_state.safetensors"))
    meta = json.loads((src / "optimizer_param_groups.json").read_text())
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, entries in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(json.loads((src / "scheduler_state.json").read_text()))
    info = saved_training_step(directory)
    rng = load_file(str(src / "rng_state.safetensors"))
    torch.set_rng_state(rng["torch"])
    name, pos, has_gauss, cached = info["rng"]["numpy"]
    np.random.set_state((name, rng["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(ast.literal_eval(info["rng"]["python"]))
    return info
