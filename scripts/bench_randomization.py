"""What domain randomisation costs in pixel mode, side by side in one run; prints JSON.

    MUJOCO_GL=egl python scripts/bench_randomization.py [--episodes 24] [--steps-per-episode 10] [--rounds 2] [--parts]

PickCube with both cameras at 480x640 (the mesh look, shadows on), stepped with the same smooth
joint targets as scripts/bench_env.py over `--episodes` seeds: what a textured, blurred or
JPEG-compressed episode costs is drawn per episode, so the cost is an average over many episodes
(a handful of long ones would measure the draws of those few). Configs: no randomisation
(`DomainRandomization.none()`), the default (every part on but distractors and user photos), the
default with every image corruption forced on in every episode (the worst case), and the
robustness benchmark's training preset; `--parts` adds the default with one part off at a time
(textures, image corruptions, spare lights, colour and pose jitter): a part's share of the cost is the
default's cost minus that run's, and the default with the pool textures sampled as MuJoCo does
(blending two mipmap levels, `set_pool_texture_filter`): what the cheaper filter buys. Step time and
reset time are measured apart: the step cost is the issue's number, the reset's is reported beside
it. The configs take turns episode by episode (drift of the machine weighs on all alike). Rates are
best of rounds, in CPU time of this process (the renderer's threads included) and in wall time.
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
from so101lab.envs.textures import set_pool_texture_filter

from bench_env import joint_targets  # scripts/ is on sys.path when this file runs as a script

CONFIGS = {
    "none": DomainRandomization.none,
    "default": DomainRandomization,
    "default_all_image_corruptions": lambda: dataclasses.replace(DomainRandomization(), image_blur_prob=1.0,
                                                                 image_jpeg_prob=1.0),
    "robust_train": lambda: preset("robust-train"),
}
# --parts: the default with one part off each, so a part's share of the cost is default minus it.
PARTS = {
    "textures": dict(table_texture=0.0, floor_texture=0.0, wall_texture=0.0),
    "image_corruptions": dict(image_color=0.0, image_blur_prob=0.0, image_jpeg_prob=0.0, image_noise=0.0),
    "extra_lights": dict(extra_lights=0),
    "jitter": dict(object_color=0.0, light_intensity=0.0, light_direction=0.0, light_position=0.0, light_color=0.0,
                   table_color=0.0, camera_position=0.0, camera_rotation=0.0, camera_fov=0.0, arm_color=0.0),
}


def bench_episode(env: gym.Env, actions, seed: int) -> tuple[float, float, float]:
    """CPU seconds of the reset, then CPU and wall seconds of stepping through `actions`, for one seed.
    CPU time is robust to other jobs on the machine; wall time is what a user waits for on an idle one
    (the software renderer spreads its pixels over the cores)."""
    start = time.process_time()
    env.reset(seed=seed)
    middle, wall = time.process_time(), time.perf_counter()
    for action in actions:
        env.step(action)
    return middle - start, time.process_time() - middle, time.perf_counter() - wall


def bench_round(envs: dict[str, gym.Env], actions, episodes: int) -> dict[str, dict[str, float]]:
    """Steps per second (CPU and wall) and CPU ms per reset of every config over `episodes` seeds.
    The configs take turns episode by episode, so a machine that speeds up or slows down during the
    round (this virtual machine drifts by 10-20 % over minutes) weighs on all of them alike."""
    totals = {name: [0.0, 0.0, 0.0] for name in envs}
    for seed in range(episodes):
        for name, env in envs.items():
            totals[name] = [t + x for t, x in zip(totals[name], bench_episode(env, actions, seed), strict=True)]
    steps = episodes * len(actions)
    return {name: {"cpu": steps / step_cpu, "wall": steps / step_wall, "reset_ms": 1000 * reset_cpu / episodes}
            for name, (reset_cpu, step_cpu, step_wall) in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--steps-per-episode", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--parts", action="store_true", help="also the default with each part off (PARTS)")
    args = parser.parse_args()
    configs = {name: make() for name, make in CONFIGS.items()}
    if args.parts:
        configs |= {f"default_without_{part}": dataclasses.replace(DomainRandomization(), **off)
                    for part, off in PARTS.items()}
        configs["default_mujoco_texture_filter"] = DomainRandomization()
    envs = {name: gym.make("so101lab/PickCube-v0", image_size=(args.height, args.width), randomization=config)
            for name, config in configs.items()}
    if args.parts:
        blended = envs["default_mujoco_texture_filter"].unwrapped
        blended.reset(seed=0)  # makes the renderer
        set_pool_texture_filter(blended._renderer, blended.model, blend_mip_levels=True)
    actions = joint_targets(args.steps_per_episode)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in envs}
    for _ in range(args.rounds):
        for name, result in bench_round(envs, actions, args.episodes).items():
            runs[name].append(result)
    best = {name: {k: max(r[k] for r in rs) for k in ("cpu", "wall")} for name, rs in runs.items()}
    print(json.dumps({
        "image_size": [args.height, args.width], "episodes": args.episodes,
        "steps_per_episode": args.steps_per_episode, "rounds": args.rounds, "mujoco_gl": os.environ.get("MUJOCO_GL"),
        **{f"{name}_steps_per_cpu_s": round(b["cpu"], 2) for name, b in best.items()},
        **{f"{name}_steps_per_wall_s": round(b["wall"], 2) for name, b in best.items()},
        **{f"cost_{name}_cpu": round(1 - b["cpu"] / best["none"]["cpu"], 3)
           for name, b in best.items() if name != "none"},
        **{f"cost_{name}_wall": round(1 - b["wall"] / best["none"]["wall"], 3)
           for name, b in best.items() if name != "none"},
        **{f"{name}_reset_cpu_ms": round(min(r["reset_ms"] for r in rs), 1) for name, rs in runs.items()},
        "all_rounds": {name: [{k: round(v, 2) for k, v in r.items()} for r in rs] for name, rs in runs.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
