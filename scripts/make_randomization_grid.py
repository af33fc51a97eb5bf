"""Grids of randomised PickCube frames for docs/: what the domain randomisation and the held-out shifts look like.

    MUJOCO_GL=egl python scripts/make_randomization_grid.py [--out docs] [--preset robust-train]

`randomization.png`: 16 episodes (seeds 0-15) of the preset, each its front and wrist frame as
the policy observes them (image corruptions included) after the scripted expert's first 20
steps, four episodes per row. `robustness_conditions.png`: the front and wrist frames of seed 0
in each held-out condition of the robustness benchmark (so101lab/envs/robustness.py).
"""

# ruff: noqa: I001  (so101lab first: it selects headless EGL before mujoco loads its GL backend)
from __future__ import annotations

import so101lab  # noqa: F401

import argparse
from pathlib import Path

import cv2
import gymnasium as gym
import imageio.v2 as imageio
import numpy as np

from so101lab.envs import make_expert
from so101lab.envs.randomization import preset
from so101lab.envs.robustness import CONDITIONS, register_conditions

SIZE = (240, 320)
STEPS = 20


def episode_frame(env: gym.Env, seed: int, label: str) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    expert = make_expert(env)
    for _ in range(STEPS):
        obs, *_ = env.step(expert.act(obs))
    pair = np.concatenate([obs["pixels"]["front"], obs["pixels"]["wrist"]], axis=1)
    pair = np.pad(pair, ((0, 4), (0, 4), (0, 0)), constant_values=255)
    cv2.putText(pair, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(pair, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return pair


def grid(frames: list[np.ndarray], columns: int) -> np.ndarray:
    blank = np.full_like(frames[0], 255)
    frames = frames + [blank] * (-len(frames) % columns)
    return np.concatenate([np.concatenate(frames[i:i + columns], axis=1) for i in range(0, len(frames), columns)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--preset", default="robust-train")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = gym.make("so101lab/PickCube-v0", image_size=SIZE, randomization=preset(args.preset))
    frames = [episode_frame(env, seed, f"seed {seed}") for seed in range(16)]
    imageio.imwrite(args.out / "randomization.png", grid(frames, 4))
    ids = register_conditions()
    conditions = [episode_frame(gym.make(ids[name], image_size=SIZE), 0, name) for name in CONDITIONS]
    imageio.imwrite(args.out / "robustness_conditions.png", grid(conditions, 3))
    print(f"wrote {args.out / 'randomization.png'} and {args.out / 'robustness_conditions.png'}")


if __name__ == "__main__":
    main()
