"""Teleoperate: the leader arm's joint positions drive the follower arm and/or a sim twin at 30 Hz.

    so101lab teleoperate --leader-port /dev/ttyACM1 --follower-port /dev/ttyACM0
    so101lab teleoperate --leader-port /dev/ttyACM1 --sim-twin PickCube     # no follower needed
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

from so101lab.contract import CONTROL_DT
from so101lab.real.arm import SO101Arm
from so101lab.real.calibration import default_calibration
from so101lab.real.keyboard import EnterPressed
from so101lab.real.virtual_world import task_env_id


@dataclass
class Args:
    leader_port: str
    """Serial port of the leader arm."""
    follower_port: str | None = None
    """Serial port of the follower arm (optional with --sim-twin)."""
    leader_calibration: Path = field(default_factory=lambda: default_calibration("leader"))
    """Calibration file of the leader."""
    follower_calibration: Path = field(default_factory=lambda: default_calibration("follower"))
    """Calibration file of the follower."""
    sim_twin: str | None = None
    """Also drive this sim task (e.g. PickCube) with the leader; shown in a viewer if there is a display."""
    seconds: float | None = None
    """Stop after this long (default: when Enter is pressed)."""
    max_relative_target: float | None = None
    """Cap on each joint's goal change per step (units), for a gentle follower."""


@dataclass
class TeleopReport:
    ticks: int
    mean_tracking_error: float | None  # |follower - leader| averaged over joints and ticks (units)
    twin_final_error: float | None = None  # |twin - leader| at the last tick (units)


def run(args: Args, stop: Callable[[], bool]) -> TeleopReport:
    if args.follower_port is None and args.sim_twin is None:
        raise SystemExit("nothing to drive: give --follower-port and/or --sim-twin")
    errors: list[float] = []
    twin_errors: list[float] = []
    ticks = 0
    with contextlib.ExitStack() as stack:
        leader = stack.enter_context(SO101Arm(args.leader_port, args.leader_calibration, role="leader"))
        follower = None
        if args.follower_port is not None:
            follower = stack.enter_context(SO101Arm(args.follower_port, args.follower_calibration,
                                                    max_relative_target=args.max_relative_target))
        twin = None
        if args.sim_twin is not None:
            twin = gym.make(task_env_id(args.sim_twin), obs_mode="state",
                            render_mode="human" if os.environ.get("DISPLAY") else None)
            stack.callback(twin.close)
            twin.reset(seed=0)
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        next_tick = time.perf_counter()
        while not stop() and (deadline is None or time.monotonic() < deadline):
            goal = leader.read()
            if follower is not None:
                follower.send(goal)
                errors.append(float(np.mean(np.abs(follower.read() - goal))))
            if twin is not None:
                obs, *_ = twin.step(goal)
                twin_errors.append(float(np.mean(np.abs(obs["agent_pos"] - goal))))  # twin starts elsewhere
            ticks += 1
            next_tick += CONTROL_DT
            time.sleep(max(0.0, next_tick - time.perf_counter()))
    return TeleopReport(ticks, float(np.mean(errors)) if errors else None,
                        twin_errors[-1] if twin_errors else None)


def main(args: Args) -> None:
    stop = EnterPressed("Teleoperating: move the leader arm. Press Enter to stop.") if args.seconds is None \
        else (lambda: False)
    report = run(args, stop)
    print(f"{report.ticks} ticks; mean |follower - leader| = {report.mean_tracking_error}, "
          f"final |twin - leader| = {report.twin_final_error}")
