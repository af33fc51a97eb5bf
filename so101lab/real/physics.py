"""The physics moving the virtual arm's joints (rad), behind one small interface.

`MujocoPhysics` drives an SO-101 MuJoCo env through the project's servo model (`envs/servo.py`),
so the virtual arm moves like the sim: there is no second, simpler servo model to drift from it.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from so101lab.contract import JOINT_NAMES, JOINT_RANGES_RAD

_LIMITS = np.array([JOINT_RANGES_RAD[n] for n in JOINT_NAMES])


class PhysicsBackend(Protocol):
    """What the virtual arm needs from a physics engine (joint order of the contract)."""

    lock: threading.RLock

    @property
    def stall_torque(self) -> float:
        """Torque at full drive (N m): what Present_Load reports as 1000."""
        ...

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

    def configure(self, p_gains: np.ndarray, torque_limits: np.ndarray) -> None:
        """Firmware P gain and torque limit (fraction of the maximum) of each servo."""
        ...


def scene_physics(task: str = "PickCube", seed: int = 0) -> MujocoPhysics:
    """The arm of a sim task's scene (state observations only, no renderer), reset with ``seed``."""
    import gymnasium as gym

    from so101lab.real.virtual_world import task_env_id

    env = gym.make(task_env_id(task), obs_mode="state")
    env.reset(seed=seed)
    return MujocoPhysics(env)


class MujocoPhysics:
    """The joints of a simulated SO-101 env, moved by the project's servo model in real time."""

    max_lag = 0.1  # s of physics skipped rather than replayed if the caller fell this far behind

    def __init__(self, env: object):
        sim = getattr(env, "unwrapped", env)
        for attr in ("model", "data", "servos"):
            if not hasattr(sim, attr):
                raise TypeError(f"MujocoPhysics needs an so101lab sim env (with .{attr}), "
                                f"got {type(sim).__name__}")
        import mujoco

        self._mujoco = mujoco
        self.env = sim
        self.model, self.data, self.servos = sim.model, sim.data, sim.servos
        self.lock = threading.RLock()
        self._pending = 0.0
        self._targets: np.ndarray | None = None
        self._held: dict[int, float] = {}  # joints a hand holds (torque off), rad

    @property
    def stall_torque(self) -> float:
        return self.servos.params.force_limit

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.servos
        return (self.data.qpos[s.qpos_adr].copy(), self.data.qvel[s.dof_adr].copy(),
                self.data.actuator_force[s.actuator_ids].copy())

    def command(self, targets: np.ndarray, torque_on: np.ndarray) -> None:
        torque_on = np.asarray(torque_on, dtype=bool)
        if not np.array_equal(torque_on, self.servos.torque_on):
            self.servos.set_torque(self.data, torque_on)
        if self._targets is None or not np.array_equal(targets, self._targets):
            self._targets = np.asarray(targets, dtype=np.float64).copy()
            # Sent now on the wall clock = `_pending` s after the simulated time: act mid-step.
            self.servos.command(self.data, self._targets, sent_at=self.data.time + self._pending)

    def advance(self, dt: float) -> None:
        self._pending = min(self._pending + dt, self.max_lag)
        h = self.model.opt.timestep
        steps = int(self._pending / h)
        self.servos.step(self.data, steps)
        self._pending -= steps * h
        self._hold()

    def push(self, joint: int, angle: float) -> None:
        """The hand keeps holding the joint there (against gravity) until its torque comes on."""
        if not self.servos.torque_on[joint]:
            self._held[joint] = float(np.clip(angle, *_LIMITS[joint]))
            self._hold()
            self._mujoco.mj_forward(self.model, self.data)

    def _hold(self) -> None:
        for joint, angle in list(self._held.items()):
            if self.servos.torque_on[joint]:
                del self._held[joint]
                continue
            self.data.qpos[self.servos.qpos_adr[joint]] = angle
            self.data.qvel[self.servos.dof_adr[joint]] = 0.0

    def configure(self, p_gains: np.ndarray, torque_limits: np.ndarray) -> None:
        """Per-joint firmware P and torque limit into the servo model (as the registers say)."""
        s = self.servos
        p_gains = np.maximum(np.asarray(p_gains, dtype=np.float64), 1.0)  # P 0 would be no servo
        torque_limits = np.clip(np.asarray(torque_limits, dtype=np.float64), 1e-3, 1.0)
        current = s.p_gain_override if s.p_gain_override is not None else s.p_gains
        if np.array_equal(current, p_gains) and np.array_equal(s.torque_limit, torque_limits):
            return
        s.p_gain_override = p_gains.copy()
        s.torque_limit = torque_limits.copy()
        s.apply_params()

    def reset_targets(self) -> None:
        """Forget the last goals and let go of held joints (after the sim env was reset under this backend)."""
        self._targets = None
        self._held.clear()
