"""Record a LeRobot dataset on the real arm (or a virtual one), or in sim, with the same writer.

    so101lab record --port /dev/ttyACM0 --leader-port /dev/ttyACM1 \
        --cameras front=/dev/video0 wrist=/dev/video2 --task "pick up the cube" --root data/real
    so101lab record --port virtual:PickCube --teleop expert --cameras front wrist --root data/virtual
    so101lab record --sim PickCube --root data/teleop          # keyboard teleop in sim (record_sim.py)

Recording controls as in LeRobot, from the terminal's keys: right arrow ends an episode or the
reset phase, left arrow re-records the episode, Esc stops (`so101lab.teleop.recording`).

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

from so101lab.contract import DEFAULT_IMAGE_SIZE
from so101lab.datasets import DatasetInputError, DatasetWriter, VideoSettings, robot_features
from so101lab.datasets.checks import check_recording
from so101lab.datasets.resume import first_seed
from so101lab.real.arm import SO101Arm
from so101lab.real.calibration import default_calibration
from so101lab.real.cameras import open_cameras
from so101lab.real.env import HomeMove, SO101RealEnv
from so101lab.real.ports import open_port, resolve_calibration
from so101lab.teleop.inputs import InputSource, KeyQueue, terminal_keys
from so101lab.teleop.recording import CallableOperator, Phases, record_episodes


@dataclass
class Args:
    root: Path
    """Dataset directory (created, or appended to if it holds a dataset)."""
    port: str | None = None
    """Serial port of the follower, or virtual:<Task> for an in-process virtual arm."""
    sim: str | None = None
    """Record in this sim task instead (e.g. PickCube), teleoperated by keyboard, gamepad or the expert."""
    calibration: Path = field(default_factory=lambda: default_calibration("follower"))
    """Follower calibration file."""
    cameras: tuple[str, ...] = ()
    """Cameras: name=/dev/videoN on hardware, bare names (front wrist) on a virtual arm or in sim."""
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    """Camera image (height, width)."""
    teleop: Literal["leader", "expert", "keyboard", "gamepad"] | None = None
    """Who acts: the leader arm (default on an arm), the keyboard (default with --sim), a gamepad
    (--sim), or the task's scripted expert (--sim or an in-process virtual arm)."""
    leader_port: str | None = None
    """Serial port of the leader arm (teleop=leader)."""
    leader_calibration: Path = field(default_factory=lambda: default_calibration("leader"))
    """Leader calibration file."""
    episodes: int = 1
    """Number of episodes to record."""
    episode_seconds: float = 10.0
    """Length of each episode (the right arrow ends one early)."""
    warmup_seconds: float = 0.0
    """Drive for this long before the first episode, without recording."""
    reset_seconds: float | None = None
    """Reset phase after each episode, not recorded (right arrow ends it): default 10 s on a real arm,
    0 where the scene resets itself (sim, virtual arm)."""
    end_on_success: bool = False
    """End an episode as soon as the task succeeds (sim, virtual arm)."""
    home: bool = True
    """Move the arm to the sim's home pose (slowly, at reduced torque) before each episode."""
    visual: Literal["mesh", "primitive"] | None = None
    """--sim: the arm's look (default: the official meshes where installed)."""
    display: Literal["auto", "viewer", "none"] = "auto"
    """--sim: a live MuJoCo viewer (auto: when there is a display)."""
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
    if args.warmup_seconds < 0 or (args.reset_seconds or 0) < 0:
        raise DatasetInputError("--warmup-seconds and --reset-seconds must be >= 0")
    if (args.port is None) == (args.sim is None):
        raise DatasetInputError("give --port (a real or virtual arm) or --sim <Task> (record in sim), not both")
    if args.cameras:
        check_recording(*args.image_size, len(args.cameras), 1, VideoSettings().vcodec)


def run(args: Args, keys: InputSource | None = None) -> Path:
    """Record; ``keys`` replaces the terminal's keys as the source of recording controls (tests)."""
    check_args(args)
    if args.sim is not None:
        from so101lab.experiments import record_sim

        return record_sim.run(args, keys)
    teleop = args.teleop or "leader"
    if teleop in ("keyboard", "gamepad"):
        raise SystemExit(f"--teleop {teleop} drives a sim arm: use --sim <Task>")
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(open_port(args.port, args.seed or 0))
        if teleop == "expert" and port.world is None:
            raise SystemExit("--teleop expert needs an in-process virtual arm (--port virtual:<Task>)")
        if teleop == "leader" and args.leader_port is None:
            raise SystemExit("--teleop leader needs --leader-port")
        if port.hooks is None and not args.task:
            raise SystemExit("give the episodes' instruction with --task")
        cams = open_cameras(args.cameras, port, args.image_size)
        env = SO101RealEnv(port.path, resolve_calibration(args.calibration, port), cams,
                           image_size=args.image_size, task=args.task, episode_hooks=port.hooks,
                           home=HomeMove() if args.home else None)
        stack.callback(env.close)
        writer = stack.enter_context(DatasetWriter(args.root, robot_features(env.specs)))
        first = first_seed(writer.episodes, args.seed, args.episodes, args.root,
                           allow_duplicates=args.allow_duplicate_seeds)  # fmt: skip
        if keys is None:
            keys = KeyQueue()
            stack.enter_context(terminal_keys(keys))
        if teleop == "leader":
            leader = stack.enter_context(SO101Arm(args.leader_port, args.leader_calibration, role="leader"))
            operator = CallableOperator(lambda obs: leader.read(), keys=keys)
        else:
            from so101lab.envs import make_expert

            world = port.world
            expert = make_expert(world.env)

            def act(obs):
                with world.physics.lock:
                    return expert.act(obs)

            def reset():
                with world.physics.lock:
                    expert.reset()  # a new episode: plan from its scene

            operator = CallableOperator(act, reset, keys)
        reset_seconds = args.reset_seconds if args.reset_seconds is not None else (0.0 if port.hooks else 10.0)
        phases = Phases(args.episodes, args.episode_seconds, args.warmup_seconds, reset_seconds)
        record_episodes(env, operator, writer, phases, first, task=args.task,
                        end_on_success=args.end_on_success and port.hooks is not None)
    return args.root


def main(args: Args) -> None:
    print(f"dataset: {run(args)}")  # errors: one line from the CLI's handler
