"""Replay a recorded episode's actions on the arm at 30 Hz; report how far states stray from the recording."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from so101lab.contract import FEATURE_ACTION, FEATURE_STATE, OBS_STATE
from so101lab.datasets import DatasetMeta
from so101lab.real.calibration import default_calibration
from so101lab.real.env import SO101RealEnv
from so101lab.real.ports import open_port, resolve_calibration


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
    seed: int = 0
    """Scene seed of a virtual arm (use the recorded episode's to start where it started)."""


def episode_columns(root: Path, episode: int) -> dict[str, np.ndarray]:
    """The episode's actions and recorded states, (frames, 6) float32 each."""
    meta = DatasetMeta(root)
    if not 0 <= episode < meta.total_episodes:
        raise SystemExit(f"{root} has episodes 0..{meta.total_episodes - 1}, not {episode}")
    ep = meta.episodes[episode]
    table = pq.read_table(meta.data_path(ep), columns=["episode_index", FEATURE_ACTION, FEATURE_STATE])
    rows = np.asarray(table["episode_index"]) == episode
    return {key: np.stack(table[key].to_numpy(zero_copy_only=False)[rows]).astype(np.float32)
            for key in (FEATURE_ACTION, FEATURE_STATE)}


def run(args: Args) -> dict:
    columns = episode_columns(args.root, args.episode)
    actions, recorded = columns[FEATURE_ACTION], columns[FEATURE_STATE]
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(open_port(args.port, args.seed))
        env = SO101RealEnv(port.path, resolve_calibration(args.calibration, port),
                           max_relative_target=args.max_relative_target)
        stack.callback(env.close)
        obs, _ = env.reset(seed=args.seed)
        states = [obs[OBS_STATE]]
        for action in actions[:-1]:
            obs, *_ = env.step(action)
            states.append(obs[OBS_STATE])
        # Frame i of the recording holds the state before action i: compare like with like.
        err = np.abs(np.array(states) - recorded)
    return {"frames": len(actions), "mean_abs_state_error": float(err.mean()),
            "p95_abs_state_error": float(np.percentile(err, 95)), "overruns": env.overruns}


def main(args: Args) -> None:
    print(run(args))
