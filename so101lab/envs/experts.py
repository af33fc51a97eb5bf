"""Scripted experts: pick-and-place plans turned into smooth 30 Hz joint targets, as a teleoperator's.

A task describes its plan as a list of `Pick`s (which cube, where to put it). The expert moves the
tool centre point and the gripper between waypoints along minimum-jerk paths at a human pace,
solves IK each control step, waits for the servos to arrive before closing or opening the
gripper, aims the cube (not the tool) at its target, and retries a grasp that slipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from so101lab.contract import CONTROL_DT, radians_to_lerobot
from so101lab.envs.base import SO101Env
from so101lab.envs.ik import TcpIK, top_down_rotation
from so101lab.envs.tasks.common import CUBE_HALF, TABLE_Z

GRIPPER_OPEN = 35.0  # LeRobot gripper units: a ~55 mm jaw gap
GRIPPER_CLOSED = 0.0  # commanded fully shut; the cube stops the jaw and the servo squeezes
GRIPPER_SECONDS = 0.6  # a teleoperator closes or opens the jaw over about this long
GRASP_ABOVE_CENTER = 0.006  # m: tcp above the cube centre so the fingertips clear the table
FIXED_JAW_CLEARANCE = 0.004  # m: descend with the fixed jaw this far clear of the cube; closing
# the moving jaw then slides the cube onto the fixed one
HOVER = 0.045  # m above a grasp or release point (pointing straight down is reachable to ~0.1 m)
LIFT = 0.07  # m a grasped cube is lifted before it is carried
SPEED = 0.25  # m/s along a path
JOINT_SPEED = 1.5  # rad/s of the fastest joint on the first, joint-space move
MIN_SEGMENT = 0.4  # s
ARRIVE_TOLERANCE = 0.004  # m between the tool and its waypoint before the jaw acts
MAX_WAIT_STEPS = 20  # control steps to wait for the arm to arrive or the jaw to stop
MAX_RETRIES = 3


@dataclass
class Pick:
    """Pick `cube` and, if `place` is given, release it so its centre ends up at `place()`
    (a tcp-height point: the cube centre plus the grasp offset above it)."""

    cube: str
    place: Callable[[], np.ndarray] | None = None


@dataclass
class Waypoint:
    """Where the tool and jaw should be at the end of a segment, and what to wait for there."""

    position: np.ndarray
    yaw: float
    gripper: float
    wait_arrival: bool = False  # hold until the real tool is at `position`
    wait_jaw: bool = False  # hold until the jaw has stopped moving (gripped, or fully open)


class ExecutionNoise:
    """DART-style perturbation for collecting demonstrations.

    The arm executes the expert's targets plus a slowly drifting offset on the five arm joints
    (an Ornstein-Uhlenbeck process: ``degrees`` standard deviation, ``seconds`` correlation
    time) while the dataset records the expert's own targets. The demonstrations then show how to
    get back onto the path from the kind of errors a learned policy makes, not only the path.
    The gripper is never perturbed.
    """

    def __init__(self, degrees: float, seconds: float, seed: int):
        if degrees < 0 or seconds <= 0:
            raise ValueError(f"execution noise needs degrees >= 0 and seconds > 0, got {degrees}, {seconds}")
        self.degrees = degrees
        self.keep = float(np.exp(-CONTROL_DT / seconds))
        self.rng = np.random.default_rng(seed)
        self.offset = self.rng.normal(0.0, degrees, 5)

    def __call__(self, action: np.ndarray) -> np.ndarray:
        """The action to execute in place of the expert's ``action``."""
        fresh = self.rng.normal(0.0, self.degrees, 5)
        self.offset = self.keep * self.offset + np.sqrt(1 - self.keep**2) * fresh
        executed = np.array(action, dtype=np.float32)
        executed[:5] += self.offset
        return executed


def min_jerk(s: float) -> float:
    s = min(max(s, 0.0), 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


class ScriptedExpert:
    """Runs a task's plan. `act(obs)` reads the simulator through the env and returns joint targets.

    Call `reset()` after every `env.reset()`: it reads the new episode's plan. A caller that does
    not is still served: `act` replans when the sim clock went back, or when the env stands at
    time 0 in another state than the one planned from (a second reset without a step in between).
    """

    def __init__(self, env: SO101Env):
        self.env = env
        self.ik = TcpIK(env.model)
        self._last_time: float | None = None
        self._planned_qpos: np.ndarray | None = None

    def reset(self) -> None:
        """Plan the episode the env was just reset to (objects as they are placed now)."""
        self._planned_qpos = self.env.data.qpos.copy()
        self._last_time = self.env.data.time
        self.plan = self.env.expert_plan()
        self.retries = 0
        self._pick_index = 0
        self._queue: list[Waypoint | Callable[[], None]] = []
        self._q = self.env.data.qpos[self.env.qpos_adr].copy()
        x_axis = self.env.data.site_xmat[self.env.tcp_site].reshape(3, 3)[:, 0]
        self._now = Waypoint(self.env.tcp_position, float(np.arctan2(x_axis[1], x_axis[0])),
                             float(radians_to_lerobot(self._q)[5]))
        self._segment: tuple[Waypoint, Waypoint, float] | None = None  # start, goal, duration
        self._t = 0.0
        self._waited = 0
        # From the rest pose (not pointing down) to above the first cube: a joint-space move, as
        # the tool's orientation changes too much for a straight Cartesian path.
        self._plan_pick()
        first = self._queue.pop(0)
        q_goal, _ = self.ik.solve(self.ik.elbow_up, first.position, top_down_rotation(first.yaw), iterations=200)
        delta = np.abs(q_goal - self._q[:5]).max()
        self._joint_move = (self._q[:5].copy(), q_goal, max(delta / JOINT_SPEED, MIN_SEGMENT), 0.0)
        self._now = Waypoint(first.position, first.yaw, first.gripper)

    # ---- planning --------------------------------------------------------------------------
    def _grasp_yaw(self, cube: str) -> float:
        """The cube face direction (mod 90 deg) closest to the gripper's present yaw."""
        w, _, _, z = self.env.object_pose(cube)[3:]
        cube_yaw = 2 * np.arctan2(z, w)
        k = np.round((self._now.yaw - cube_yaw) / (np.pi / 2))
        return float(cube_yaw + k * np.pi / 2)

    def _plan_pick(self) -> None:
        pick = self.plan[self._pick_index]
        cube = self.env.object_pose(pick.cube)[:3]
        yaw = self._grasp_yaw(pick.cube)
        jaw_axis = np.array([np.cos(yaw), np.sin(yaw), 0.0])  # from the fixed to the moving jaw
        grasp = cube + (0, 0, GRASP_ABOVE_CENTER) - FIXED_JAW_CLEARANCE * jaw_axis
        up = np.array([0.0, 0.0, 1.0])
        self._queue += [
            Waypoint(grasp + HOVER * up, yaw, GRIPPER_OPEN, wait_jaw=True),
            Waypoint(grasp, yaw, GRIPPER_OPEN, wait_arrival=True),
            Waypoint(grasp, yaw, GRIPPER_CLOSED, wait_jaw=True),
            Waypoint(grasp + LIFT * up, yaw, GRIPPER_CLOSED),
            self._after_lift,
        ]

    def _after_lift(self) -> None:
        pick = self.plan[self._pick_index]
        cube = self.env.object_pose(pick.cube)[:3]
        if cube[2] < TABLE_Z + CUBE_HALF + 0.02:  # the grasp slipped: try again
            if self.retries < MAX_RETRIES:
                self.retries += 1
                self._plan_pick()
                return
        elif pick.place is not None:
            # Aim the cube, not the tool: correct for where the cube actually sits in the grasp.
            in_hand = self.env.tcp_position - cube
            target = pick.place() + (in_hand[0], in_hand[1], 0.0)
            up = np.array([0.0, 0.0, 1.0])
            yaw = self._now.yaw
            self._queue += [
                Waypoint(target + HOVER * up, yaw, GRIPPER_CLOSED),
                Waypoint(target, yaw, GRIPPER_CLOSED, wait_arrival=True),
                Waypoint(target, yaw, GRIPPER_OPEN, wait_jaw=True),
                Waypoint(target + HOVER * up, yaw, GRIPPER_OPEN),
            ]
        self._queue.append(self._next_pick)

    def _next_pick(self) -> None:
        self._pick_index += 1
        self.retries = 0

    # ---- acting ----------------------------------------------------------------------------
    def _env_was_reset(self) -> bool:
        data = self.env.data
        if self._last_time is None or data.time < self._last_time:
            return True
        return data.time == 0.0 and not np.array_equal(data.qpos, self._planned_qpos)

    def act(self, obs: dict | None = None) -> np.ndarray:
        """The next joint targets (LeRobot units) of the plan."""
        if self._env_was_reset():
            self.reset()
        self._last_time = self.env.data.time
        if self._joint_move is not None:
            start, goal, duration, t = self._joint_move
            t += CONTROL_DT
            self._q[:5] = start + min_jerk(t / duration) * (goal - start)
            self._joint_move = None if t >= duration else (start, goal, duration, t)
        else:
            if self._segment is None:
                self._start_next_segment()
            if self._segment is not None:
                self._follow_segment()
            q_arm, _ = self.ik.solve(self._q, self._now.position, top_down_rotation(self._now.yaw))
            self._q[:5] = q_arm
        action = radians_to_lerobot(self._q)
        action[5] = self._now.gripper
        return action.astype(np.float32)

    def _start_next_segment(self) -> None:
        while self._segment is None:
            if not self._queue:
                if self._pick_index >= len(self.plan):
                    return  # plan done: hold the last pose
                self._plan_pick()
            item = self._queue.pop(0)
            if callable(item):
                item()
                continue
            distance = np.linalg.norm(item.position - self._now.position) + 0.05 * abs(item.yaw - self._now.yaw)
            duration = max(distance / SPEED, MIN_SEGMENT,
                           GRIPPER_SECONDS * abs(item.gripper - self._now.gripper) / GRIPPER_OPEN)
            start = Waypoint(self._now.position.copy(), self._now.yaw, self._now.gripper)
            self._segment, self._t, self._waited = (start, item, duration), 0.0, 0

    def _follow_segment(self) -> None:
        start, goal, duration = self._segment
        if self._t < duration:
            self._t += CONTROL_DT
            s = min_jerk(self._t / duration)
            self._now = Waypoint(start.position + s * (goal.position - start.position),
                                 start.yaw + s * (goal.yaw - start.yaw),
                                 start.gripper + s * (goal.gripper - start.gripper))
            return
        arrived = np.linalg.norm(self.env.tcp_position - goal.position) < ARRIVE_TOLERANCE
        jaw_still = abs(self.env.data.qvel[self.env.servos.dof_adr[5]]) < 0.05
        waiting = (goal.wait_arrival and not arrived) or (goal.wait_jaw and not jaw_still)
        if waiting and self._waited < MAX_WAIT_STEPS:
            self._waited += 1
        else:
            self._segment = None
