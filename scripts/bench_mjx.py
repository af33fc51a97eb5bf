"""Benchmark the MJX backend against the CPU MuJoCo env, side by side in one run; prints JSON.

    python scripts/bench_mjx.py [--env-id so101lab/PickCube-v0] [--envs 1 64 1024] [--steps 20 10 3]
                                [--devices 1 2]

Needs the `mjx` extra. For each XLA device count D (the host is split into one CPU device per
core) and batch size N that D divides: `MjxEnv.reset` of N seeds (the CPU env's reset per seed, on
the host), then one timed first step (jit compile plus one step; each N and D compiles its own
program) and `steps` timed control steps; the rate counts env steps, control steps x N, per second.
The CPU env (state mode) steps the same smooth joint targets (scripts/bench_env.py). Rates are
given per second of wall clock and per second of this process's CPU time (all threads: XLA's and
MuJoCo's), since on a shared machine other jobs take wall-clock time from either side.
"""

# ruff: noqa: I001  (so101lab first: it selects headless EGL before anything loads mujoco)
from __future__ import annotations

import so101lab  # noqa: F401  (also registers the envs)

import argparse
import json
import os
import platform
import sys
import time
from importlib.metadata import version

import gymnasium as gym
import jax
import numpy as np
from bench_env import joint_targets  # scripts/ is on sys.path when this script runs

from so101lab.envs.mjx import MjxEnv, split_host_into_devices

# One XLA CPU device per core: XLA runs a CPU program on one thread (MjxEnv's batch_sharding).
split_host_into_devices(os.cpu_count())


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(fn) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of `fn()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_cpu_env(env_id: str, actions: np.ndarray, rounds: int) -> dict[str, float]:
    env = gym.make(env_id, obs_mode="state")

    def run():
        for action in actions:
            env.step(action)

    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(rounds):
        env.reset(seed=0)
        wall, cpu = timed(run)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return {"steps_per_s": len(actions) / best_wall, "steps_per_cpu_s": len(actions) / best_cpu}


def bench_mjx(env: MjxEnv, n: int, actions: np.ndarray) -> dict[str, float]:
    """`actions[0]` goes to the first (compiling) step, the rest are timed."""
    state, obs = None, None

    def reset():
        nonlocal state, obs
        state, obs = env.reset(range(n))

    def step(action):
        def run():
            nonlocal state, obs
            state, obs, _, _ = env.step(state, np.broadcast_to(action, (n, action.shape[0])))
            jax.block_until_ready(obs)
        return run

    reset_s, _ = timed(reset)
    progress(f"{n} envs: reset {reset_s:.1f} s")
    first_s, _ = timed(step(actions[0]))
    progress(f"{n} envs: first step (compile) {first_s:.1f} s")
    walls, cpus = [], []
    for action in actions[1:]:
        wall, cpu = timed(step(action))
        walls.append(wall)
        cpus.append(cpu)
        progress(f"{n} envs: step {wall:.2f} s")
    wall, cpu = sum(walls), sum(cpus)
    steps = len(actions) - 1
    return {
        "envs": n,
        "control_steps": steps,
        "reset_s": round(reset_s, 2),
        "compile_s": round(first_s - wall / steps, 1),  # first call minus one steady step
        "step_s": round(wall / steps, 4),
        "steps_per_s": n * steps / wall,
        "steps_per_cpu_s": n * steps / cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="so101lab/PickCube-v0")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 64, 1024], help="batch sizes")
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 10, 3],
                        help="timed control steps per batch size (after the compiling first step)")
    parser.add_argument("--cpu-steps", type=int, default=300, help="control steps per CPU env round")
    parser.add_argument("--rounds", type=int, default=3, help="CPU env rounds (best reported)")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, len(jax.devices())],
                        help="XLA device counts to split each batch over (one CPU device per core here)")
    parser.add_argument("--float32", action="store_true",
                        help="MJX in float32 (faster, but it throws squeezed cubes: see so101lab.envs.mjx.env)")
    args = parser.parse_args()
    if len(args.steps) != len(args.envs):
        parser.error(f"--steps needs one count per batch size in --envs, got {args.steps} for {args.envs}")
    jax.config.update("jax_enable_x64", not args.float32)

    cpu = bench_cpu_env(args.env_id, joint_targets(args.cpu_steps), args.rounds)
    progress(f"cpu env: {cpu['steps_per_s']:.0f} steps/s")
    mjx_runs = []
    runs = [(d, n, s) for d in dict.fromkeys(args.devices) for n, s in zip(args.envs, args.steps) if n % d == 0]
    for devices, n, steps in runs:  # a batch the devices do not divide would run on one of them
        env = MjxEnv(args.env_id, allow_float32=args.float32, devices=jax.devices()[:devices])
        progress(f"{n} envs over {devices} device(s)")
        run = {"devices": devices, **bench_mjx(env, n, joint_targets(steps + 1))}
        run["ratio_over_cpu_env"] = round(run["steps_per_s"] / cpu["steps_per_s"], 3)
        run["ratio_over_cpu_env_cpu_time"] = round(run["steps_per_cpu_s"] / cpu["steps_per_cpu_s"], 3)
        run["steps_per_s"], run["steps_per_cpu_s"] = round(run["steps_per_s"], 1), round(run["steps_per_cpu_s"], 1)
        mjx_runs.append(run)
    report = {
        "env_id": args.env_id,
        "physics_substeps": env.n_substeps,
        "dropped_geoms": list(env.dropped_geoms),
        "float": "float32" if args.float32 else "float64",
        "jax": version("jax"),
        "mujoco": version("mujoco"),
        "mujoco_mjx": version("mujoco-mjx"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ["XLA_FLAGS"],
        "cpu_env": {"control_steps": args.cpu_steps, "rounds": args.rounds,
                    **{k: round(v, 1) for k, v in cpu.items()}},
        "mjx": mjx_runs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
