"""Deploy a policy on Real-v0: chunked actions at 30 Hz, success judged live (or by the virtual scene).

    so101lab deploy --port /dev/ttyACM0 --policy outputs/smolvla/checkpoint \
        --cameras front=/dev/video0 wrist=/dev/video2 --task "pick up the cube"
    so101lab deploy --port virtual:PickCube --policy expert --cameras front wrist --episodes 10

On hardware, press Enter to end an episode early, then answer whether it succeeded.

``--async`` runs the checkpoint in a policy server process (spawned on localhost, or ``--server
host:port`` on another machine) while the arm executes the current chunk: the 30 Hz loop never
waits for the network; an empty queue holds the arm still and is counted as a stall.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import gymnasium as gym
import numpy as np
import tyro

from so101lab.contract import CONTROL_HZ, DEFAULT_IMAGE_SIZE
from so101lab.inference.runner import Aggregate, ControlLoop, Execution, batched, run_realtime_episode
from so101lab.policies.device import DeviceName, DtypeName
from so101lab.real.calibration import default_calibration
from so101lab.real.cameras import open_cameras
from so101lab.real.env import SO101RealEnv
from so101lab.real.keyboard import EnterPressed, ask_yes_no, wait_for_enter
from so101lab.real.ports import Port, open_port, resolve_calibration

Policy = Callable[[dict, str], np.ndarray]


@dataclass
class Args:
    port: str
    """Serial port of the follower, or virtual:<Task> for an in-process virtual arm."""
    policy: str = "expert"
    """A policy directory or training checkpoint (SmolVLA or ACT), or 'expert' (virtual arm: the task's expert)."""
    calibration: Path = field(default_factory=lambda: default_calibration("follower"))
    """Follower calibration file."""
    cameras: tuple[str, ...] = ()
    """Cameras: name=/dev/videoN on hardware, bare names (front wrist) on a virtual arm."""
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    """Camera image (height, width), as the policy was trained on."""
    episodes: int = 1
    """Number of episodes."""
    seed: int = 0
    """Seed of the first episode (virtual scenes are placed as the sim would on this seed)."""
    episode_seconds: float | None = None
    """Episode time limit (default: the sim task's, or 30 s on hardware)."""
    task: str = ""
    """Language instruction (a virtual scene supplies its own)."""
    max_relative_target: float | None = None
    """Cap on each joint's goal change per step (units)."""
    vlm_dir: Path | None = None
    """Local SmolVLM2 directory, if the checkpoint's is elsewhere."""
    out: Path | None = None
    """Write the per-episode results as JSON here."""
    device: DeviceName = "auto"
    """torch device of the policy: auto (cuda, then mps, then cpu), cpu, cuda or mps."""
    dtype: DtypeName = "float32"
    """Inference precision (float32 is LeRobot's numbers; bfloat16 is faster on GPUs and AMX CPUs)."""
    async_inference: Annotated[bool, tyro.conf.arg(name="async")] = False
    """Async inference: a policy server process computes the next chunk while the arm runs the current one."""
    server: str | None = None
    """--async: host:port of a running policy server (default: spawn one on localhost)."""
    threshold: float = 0.5
    """--async: request the next chunk when the queue is at or below this fraction of the chunk."""
    aggregate: Aggregate = "weighted"
    """--async: merge overlapping chunks by latest, average or weighted (0.3 old + 0.7 new)."""
    latency_ms: float = 0.0
    """--async: the server answers no sooner than this (ms), to rehearse a slower computer."""
    rtc: bool = False
    """--async, SmolVLA: real-time chunking (guide each new chunk's start toward the queued actions)."""
    timeout_s: float = 30.0
    """--async: stop (torque off) if a chunk is later than this."""
    threads: int | None = None
    """CPU threads for torch (of the spawned server with --async)."""


def policy_functions(args: Args, port: Port) -> tuple[Policy, Callable[[], None]]:
    """(act(obs, task) -> action, reset()) for a checkpoint or the virtual scene's expert."""
    if args.policy == "expert":
        if port.world is None:
            raise SystemExit("--policy expert needs an in-process virtual arm (--port virtual:<Task>): "
                             "it reads the sim")
        from so101lab.envs import make_expert

        world = port.world
        expert = make_expert(world.env)

        def act(obs: dict, task: str) -> np.ndarray:
            with world.physics.lock:
                return expert.act(obs)

        def reset() -> None:
            with world.physics.lock:
                expert.reset()

        return act, reset
    from so101lab.policies import load_policy

    policy = load_policy(args.policy, device=args.device, vlm_dir=args.vlm_dir, dtype=args.dtype)
    return policy.select_action, policy.reset


def async_loop(args: Args, stack: contextlib.ExitStack) -> ControlLoop:
    """A control loop fed by a policy server (spawned here unless --server), closed with ``stack``."""
    from so101lab.inference.sources import ServerOptions, realtime_loop

    if args.policy == "expert":
        raise SystemExit("--async serves a policy checkpoint, not the scripted expert")
    options = ServerOptions(Path(args.policy), args.device, args.dtype, args.vlm_dir, args.threads,
                            address=args.server, timeout_s=args.timeout_s)
    execution = Execution("async", args.threshold, args.aggregate, rtc=args.rtc)
    _, loop = stack.enter_context(realtime_loop(options, execution, args.latency_ms))
    return loop


def run(args: Args) -> dict:
    results = []
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(open_port(args.port, args.seed))
        if port.hooks is None and not args.task:
            raise SystemExit("give the instruction with --task (a virtual scene supplies its own)")
        loop = async_loop(args, stack) if args.async_inference else None
        act, reset_policy = policy_functions(args, port) if loop is None else (None, loop.reset)
        cams = open_cameras(args.cameras, port, args.image_size)
        env = SO101RealEnv(port.path, resolve_calibration(args.calibration, port), cams,
                           image_size=args.image_size, task=args.task, episode_hooks=port.hooks,
                           max_relative_target=args.max_relative_target)
        stack.callback(env.close)
        seconds = args.episode_seconds
        if seconds is None and port.world is not None:
            seconds = gym.spec(port.world.env.spec.id).max_episode_steps / CONTROL_HZ
        steps = round((seconds or 30.0) * CONTROL_HZ)
        for ep in range(args.episodes):
            seed = args.seed + ep
            if port.hooks is None:
                wait_for_enter(f"Reset the scene; press Enter to start episode {ep + 1}/{args.episodes}.")
            obs, info = env.reset(seed=seed)
            reset_policy()
            task = info["task"] or args.task
            abort = EnterPressed("Press Enter to end the episode.") if port.hooks is None else (lambda: False)
            done = 0
            if loop is not None and ep == 0:
                loop.source.warm_up(batched(obs), [task])
            if loop is not None:
                obs, info, done = run_realtime_episode(env, loop, obs, task, steps, abort)
            while done < steps and loop is None:
                obs, _, terminated, _, info = env.step(act(obs, task))
                done += 1
                if terminated or abort():
                    break
            success = info["is_success"] if port.hooks is not None else ask_yes_no("Did it succeed?")
            results.append({"seed": seed, "success": bool(success), "steps": done, "task": task})
            if loop is not None:
                results[-1]["inference"] = loop.stats.summary()
            print(json.dumps(results[-1]), flush=True)
        summary = {"success_rate": float(np.mean([r["success"] for r in results])), "episodes": results,
                   "overruns": env.overruns}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))
    return summary


def main(args: Args) -> None:
    summary = run(args)
    print(f"success rate {summary['success_rate']:.0%} over {len(summary['episodes'])} episodes")
