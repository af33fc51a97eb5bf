"""The STS3215 servo model, used wherever a servo is simulated (sim envs, the virtual arm).

MuJoCo elements carry what they can (position actuator gain from the firmware P gain, damping
gain, force limit, joint damping, armature, friction loss); a thin control-side layer adds what
MuJoCo lacks: command latency, the firmware's speed-limited slew of the goal, and torque off.
"""

from __future__ import annotations

import dataclasses
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np


@dataclass(frozen=True)
class ServoParams:
    """Parameters of one STS3215 position servo (SI units, joint side)."""

    p_gain: float = 16.0  # firmware P_Coefficient
    kp_per_p: float = 998.22 / 16.0  # actuator stiffness (N m/rad) per unit of firmware P
    kv: float = 2.731  # actuator velocity gain (N m s/rad)
    force_limit: float = 3.35  # N m
    damping: float = 0.60  # joint damping (N m s/rad), also acting with torque off
    armature: float = 0.028  # reflected rotor inertia (kg m^2)
    frictionloss: float = 0.052  # N m
    latency: float = 0.0  # s from command to the servo acting on it
    max_velocity: float = float("inf")  # rad/s: firmware slew limit of the goal

    @property
    def kp(self) -> float:
        return self.kp_per_p * self.p_gain

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> ServoParams:
        data = json.loads(Path(path).read_text())
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown servo parameters {sorted(unknown)}")
        return cls(**data)


class Servos:
    """The servos driving a set of joints of one MjModel, stepped at the physics rate."""

    def __init__(self, model: mujoco.MjModel, joint_names: tuple[str, ...], params: ServoParams,
                 physics_dt: float, torque_limit: np.ndarray | None = None):
        """`torque_limit`: per joint, the fraction of `force_limit` allowed (the Max_Torque_Limit
        register / 1000); LeRobot halves the gripper's to protect it when it closes on an object."""
        self.model = model
        self.params = params
        self.torque_limit = np.ones(len(joint_names)) if torque_limit is None else np.asarray(torque_limit, float)
        self.joint_ids = np.array([model.joint(n).id for n in joint_names])
        self.actuator_ids = np.array([model.actuator(n).id for n in joint_names])
        self.qpos_adr = model.jnt_qposadr[self.joint_ids]
        self.dof_adr = model.jnt_dofadr[self.joint_ids]
        self.physics_dt = physics_dt
        self.apply_params()
        n = len(joint_names)
        self.torque_on = np.ones(n, dtype=bool)
        self._goal = np.zeros(n)
        self._queue: deque[tuple[float, np.ndarray]] = deque()
        self._pending = np.zeros(n)

    def apply_params(self, params: ServoParams | None = None) -> None:
        """Write gains and joint properties into the MjModel (also used by domain randomisation)."""
        p = self.params = params or self.params
        m = self.model
        for a, fraction in zip(self.actuator_ids, self.torque_limit):
            m.actuator_gainprm[a, 0] = p.kp
            m.actuator_biasprm[a, :3] = (0.0, -p.kp, -p.kv)
            m.actuator_forcerange[a] = (-p.force_limit * fraction, p.force_limit * fraction)
            m.actuator_forcelimited[a] = 1
        m.dof_damping[self.dof_adr] = p.damping
        m.dof_armature[self.dof_adr] = p.armature
        m.dof_frictionloss[self.dof_adr] = p.frictionloss

    def reset(self, data: mujoco.MjData) -> None:
        """Hold the current pose: goals and pending commands at the present joint positions."""
        q = data.qpos[self.qpos_adr].copy()
        self._goal[:] = q
        self._pending[:] = q
        self._queue.clear()
        self.set_torque(data, True)

    def command(self, data: mujoco.MjData, targets: np.ndarray) -> None:
        """Send goal positions (rad); they take effect after the latency."""
        self._queue.append((data.time + self.params.latency, np.asarray(targets, dtype=np.float64).copy()))

    def set_torque(self, data: mujoco.MjData, enabled: bool | np.ndarray) -> None:
        """Torque off leaves the joint free (only damping and friction); on holds the present pose."""
        enabled = np.broadcast_to(np.asarray(enabled, dtype=bool), self.torque_on.shape)
        turned_on = enabled & ~self.torque_on
        q = data.qpos[self.qpos_adr]
        self._goal[turned_on] = q[turned_on]
        self._pending[turned_on] = q[turned_on]
        self.torque_on[:] = enabled
        kp = np.where(enabled, self.params.kp, 0.0)
        kv = np.where(enabled, self.params.kv, 0.0)
        self.model.actuator_gainprm[self.actuator_ids, 0] = kp
        self.model.actuator_biasprm[self.actuator_ids, 1] = -kp
        self.model.actuator_biasprm[self.actuator_ids, 2] = -kv

    def substep(self, data: mujoco.MjData) -> None:
        """Advance the servo firmware by one physics step: take due commands, slew, write ctrl."""
        while self._queue and self._queue[0][0] <= data.time + 1e-9:
            self._pending = self._queue.popleft()[1]
        step = self.params.max_velocity * self.physics_dt
        self._goal += np.clip(self._pending - self._goal, -step, step)
        data.ctrl[self.actuator_ids] = self._goal
