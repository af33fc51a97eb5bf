"""Replay the actions of a recorded episode on the arm at the dataset's rate; report tracking error."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from so101lab.contract import FEATURE_ACTION, OBS_STATE
from so101lab.datasets import DatasetMeta
from so101lab.real.env import SO101RealEnv
from so101lab.real.session import default_calibration, open_port, resolve_calibration


@dataclass
class Args:
    port: str
    """Serial port of the follower, or virtual:<Task>."""
    root: Path
    """Dataset directory."""
    episode: int = 0
    """Episode to replay."""
    calibration: Path = field(default_factory=lambda: default_calibration("follower"))
    """Follower calibration file."""
    max_relative_target: float | None = None
    """Cap on each joint's goal change per step (units)."""


def episode_actions(root: Path, episode: int) -> np.ndarray:
    meta = DatasetMeta(root)
    if not 0 <= episode < meta.total_episodes:
        raise SystemExit(f"{root} has episodes 0..{meta.total_episodes - 1}, not {episode}")
    ep = meta.episodes[episode]
    table = pq.read_table(meta.data_path(ep), columns=["episode_index", FEATURE_ACTION])
    rows = np.asarray(table["episode_index"]) == episode
    return np.stack(table[FEATURE_ACTION].to_numpy(zero_copy_only=False)[rows]).astype(np.float32)


def run(args: Args) -> dict:
    actions = episode_actions(args.root, args.episode)
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(open_port(args.port))
        env = SO101RealEnv(port.path, resolve_calibration(args.calibration, port),
                           max_relative_target=args.max_relative_target)
        stack.callback(env.close)
        obs, _ = env.reset()
        errors = []
        for i, action in enumerate(actions):
            obs, *_ = env.step(action)
            if i + 1 < len(actions):
                errors.append(np.abs(obs[OBS_STATE] - action))
        err = np.array(errors)
    return {"frames": len(actions), "mean_abs_error": float(err.mean()), "p95_abs_error": float(
        np.percentile(err, 95)), "overruns": env.overruns}


def main(args: Args) -> None:
    print(run(args))
