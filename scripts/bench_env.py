"""Benchmark the sim envs against raw MuJoCo, side by side in one run; prints JSON.

    MUJOCO_GL=egl python scripts/bench_env.py [--env-id so101lab/PickCube-v0] [--steps 600] [--rounds 3]

Measured in CPU time of this process, in alternating rounds (best round reported):
- env steps/s in state mode, and raw `mj_step` throughput for the same substeps and the same
  joint targets (ctrl set once per control step) from the same reset state: the ratio is what
  the env layer costs (the servo firmware, validation, observation, success test, wrappers);
- the same env with the Python reference of the servo firmware in place of the compiled one,
  to show what the C firmware (so101lab/envs/firmware.py) buys;
- env steps/s in pixel mode (both cameras), and raw physics plus a raw `mujoco.Renderer` of the
  same cameras at the same size: the ratio again, for each look (the official meshes, the
  primitive arm) with the key light's shadow on (the default) and off; pixel-mode rates are also
  given in wall-clock steps/s, the number to hold against real time (30);
- raw renderer frames/s of the mesh look for the render settings one might choose: no shadow,
  the default shadow (1024 px map), a 4096 px map, a second (fill) light without and with its own
  shadow, and 4x MSAA.
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


WALL: dict[int, float] = {}  # id(fn) -> wall-clock steps/s of its last run


def rate(fn, steps: int) -> float:
    """Steps per second of this process's CPU time (all its threads, the renderer's included):
    on a shared machine, other jobs' load then does not count against whichever variant it hits.
    The wall-clock rate of the same run is kept in `WALL` (what real time needs, on an idle machine)."""
    start, wall = time.process_time(), time.perf_counter()
    fn()
    WALL[0] = steps / (time.perf_counter() - wall)
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


RENDER_SETTINGS = ("no_shadow", "shadow_1024", "shadow_4096", "shadow_fill_light", "two_shadow_lights",
                   "shadow_msaa4")


def with_fill_light(env_id: str) -> mujoco.MjModel:
    """The mesh-look model of `env_id` with a second directional light (no shadow of its own)."""
    from so101lab.assets.look import apply_look
    from so101lab.envs.scene import ASSETS

    spec = mujoco.MjSpec.from_file(str(ASSETS / gym.make(env_id, obs_mode="state").unwrapped.xml_file))
    apply_look(spec, "mesh")
    spec.worldbody.add_light(name="fill", pos=[0.6, -0.4, 0.8], dir=[-0.5, 0.4, -0.6], diffuse=[0.3, 0.3, 0.3],
                             type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, castshadow=False)
    return spec.compile()


def bench_render(model: mujoco.MjModel, height: int, width: int, cameras: tuple[str, ...], frames: int,
                 setting: str) -> float:
    """Raw renderer frames/s of `model` with one of RENDER_SETTINGS applied (and undone)."""
    saved = (model.light_castshadow.copy(), model.light_diffuse.copy(), model.light_active.copy(),
             model.vis.quality.shadowsize, model.vis.quality.offsamples)
    key = model.light("key").id
    model.light_castshadow[:] = setting == "two_shadow_lights"
    if setting != "no_shadow":
        model.light_castshadow[key] = 1
    model.vis.quality.shadowsize = 4096 if setting == "shadow_4096" else 1024
    model.vis.quality.offsamples = 4 if setting == "shadow_msaa4" else 0
    renderer = mujoco.Renderer(model, height, width)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)

    def run():
        for i in range(frames):
            renderer.update_scene(data, cameras[i % len(cameras)])
            renderer.render()

    fps = rate(run, frames)
    renderer.close()
    (model.light_castshadow[:], model.light_diffuse[:], model.light_active[:], model.vis.quality.shadowsize,
     model.vis.quality.offsamples) = saved
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
    looks = {f"{visual}_{'shadow' if shadows else 'no_shadow'}": {"visual": visual, "shadows": shadows}
             for visual in ("mesh", "primitive") for shadows in (True, False)}

    state_env = gym.make(args.env_id, obs_mode="state")
    python_env = gym.make(args.env_id, obs_mode="state")
    python_env.unwrapped.servos.compiled = False
    pixel_envs = {name: gym.make(args.env_id, obs_mode="pixels_agent_pos", cameras=cameras,
                                 image_size=(args.height, args.width), **look) for name, look in looks.items()}
    fill_model = with_fill_light(args.env_id)
    sim = state_env.unwrapped
    n_substeps = sim.n_substeps
    state_actions, pixel_actions = joint_targets(args.steps), joint_targets(args.pixel_steps)

    results: dict[str, list[float]] = {k: [] for k in (
        "env_state_steps_per_s", "env_state_python_firmware_steps_per_s", "raw_mj_step_steps_per_s",
        *(f"{kind}_pixels_{look}_steps_per_s" for look in looks for kind in ("env", "raw", "env_wall")),
        *(f"render_fps_mesh_{setting}" for setting in RENDER_SETTINGS))}
    for _ in range(args.rounds):
        results["env_state_steps_per_s"].append(bench_env(state_env, state_actions))
        results["env_state_python_firmware_steps_per_s"].append(bench_env(python_env, state_actions))
        results["raw_mj_step_steps_per_s"].append(bench_raw(state_env, state_actions))
        for look, env in pixel_envs.items():
            results[f"env_pixels_{look}_steps_per_s"].append(bench_env(env, pixel_actions))
            results[f"env_wall_pixels_{look}_steps_per_s"].append(WALL[0])
            raw_renderer = mujoco.Renderer(env.unwrapped.model, args.height, args.width)
            results[f"raw_pixels_{look}_steps_per_s"].append(bench_raw(env, pixel_actions, raw_renderer, cameras))
            raw_renderer.close()
        for setting in RENDER_SETTINGS:
            model = fill_model if "two" in setting or "fill" in setting else pixel_envs["mesh_shadow"].unwrapped.model
            results[f"render_fps_mesh_{setting}"].append(
                bench_render(model, args.height, args.width, cameras, 60, setting))
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
        **{f"ratio_pixels_{look}_env_over_raw": round(
            best[f"env_pixels_{look}_steps_per_s"] / best[f"raw_pixels_{look}_steps_per_s"], 3) for look in looks},
        "ratio_mesh_over_primitive_pixels_wall": round(
            best["env_wall_pixels_mesh_shadow_steps_per_s"] / best["env_wall_pixels_primitive_shadow_steps_per_s"], 3),
        **{f"ratio_render_{setting}_over_default": round(
            best[f"render_fps_mesh_{setting}"] / best["render_fps_mesh_shadow_1024"], 3)
           for setting in RENDER_SETTINGS},
        "all_rounds": {k: [round(x, 1) for x in v] for k, v in results.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
