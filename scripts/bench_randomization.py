"""What domain randomisation costs in pixel mode, side by side in one run; prints JSON.

    MUJOCO_GL=egl python scripts/bench_randomization.py [--steps 120] [--rounds 3] [--episode 60]

PickCube with both cameras at 480x640 (the mesh look, shadows on), stepped with the same smooth
joint targets as scripts/bench_env.py and reset every `--episode` steps (the reset's own
randomisation is counted), with: no randomisation (`DomainRandomization.none()`), the default
(every part on but distractors and user photos), the default with every image corruption forced
on in every episode (the worst case), and the robustness benchmark's training preset. Rates are
CPU time of this process (the renderer's threads included), best of alternating rounds; the
ratios against `none` are the cost.
"""

# ruff: noqa: I001  (so101lab first: it selects headless EGL before mujoco loads its GL backend)
from __future__ import annotations

import so101lab  # noqa: F401

import argparse
import dataclasses
import json
import os
import time

import gymnasium as gym

from so101lab.envs import DomainRandomization
from so101lab.envs.randomization import preset

from bench_env import joint_targets  # scripts/ is on sys.path when this file runs as a script

CONFIGS = {
    "none": DomainRandomization.none,
    "default": DomainRandomization,
    "default_all_image_corruptions": lambda: dataclasses.replace(DomainRandomization(), image_blur_prob=1.0,
                                                                 image_jpeg_prob=1.0),
    "robust_train": lambda: preset("robust-train"),
}


def bench(env: gym.Env, actions, episode: int) -> float:
    """Steps per CPU second, a reset every `episode` steps."""
    start = time.process_time()
    for i, action in enumerate(actions):
        if i % episode == 0:
            env.reset(seed=i)
        env.step(action)
    return len(actions) / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--episode", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args()
    envs = {name: gym.make("so101lab/PickCube-v0", image_size=(args.height, args.width), randomization=make())
            for name, make in CONFIGS.items()}
    actions = joint_targets(args.steps)
    rates: dict[str, list[float]] = {name: [] for name in envs}
    for _ in range(args.rounds):
        for name, env in envs.items():
            rates[name].append(bench(env, actions, args.episode))
    best = {name: max(r) for name, r in rates.items()}
    print(json.dumps({
        "image_size": [args.height, args.width], "steps": args.steps, "episode": args.episode, "rounds": args.rounds,
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        **{f"{name}_steps_per_s": round(rate, 2) for name, rate in best.items()},
        **{f"cost_{name}": round(1 - best[name] / best["none"], 3) for name in best if name != "none"},
        "all_rounds": {name: [round(x, 2) for x in r] for name, r in rates.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
