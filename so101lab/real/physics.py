"""Physics backends moving the virtual arm's joints (rad), behind one small interface.

`FirstOrderPhysics` needs nothing but numpy (each joint chases its goal); `MujocoPhysics` drives
an SO-101 MuJoCo env through the project's servo model, so the virtual arm moves like the sim.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from so101lab.contract import JOINT_NAMES, JOINT_RANGES_RAD, NUM_JOINTS

_LIMITS = np.array([JOINT_RANGES_RAD[n] for n in JOINT_NAMES])


class PhysicsBackend(Protocol):
    """What the virtual arm needs from a physics engine (joint order of the contract)."""

    lock: threading.RLock

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Joint positions (rad), velocities (rad/s) and actuator efforts (N m)."""
        ...

    def command(self, targets: np.ndarray, torque_on: np.ndarray) -> None:
        """Goal angles (rad) and which servos hold torque."""
        ...

    def advance(self, dt: float) -> None:
        """Move time forward by ``dt`` seconds."""
        ...

    def push(self, joint: int, angle: float) -> None:
        """A hand moving a joint whose torque is off (used to calibrate and to drive a leader arm)."""
        ...


class FirstOrderPhysics:
    """Each joint with torque on approaches its goal with time constant ``tau`` and a speed cap."""

    def __init__(self, q0: np.ndarray | None = None, tau: float = 0.05, max_speed: float = 5.5,
                 stiffness: float = 998.22, force_limit: float = 3.35):
        self.lock = threading.RLock()
        self.q = np.zeros(NUM_JOINTS) if q0 is None else np.asarray(q0, dtype=np.float64).copy()
        self.qd = np.zeros(NUM_JOINTS)
        self.effort = np.zeros(NUM_JOINTS)
        self.targets = self.q.copy()
        self.torque_on = np.zeros(NUM_JOINTS, dtype=bool)
        self.tau, self.max_speed = tau, max_speed
        self.stiffness, self.force_limit = stiffness, force_limit

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.q.copy(), self.qd.copy(), self.effort.copy()

    def command(self, targets: np.ndarray, torque_on: np.ndarray) -> None:
        self.targets = np.asarray(targets, dtype=np.float64).copy()
        self.torque_on = np.asarray(torque_on, dtype=bool).copy()

    def advance(self, dt: float) -> None:
        if dt <= 0:
            return
        err = self.targets - self.q
        step = err * (1.0 - np.exp(-dt / self.tau))
        step = np.clip(step, -self.max_speed * dt, self.max_speed * dt)
        step[~self.torque_on] = 0.0
        self.q = np.clip(self.q + step, _LIMITS[:, 0], _LIMITS[:, 1])
        self.qd = step / dt
        self.effort = np.where(self.torque_on, np.clip(self.stiffness * err, -self.force_limit,
                                                       self.force_limit), 0.0)

    def push(self, joint: int, angle: float) -> None:
        if not self.torque_on[joint]:
            self.q[joint] = np.clip(angle, *_LIMITS[joint])
