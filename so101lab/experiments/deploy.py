"""Deploy a policy on Real-v0: chunked actions at 30 Hz, success judged live (or by the virtual scene).

    so101lab deploy --port /dev/ttyACM0 --policy outputs/smolvla/checkpoint \
        --cameras front=/dev/video0 wrist=/dev/video2 --task "pick up the cube"
    so101lab deploy --port virtual:PickCube --policy expert --cameras front wrist --episodes 10

On hardware, press Enter to end an episode early, then answer whether it succeeded.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

from so101lab.contract import CONTROL_HZ, DEFAULT_IMAGE_SIZE
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

    policy = load_policy(args.policy, vlm_dir=args.vlm_dir)
    return policy.select_action, policy.reset


def run(args: Args) -> dict:
    results = []
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(open_port(args.port, args.seed))
        if port.hooks is None and not args.task:
            raise SystemExit("give the instruction with --task (a virtual scene supplies its own)")
        act, reset_policy = policy_functions(args, port)
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
            while done < steps:
                obs, _, terminated, _, info = env.step(act(obs, task))
                done += 1
                if terminated or abort():
                    break
            success = info["is_success"] if port.hooks is not None else ask_yes_no("Did it succeed?")
            results.append({"seed": seed, "success": bool(success), "steps": done, "task": task})
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
