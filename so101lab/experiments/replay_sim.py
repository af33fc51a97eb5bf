"""Play a dataset episode's actions back in sim and report the tracking error per joint.

    so101lab replay-sim --root data/pick_cube --episode 0 [--video replay.mp4]

The scene is re-created from the episode's ``env_id`` and ``seed`` columns (written by
`so101lab collect`), or from --env-id/--seed for datasets recorded elsewhere (e.g. on the arm).
Two errors per joint (units: degrees, gripper 0..100):
- ``state_vs_recorded``: sim state after each action vs the recorded next state (how well sim
  reproduces the recording; ~0 for a sim-collected episode, the sim-to-real gap for a real one);
- ``state_vs_action``: sim state vs the target it was commanded one step earlier (servo tracking).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from so101lab.contract import (
    FEATURE_ACTION,
    FEATURE_STATE,
    JOINT_NAMES,
    OBS_PIXELS,
    OBS_STATE,
)


@dataclass
class Args:
    root: Path
    """Dataset directory."""
    episode: int = 0
    """Episode to replay."""
    env_id: str | None = None
    """Sim task (default: the episode's env_id column)."""
    seed: int | None = None
    """Scene seed (default: the episode's seed column)."""
    video: Path | None = None
    """Write an mp4 of the replay (the dataset's cameras side by side) here."""


def per_joint(errors: np.ndarray) -> dict[str, dict[str, float]]:
    """Mean / max absolute error of (steps, 6) errors, per joint name."""
    abs_err = np.abs(errors)
    return {
        name: {"mean": float(abs_err[:, j].mean()), "max": float(abs_err[:, j].max())}
        for j, name in enumerate(JOINT_NAMES)
    }


def replay(args: Args) -> dict[str, Any]:
    import gymnasium as gym

    import so101lab  # noqa: F401  (registers the envs)
    from so101lab.datasets import LeRobotDataset

    ds = LeRobotDataset(args.root, episodes=[args.episode])
    ep = ds.meta.episodes[args.episode]
    env_id = args.env_id or ep.get("env_id")
    seed = args.seed if args.seed is not None else ep.get("seed")
    if env_id is None or seed is None:
        raise ValueError(f"episode {args.episode} of {args.root} has no env_id/seed columns; pass --env-id and --seed")
    actions, recorded = ds.column(FEATURE_ACTION), ds.column(FEATURE_STATE)
    cameras = tuple(k.rsplit(".", 1)[-1] for k in ds.meta.video_keys)
    size = tuple(ds.meta.features[ds.meta.video_keys[0]]["shape"][:2]) if cameras else (480, 640)
    pixels = args.video is not None and cameras
    env = gym.make(
        env_id,
        obs_mode="pixels_agent_pos" if pixels else "state",
        **({"cameras": cameras, "image_size": size} if pixels else {}),
    )
    encoder = None
    try:
        obs, info = env.reset(seed=int(seed))
        states = [obs[OBS_STATE]]
        if pixels:
            from so101lab.datasets.video import VideoEncoder

            args.video.parent.mkdir(parents=True, exist_ok=True)
            encoder = VideoEncoder(args.video, size[0], size[1] * len(cameras), ds.fps, vcodec="h264")
            encoder.write(np.concatenate([obs[OBS_PIXELS][c] for c in cameras], axis=1))
        for action in actions:
            obs, _, _, truncated, info = env.step(action)
            states.append(obs[OBS_STATE])
            if encoder is not None:
                encoder.write(np.concatenate([obs[OBS_PIXELS][c] for c in cameras], axis=1))
            if truncated:
                break
    finally:
        if encoder is not None:
            encoder.close()
        env.close()
    sim = np.asarray(states, dtype=np.float64)
    n = min(len(sim) - 1, len(actions))
    return {
        "root": str(args.root),
        "episode": args.episode,
        "env_id": env_id,
        "seed": int(seed),
        "task": ds.meta.episodes[args.episode]["tasks"][0],
        "steps": int(n),
        "success": bool(info.get("is_success", False)),
        "initial_state_error": per_joint(sim[:1] - recorded[:1]),
        "state_vs_recorded": per_joint(sim[1:n] - recorded[1:n]) if n > 1 else {},
        "state_vs_action": per_joint(sim[1 : n + 1] - actions[:n]),
        "video": str(args.video) if pixels else None,
    }


def main(args: Args) -> None:
    report = replay(args)
    print(f"episode {report['episode']} ({report['task']!r}): {report['steps']} steps, "
          f"success={report['success']}", file=sys.stderr)  # fmt: skip
    for name in JOINT_NAMES:
        rec = report["state_vs_recorded"].get(name, {"mean": float("nan")})
        act = report["state_vs_action"][name]
        print(f"  {name:<14} vs recorded {rec['mean']:7.3f}   vs action {act['mean']:7.3f}", file=sys.stderr)
    print(json.dumps(report, indent=2))
