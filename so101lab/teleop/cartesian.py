"""Cartesian teleoperation of a sim arm: the tool's target pose moves with the operator's command,
and IK (`so101lab.envs.ik.TcpIK`) turns it into the joint targets an SO-101 action holds.

The target starts at the tool's pose when the episode starts; position moves in the world frame,
pitch about the tool's own axis, yaw about the vertical. A 5-joint arm cannot hold a fixed
orientation while the tool moves sideways, so the orientation turns with the tool's bearing from
the shoulder_pan axis, and yaw is an offset to that. It stays inside a box in front of the
arm above the table, and where IK cannot follow (out of reach) it is pulled back to the pose IK
reached, so holding a key against a limit never winds up a target the arm would then lunge at.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from so101lab.contract import CONTROL_DT, radians_to_lerobot
from so101lab.envs.base import SO101Env
from so101lab.envs.ik import TcpIK
from so101lab.teleop.inputs import InputSource, TeleopCommand

# The tool's reachable box (m, base frame: x forward, y left, z up from the table).
WORKSPACE = (np.array([0.05, -0.30, 0.01]), np.array([0.45, 0.30, 0.35]))
FOLLOW_TOLERANCE = 0.01  # m: a target farther than this from what IK reached is pulled back


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


class CartesianTeleop:
    """Turns `TeleopCommand`s into joint targets (LeRobot units) for a sim env's arm."""

    def __init__(self, env: SO101Env, workspace: tuple[np.ndarray, np.ndarray] = WORKSPACE):
        self.env = env
        self.ik = TcpIK(env.model)
        self.workspace = workspace
        self.reset()

    def reset(self) -> None:
        """Take the tool's present pose and gripper as the target (call after each env reset)."""
        data = self.env.data
        self.q = data.qpos[self.env.qpos_adr].copy()
        self.position = self.env.tcp_position
        self.rotation0 = data.site_xmat[self.env.tcp_site].reshape(3, 3).copy()
        self.yaw = self.pitch = 0.0
        self.gripper = float(radians_to_lerobot(self.q)[5])
        self.pan_axis = data.xanchor[self.env.model.joint("shoulder_pan").id][:2].copy()
        self.bearing0 = self._bearing(self.position)

    def _bearing(self, position: np.ndarray) -> float:
        x, y = position[:2] - self.pan_axis
        return float(np.arctan2(y, x))

    @property
    def rotation(self) -> np.ndarray:
        turn = self._bearing(self.position) - self.bearing0 + self.yaw
        return _rot_z(turn) @ self.rotation0 @ _rot_y(self.pitch)

    def act(self, command: TeleopCommand) -> np.ndarray:
        """The joint targets (6, LeRobot units) of the next 30 Hz tick."""
        target = np.clip(self.position + command.velocity * CONTROL_DT, *self.workspace)
        self.yaw += command.yaw_rate * CONTROL_DT
        self.pitch = float(np.clip(self.pitch + command.pitch_rate * CONTROL_DT, -1.2, 1.2))
        previous, self.position = self.position, target
        q_arm, error = self.ik.solve(self.q[:5], target, self.rotation, iterations=30)
        if error >= FOLLOW_TOLERANCE:  # out of reach: hold where IK got to, do not wind up
            self.position = self.ik.data.site_xpos[self.ik.site].copy()
            if np.linalg.norm(self.position - previous) > np.linalg.norm(target - previous):
                self.position = previous
        self.q[:5] = q_arm
        if command.gripper is not None:
            self.gripper = float(command.gripper)
        action = radians_to_lerobot(self.q)
        action[5] = self.gripper
        return action.astype(np.float32)


class TeleopOperator:
    """A recording operator: each tick, an input device's events -> a command -> joint targets."""

    def __init__(self, env: SO101Env, source: InputSource, mapper: Callable[[list], TeleopCommand]):
        self.source, self.mapper = source, mapper
        self.teleop = CartesianTeleop(env)
        self._controls: set[str] = set()

    def reset(self) -> None:
        self.teleop.reset()

    def act(self, obs: dict) -> np.ndarray:
        command = self.mapper(self.source.poll())
        self._controls |= command.controls
        return self.teleop.act(command)

    def controls(self) -> set[str]:
        controls, self._controls = self._controls, set()
        return controls
