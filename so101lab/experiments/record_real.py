"""Record a LeRobot dataset on the real arm (or a virtual one), with the same writer as sim.

    so101lab record --port /dev/ttyACM0 --leader-port /dev/ttyACM1 \
        --cameras front=/dev/video0 wrist=/dev/video2 --task "pick up the cube" --root data/real
    so101lab record --port virtual:PickCube --teleop expert --cameras front wrist --root data/virtual

Each frame holds the follower state and camera images at time t and the action sent at t (the
leader's joint positions, or the scripted expert's targets on a virtual arm). Each episode stores
its seed; rerunning on the same --root appends and continues after the seeds already recorded.
Arguments are checked before anything is opened, and a run that saves no episode leaves no dataset.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from so101lab.contract import (
    DEFAULT_IMAGE_SIZE,
    FEATURE_ACTION,
    FEATURE_STATE,
    OBS_PIXELS,
    OBS_STATE,
    image_feature,
)
from so101lab.datasets import DatasetInputError, DatasetWriter, VideoSettings, robot_features
from so101lab.datasets.checks import check_recording
from so101lab.datasets.resume import first_seed
from so101lab.real.arm import SO101Arm
from so101lab.real.env import SO101RealEnv
from so101lab.real.session import (
    default_calibration,
    open_cameras,
    open_port,
    resolve_calibration,
    wait_for_enter,
)


@dataclass
class Args:
    port: str
    """Serial port of the follower, or virtual:<Task> for an in-process virtual arm."""
    root: Path
    """Dataset directory (created, or appended to if it holds a dataset)."""
    calibration: Path = field(default_factory=lambda: default_calibration("follower"))
    """Follower calibration file."""
    cameras: tuple[str, ...] = ()
    """Cameras: name=/dev/videoN on hardware, bare names (front wrist) on a virtual arm."""
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    """Camera image (height, width)."""
    teleop: Literal["leader", "expert"] = "leader"
    """Who acts: the leader arm, or (virtual arm only) the task's scripted expert."""
    leader_port: str | None = None
    """Serial port of the leader arm (teleop=leader)."""
    leader_calibration: Path = field(default_factory=lambda: default_calibration("leader"))
    """Leader calibration file."""
    episodes: int = 1
    """Number of episodes to record."""
    episode_seconds: float = 10.0
    """Length of each episode."""
    task: str = ""
    """Language instruction (a virtual scene supplies its own)."""
    seed: int | None = None
    """Seed of the first episode's scene on a virtual arm, stored with every episode (default: 0, or one
    past the highest seed already in --root)."""
    allow_duplicate_seeds: bool = False
    """Allow --seed to record seeds that the dataset already holds."""


def check_args(args: Args) -> None:
    """The arguments that need no device, checked before anything is opened or created."""
    if args.episodes < 1 or args.episode_seconds <= 0:
        raise DatasetInputError(
            f"--episodes must be >= 1 and --episode-seconds > 0, got {args.episodes} and {args.episode_seconds}"
        )
    if args.cameras:
        check_recording(*args.image_size, len(args.cameras), 1, VideoSettings().vcodec)


def run(args: Args) -> Path:
    check_args(args)
    steps = round(args.episode_seconds * 30)
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(open_port(args.port, args.seed or 0))
        if args.teleop == "expert" and port.world is None:
            raise SystemExit("--teleop expert needs an in-process virtual arm (--port virtual:<Task>)")
        if args.teleop == "leader" and args.leader_port is None:
            raise SystemExit("--teleop leader needs --leader-port")
        if port.hooks is None and not args.task:
            raise SystemExit("give the episodes' instruction with --task")
        cams = open_cameras(args.cameras, port, args.image_size)
        env = SO101RealEnv(port.path, resolve_calibration(args.calibration, port), cams,
                           image_size=args.image_size, task=args.task, episode_hooks=port.hooks)
        stack.callback(env.close)
        writer = stack.enter_context(DatasetWriter(args.root, robot_features(env.specs)))
        first = first_seed(writer.episodes, args.seed, args.episodes, args.root,
                           allow_duplicates=args.allow_duplicate_seeds)  # fmt: skip
        if args.teleop == "leader":
            leader = stack.enter_context(SO101Arm(args.leader_port, args.leader_calibration, role="leader"))
            act = lambda obs: leader.read()  # noqa: E731
        else:
            from so101lab.envs import make_expert

            world = port.world
            expert = make_expert(world.env)

            def act(obs):
                with world.physics.lock:
                    return expert.act(obs)

        for ep in range(args.episodes):
            if port.hooks is None:
                wait_for_enter(f"Reset the scene; press Enter to record episode {ep + 1}/{args.episodes}.")
            obs, info = env.reset(seed=first + ep)
            if args.teleop == "expert":
                with world.physics.lock:
                    expert.reset()  # a new episode: plan from its scene
            task = info["task"] or args.task
            for _ in range(steps):
                action = act(obs)
                frame = {FEATURE_STATE: obs[OBS_STATE], FEATURE_ACTION: action}
                for name, img in obs.get(OBS_PIXELS, {}).items():
                    frame[image_feature(name)] = img
                writer.add_frame(frame, task)
                obs, _, _, _, info = env.step(action)
            index = writer.save_episode(extra={"seed": first + ep})
            print(f"episode {index} saved ({steps} frames, task {task!r})", flush=True)
    return args.root


def main(args: Args) -> None:
    print(f"dataset: {run(args)}")  # errors: one line from the CLI's handler
