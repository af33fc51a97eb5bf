"""Benchmark the sim envs against raw MuJoCo, side by side in one run; prints JSON.

    MUJOCO_GL=egl python scripts/bench_env.py [--env-id so101lab/PickCube-v0] [--steps 600] [--rounds 3]

Measured in CPU time of this process, in alternating rounds (best round reported):
- env steps/s in state mode, and raw `mj_step` throughput for the same substeps and the same
  joint targets (ctrl set once per control step) from the same reset state: the ratio is what
  the env layer costs (the servo firmware, validation, observation, success test, wrappers);
- the same env with the Python reference of the servo firmware in place of the compiled one,
  to show what the C firmware (so101lab/envs/firmware.py) buys;
- env steps/s in pixel mode (both cameras), and raw physics plus a raw `mujoco.Renderer` of the
  same cameras at the same size: the ratio again;
- raw renderer frames/s for the scene's render settings and with shadows and 4x MSAA switched
  on, which is why the scene ships with them off.
"""

# ruff: noqa: I001  (so101lab first: it selects headless EGL before mujoco loads its GL backend)
from __future__ import annotations

import so101lab  # noqa: F401  (also registers the envs)

import argparse
import json
import os
import platform
import time

import gymnasium as gym
import mujoco
import numpy as np
from so101lab.contract import CONTROL_DT, lerobot_to_radians
from so101lab.envs.base import HOME_POSE


def joint_targets(steps: int) -> np.ndarray:
    """Smooth 30 Hz targets (LeRobot units): every joint swings +-15 around the ready pose."""
    t = np.arange(steps)[:, None] * CONTROL_DT
    phase = np.arange(6)[None, :]
    return (HOME_POSE + 15.0 * np.sin(2 * np.pi * t / 3.0 + phase)).astype(np.float32)


def rate(fn, steps: int) -> float:
    """Steps per second of this process's CPU time (all its threads, the renderer's included):
    on a shared machine, other jobs' load then does not count against whichever variant it hits."""
    start = time.process_time()
    fn()
    return steps / (time.process_time() - start)


def bench_env(env: gym.Env, actions: np.ndarray) -> float:
    env.reset(seed=0)

    def run():
        for action in actions:
            env.step(action)

    return rate(run, len(actions))


def bench_raw(env: gym.Env, actions: np.ndarray, renderer: mujoco.Renderer | None = None,
              cameras: tuple[str, ...] = ()) -> float:
    """Raw MuJoCo from the state the env's reset leaves (cube on the table, arm at the ready pose)."""
    env.reset(seed=0)
    sim = env.unwrapped
    model, n_substeps = sim.model, sim.n_substeps
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:], data.ctrl[:] = sim.data.qpos, sim.data.qvel, sim.data.ctrl
    ctrl = lerobot_to_radians(actions)

    def run():
        for target in ctrl:
            data.ctrl[:6] = target
            mujoco.mj_step(model, data, nstep=n_substeps)
            for camera in cameras:
                renderer.update_scene(data, camera)
                renderer.render()

    return rate(run, len(actions))


def bench_render(model: mujoco.MjModel, height: int, width: int, cameras: tuple[str, ...], frames: int,
                 shadows_and_msaa: bool) -> float:
    saved = (model.light_castshadow.copy(), model.vis.quality.shadowsize, model.vis.quality.offsamples)
    if shadows_and_msaa:
        model.light_castshadow[:] = 1
        model.vis.quality.shadowsize = 4096
        model.vis.quality.offsamples = 4
    renderer = mujoco.Renderer(model, height, width)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)

    def run():
        for i in range(frames):
            renderer.update_scene(data, cameras[i % len(cameras)])
            renderer.render()

    fps = rate(run, frames)
    renderer.close()
    model.light_castshadow[:], model.vis.quality.shadowsize, model.vis.quality.offsamples = saved
    return fps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="so101lab/PickCube-v0")
    parser.add_argument("--steps", type=int, default=600, help="control steps per state-mode round")
    parser.add_argument("--pixel-steps", type=int, default=120, help="control steps per pixel-mode round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args()
    cameras = ("front", "wrist")

    state_env = gym.make(args.env_id, obs_mode="state")
    python_env = gym.make(args.env_id, obs_mode="state")
    python_env.unwrapped.servos.compiled = False
    pixel_env = gym.make(args.env_id, obs_mode="pixels_agent_pos", cameras=cameras,
                         image_size=(args.height, args.width))
    sim = state_env.unwrapped
    model, n_substeps = sim.model, sim.n_substeps
    raw_renderer = mujoco.Renderer(model, args.height, args.width)  # the env's model, its own MjData
    state_actions, pixel_actions = joint_targets(args.steps), joint_targets(args.pixel_steps)

    results: dict[str, list[float]] = {k: [] for k in (
        "env_state_steps_per_s", "env_state_python_firmware_steps_per_s", "raw_mj_step_steps_per_s",
        "env_pixels_steps_per_s", "raw_pixels_steps_per_s",
        "render_fps", "render_fps_shadows_msaa")}
    for _ in range(args.rounds):
        results["env_state_steps_per_s"].append(bench_env(state_env, state_actions))
        results["env_state_python_firmware_steps_per_s"].append(bench_env(python_env, state_actions))
        results["raw_mj_step_steps_per_s"].append(bench_raw(state_env, state_actions))
        results["env_pixels_steps_per_s"].append(bench_env(pixel_env, pixel_actions))
        results["raw_pixels_steps_per_s"].append(
            bench_raw(state_env, pixel_actions, raw_renderer, cameras))
        results["render_fps"].append(bench_render(model, args.height, args.width, cameras, 60, False))
        results["render_fps_shadows_msaa"].append(bench_render(model, args.height, args.width, cameras, 60, True))
    best = {k: max(v) for k, v in results.items()}
    report = {
        "env_id": args.env_id,
        "control_hz": round(1 / CONTROL_DT),
        "physics_substeps": n_substeps,
        "servo_firmware": "C" if sim.servos.compiled else "Python",
        "image_size": [args.height, args.width],
        "cameras": list(cameras),
        "rounds": args.rounds,
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "machine": platform.machine(),
        **{k: round(v, 1) for k, v in best.items()},
        "ratio_state_env_over_raw": round(best["env_state_steps_per_s"] / best["raw_mj_step_steps_per_s"], 3),
        "ratio_state_python_firmware_env_over_raw": round(
            best["env_state_python_firmware_steps_per_s"] / best["raw_mj_step_steps_per_s"], 3),
        "ratio_pixels_env_over_raw": round(best["env_pixels_steps_per_s"] / best["raw_pixels_steps_per_s"], 3),
        "ratio_render_plain_over_shadows_msaa": round(best["render_fps"] / best["render_fps_shadows_msaa"], 2),
        "all_rounds": {k: [round(x, 1) for x in v] for k, v in results.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
