"""The front and wrist cameras of every task at 480x640, as docs/look/ shows them; writes PNGs.

    MUJOCO_GL=egl python scripts/make_look_frames.py [--out docs/look] [--old-frames DIR]

Each task runs its scripted expert from seed 0 for 25 control steps (the arm on its way to the
first object) in the nominal scene (`DomainRandomization.none()`: the look itself, not one draw of
the randomisation, which docs/randomization.png shows) and saves `<Task>.png`: front over wrist.
With `--old-frames`, a folder of
`<Task>_front.png` / `<Task>_wrist.png` rendered the same way by an older so101lab (the
frames in docs/look came from commit 2eb7289, the capsule-and-box arm), each PNG puts the old
frames on the left and the new on the right.
"""

# ruff: noqa: I001  (so101lab first: it selects headless EGL before mujoco loads its GL backend)
from __future__ import annotations

import so101lab  # noqa: F401

import argparse
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np

from so101lab.envs import DomainRandomization, make_expert
from so101lab.envs.registration import SIM_ENV_IDS

STEPS = 25


def frames(env_id: str) -> dict[str, np.ndarray]:
    env = gym.make(env_id, cameras=("front", "wrist"), randomization=DomainRandomization.none())
    obs, _ = env.reset(seed=0)
    expert = make_expert(env)
    for _ in range(STEPS):
        obs, *_ = env.step(expert.act(obs))
    env.close()
    return obs["pixels"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/look"))
    parser.add_argument("--old-frames", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for env_id in SIM_ENV_IDS:
        task = env_id.split("/")[1].removesuffix("-v0")
        new = frames(env_id)
        column = np.concatenate([new["front"], new["wrist"]], axis=0)
        if args.old_frames is not None:
            old = [imageio.imread(args.old_frames / f"{task}_{c}.png")[..., :3] for c in ("front", "wrist")]
            gap = np.full((column.shape[0], 8, 3), 255, np.uint8)
            column = np.concatenate([np.concatenate(old, axis=0), gap, column], axis=1)
        imageio.imwrite(args.out / f"{task}.png", column)
        print(args.out / f"{task}.png")


if __name__ == "__main__":
    main()
