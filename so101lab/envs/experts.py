"""Scripted experts: pick-and-place plans turned into smooth 30 Hz joint targets, as a teleoperator's.

A task describes its plan as a list of `Pick`s (which cube, where to put it). The expert moves the
tool centre point between waypoints along minimum-jerk paths at a human pace, solves IK each
control step, waits for the servos to arrive before closing or opening the gripper, and retries a
grasp that slipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from so101lab.contract import CONTROL_DT, lerobot_to_radians, radians_to_lerobot
from so101lab.envs.base import SO101Env
from so101lab.envs.ik import TcpIK, top_down_rotation

GRIPPER_OPEN = 35.0  # LeRobot gripper units: a ~55 mm jaw gap
GRIPPER_CLOSED = 0.0  # commanded fully shut; the cube stops the jaw and the servo squeezes
GRASP_ABOVE_CENTER = 0.006  # m: tcp above the cube centre so the fingertips clear the table
HOVER = 0.045  # m above a grasp or release point (pointing straight down is reachable to ~0.1 m)
LIFT = 0.07  # m a grasped cube is lifted before it is carried
SPEED = 0.25  # m/s along a path
MIN_SEGMENT = 0.4  # s
SETTLE_STEPS = 15  # at most this many control steps waiting for the servos to arrive


@dataclass
class Pick:
    """Pick `cube` and, if `place` is given, release it at the tcp position `place()` returns."""

    cube: str
    place: Callable[[], np.ndarray] | None = None


def min_jerk(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


class ScriptedExpert:
    """Runs a task's plan. `act(obs)` reads the simulator through the env and returns joint targets."""

    def __init__(self, env: SO101Env):
        self.env = env
        self.ik = TcpIK(env.model)
        self._last_time: float | None = None

    def reset(self) -> None:
        """Start the plan of the env's current episode (called by `act` when a new episode begins)."""
        self.plan = self.env.expert_plan()
        self._segments: list[tuple] = []  # queued (kind, payload) steps
        self._pick_index = 0
        self._retries = 0
        self._path: tuple[np.ndarray, np.ndarray, float, float, float] | None = None
        self._wait = 0
        self._q = self.env.data.qpos[self.env.qpos_adr].copy()
        self._gripper = radians_to_lerobot(self._q)[5]
        self._pos = self.env.tcp_position
        self._yaw = self._current_yaw()
        self._hold = None

    # ---- planning --------------------------------------------------------------------------
    def _current_yaw(self) -> float:
        x = self.env.data.site_xmat[self.env.tcp_site].reshape(3, 3)[:, 0]
        return float(np.arctan2(x[1], x[0]))

    def _grasp_yaw(self, cube: str) -> float:
        """The cube face direction (mod 90 deg) closest to the gripper's present yaw."""
        w, _, _, z = self.env.object_pose(cube)[3:]
        cube_yaw = 2 * np.arctan2(z, w)
        k = np.round((self._yaw - cube_yaw) / (np.pi / 2))
        return float(cube_yaw + k * np.pi / 2)

    def _plan_pick(self, pick: Pick) -> None:
        cube = self.env.object_pose(pick.cube)[:3]
        grasp = cube + (0, 0, GRASP_ABOVE_CENTER)
        yaw = self._grasp_yaw(pick.cube)
        self._segments += [
            ("gripper", GRIPPER_OPEN),
            ("move", (grasp + (0, 0, HOVER), yaw)),
            ("move", (grasp, yaw)),
            ("settle", (grasp, SETTLE_STEPS)),
            ("gripper", GRIPPER_CLOSED),
            ("move", (grasp + (0, 0, LIFT), yaw)),
            ("check", pick),
        ]

    def _plan_place(self, pick: Pick) -> None:
        target = pick.place()
        self._segments += [
            ("move", (target + (0, 0, HOVER), self._yaw)),
            ("move", (target, self._yaw)),
            ("settle", (target, SETTLE_STEPS)),
            ("gripper", GRIPPER_OPEN),
            ("move", (target + (0, 0, HOVER), self._yaw)),
            ("next", None),
        ]

    # ---- acting ----------------------------------------------------------------------------
    def act(self, obs: dict | None = None) -> np.ndarray:
        if self._last_time is None or self.env.data.time < self._last_time:
            self.reset()
        self._last_time = self.env.data.time
        if self._path is None and self._wait == 0:
            self._advance()
        if self._wait > 0:
            self._wait -= 1
        elif self._path is not None:
            start, goal, yaw0, yaw1, duration, t = self._path
            t += CONTROL_DT
            s = min_jerk(t / duration)
            self._pos = start + s * (goal - start)
            self._yaw = yaw0 + s * (yaw1 - yaw0)
            self._path = None if t >= duration else (start, goal, yaw0, yaw1, duration, t)
        q_arm, _ = self.ik.solve(self._q, self._pos, top_down_rotation(self._yaw))
        self._q[:5] = q_arm
        action = radians_to_lerobot(self._q)
        action[5] = self._gripper
        return action.astype(np.float32)

    def _advance(self) -> None:
        while not self._segments:
            if self._pick_index >= len(self.plan):
                return  # plan done: hold the last pose
            self._plan_pick(self.plan[self._pick_index])
        kind, payload = self._segments.pop(0)
        if kind == "gripper":
            self._gripper = payload
            self._wait = 12  # ~0.4 s for the jaw to travel and grip
        elif kind == "move":
            goal, yaw = payload
            distance = np.linalg.norm(goal - self._pos) + 0.05 * abs(yaw - self._yaw)
            self._path = (self._pos.copy(), np.asarray(goal, float), self._yaw, yaw,
                          max(distance / SPEED, MIN_SEGMENT), 0.0)
        elif kind == "settle":
            # Wait (bounded) until the real tcp is within 4 mm of the target despite servo lag.
            target, remaining = payload
            if np.linalg.norm(self.env.tcp_position - target) > 0.004 and remaining > 0:
                self._segments.insert(0, ("settle", (target, remaining - 1)))
                self._wait = 1
        elif kind == "check":
            pick: Pick = payload
            lifted = self.env.object_pose(pick.cube)[2] > 0.0125 + 0.02
            if not lifted and self._retries < 3:
                self._retries += 1
                self._plan_pick(pick)
            elif pick.place is not None:
                self._plan_place(pick)
            else:
                self._segments.append(("next", None))
        elif kind == "next":
            self._pick_index += 1
