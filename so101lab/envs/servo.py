"""The STS3215 servo model, used wherever a servo is simulated (sim envs, the virtual arm, sysid).

The firmware drives the motor voltage in proportion to the position error (gain P, saturating
at the supply) and the motor's back-EMF brakes it in proportion to speed, so the joint sees
``clip(kp * (goal - q), +-force_limit) - damping * qdot``: a MuJoCo position actuator with a
force range plus joint damping. Armature (rotor inertia through the 1/345 gearbox) and friction
loss are MuJoCo joint elements too. A thin control-side layer adds what MuJoCo lacks: command
latency, the firmware's optional speed-limited slew of the goal, and torque off (no drive, and
no back-EMF braking since the driver floats the motor, so the joint swings with less damping).

The defaults are identified on a real STS3215 (12 V) pendulum bench (`so101lab sysid`, see
docs/sysid.md) and are joint-side figures valid for any joint with the follower's 1/345 gearing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from so101lab.envs import firmware


@dataclass(frozen=True)
class ServoParams:
    """Parameters of one STS3215 position servo (SI units, joint side)."""

    p_gain: float = 16.0  # firmware P_Coefficient (LeRobot writes 16)
    kp_per_p: float = 1.438  # actuator stiffness (N m/rad) per unit of firmware P
    kv: float = 0.615  # velocity gain inside the saturation (N m s/rad); bench firmware D = 0
    force_limit: float = 5.88  # N m: torque at full drive (stall)
    damping: float = 0.774  # joint damping with torque on (N m s/rad): back-EMF plus gearbox
    damping_off: float = 0.0665  # joint damping with torque off (N m s/rad): gearbox only
    armature: float = 0.0243  # reflected rotor inertia (kg m^2)
    frictionloss: float = 0.0982  # N m: gearbox Coulomb friction at no load
    friction_load: float = 0.265  # extra friction per N m the motor transmits (gear efficiency)
    latency: float = 0.0291  # s from a command being sent to the servo acting on it
    max_velocity: float = 4.93  # rad/s: firmware slew limit of the goal (inf: none)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise ValueError(f"servo parameter {f.name} must be a number >= 0, got {value!r}")
            if math.isinf(value) and f.name != "max_velocity":
                raise ValueError(f"servo parameter {f.name} must be finite, got {value!r}")
        if self.p_gain <= 0 or self.max_velocity <= 0:
            raise ValueError(f"p_gain and max_velocity must be > 0, got {self.p_gain}, {self.max_velocity}")

    @property
    def kp(self) -> float:
        return self.kp_per_p * self.p_gain

    def to_dict(self) -> dict[str, float | None]:
        """Plain JSON values; an unlimited `max_velocity` is written as null."""
        return {k: (None if math.isinf(v) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict, source: str = "servo parameters") -> ServoParams:
        """Missing fields take their defaults, so older files still load; unknown ones are errors."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{source}: unknown servo parameters {sorted(unknown)}")
        values = {k: (math.inf if k == "max_velocity" and v is None else v) for k, v in data.items()}
        return cls(**values)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ServoParams:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of servo parameters")
        return cls.from_dict(data, str(path))


class Servos:
    """The servos driving a set of joints of one MjModel, stepped at the physics rate.

    Per joint: `torque_limit` is the fraction of `force_limit` allowed (the Max_Torque_Limit
    register / 1000; LeRobot halves the gripper's to protect it when it closes on an object) and
    `p_gain` overrides the firmware P of `params` (None: `params.p_gain` everywhere).

    Commands in flight wait in a ring of `capacity` slots (due time, targets) that `substep` and
    the compiled firmware (`so101lab.envs.firmware`) share.
    """

    def __init__(self, model: mujoco.MjModel, joint_names: tuple[str, ...], params: ServoParams,
                 physics_dt: float, torque_limit: np.ndarray | None = None,
                 p_gain: np.ndarray | None = None, capacity: int = 64):
        n = len(joint_names)
        if not 0 < n <= firmware.MAX_SERVOS:
            raise ValueError(f"Servos drive 1 to {firmware.MAX_SERVOS} joints, got {n}")
        self.model = model
        self.joint_ids = np.array([model.joint(name).id for name in joint_names])
        self.actuator_ids = np.array([model.actuator(name).id for name in joint_names], dtype=np.int64)
        self.qpos_adr = model.jnt_qposadr[self.joint_ids]
        self.dof_adr = model.jnt_dofadr[self.joint_ids].astype(np.int64)
        if physics_dt <= 0:
            raise ValueError(f"physics_dt must be > 0, got {physics_dt}")
        self.physics_dt = physics_dt
        self.torque_limit = self._per_joint("torque_limit", torque_limit, 1.0, n)
        self.p_gain_override = None if p_gain is None else self._per_joint("p_gain", p_gain, 1.0, n)
        self.torque_on = np.ones(n, dtype=bool)
        self._goal = np.zeros(n)  # what the firmware regulates to (after latency and slew)
        self._pending = np.zeros(n)  # the latest command that has arrived
        self._due = np.zeros(capacity)  # ring of commands in flight: when each takes effect,
        self._commands = np.zeros((capacity, n))  # its targets,
        self._ring = np.zeros(2, dtype=np.int64)  # and the ring's head and count
        self._firmware = firmware.load(self)  # None where the C library was not built
        self.apply_params(params)

    @staticmethod
    def _per_joint(name: str, value: np.ndarray | None, default: float, n: int) -> np.ndarray:
        array = np.full(n, default) if value is None else np.asarray(value, dtype=np.float64)
        if array.shape != (n,) or not np.all(np.isfinite(array)) or np.any(array <= 0):
            raise ValueError(f"{name} must be {n} positive numbers (one per joint), got {value!r}")
        return array

    @property
    def p_gains(self) -> np.ndarray:
        """Firmware P of each joint."""
        return np.full(len(self.joint_ids), self.params.p_gain) if self.p_gain_override is None \
            else self.p_gain_override

    @property
    def compiled(self) -> bool:
        """Whether `step` runs the compiled firmware (else the Python reference, same results)."""
        return self._firmware is not None

    @property
    def compiled_firmware(self) -> firmware.CompiledFirmware | None:
        """The compiled firmware `step` runs, or None while the Python reference runs."""
        return self._firmware

    @compiled.setter
    def compiled(self, value: bool) -> None:
        if value and self._firmware is None:
            self._firmware = firmware.load(self)
            if self._firmware is None:
                raise RuntimeError("the C servo firmware was not built: reinstall so101lab with a C compiler")
            self._firmware.set_params()
        elif not value:
            self._firmware = None

    def apply_params(self, params: ServoParams | None = None) -> None:
        """Write gains and joint properties into the MjModel (also used by domain randomisation)."""
        p = self.params = params or self.params
        m = self.model
        m.actuator_forcerange[self.actuator_ids, 0] = -p.force_limit * self.torque_limit
        m.actuator_forcerange[self.actuator_ids, 1] = p.force_limit * self.torque_limit
        m.actuator_forcelimited[self.actuator_ids] = 1
        m.dof_armature[self.dof_adr] = p.armature
        m.dof_frictionloss[self.dof_adr] = p.frictionloss
        self.max_step = p.max_velocity * self.physics_dt  # rad the goal may move per physics step
        if self._firmware is not None:
            self._firmware.set_params()
        self._write_drive()

    def _write_drive(self) -> None:
        """Gains and damping of the torque state: no drive and no back-EMF braking when off."""
        p, on = self.params, self.torque_on
        kp = np.where(on, p.kp_per_p * self.p_gains, 0.0)
        kv = np.where(on, p.kv, 0.0)
        self.model.actuator_gainprm[self.actuator_ids, 0] = kp
        self.model.actuator_biasprm[self.actuator_ids, 0] = 0.0
        self.model.actuator_biasprm[self.actuator_ids, 1] = -kp
        self.model.actuator_biasprm[self.actuator_ids, 2] = -kv
        self.model.dof_damping[self.dof_adr] = np.where(on, p.damping, p.damping_off)

    def reset(self, data: mujoco.MjData) -> None:
        """Hold the current pose: goals and pending commands at the present joint positions."""
        q = data.qpos[self.qpos_adr].copy()
        self._goal[:] = q
        self._pending[:] = q
        self._ring[:] = 0
        self.torque_on[:] = False
        self.set_torque(data, True)
        data.ctrl[self.actuator_ids] = self._goal

    def command(self, data: mujoco.MjData, targets: np.ndarray, sent_at: float | None = None) -> None:
        """Send goal positions (rad); they take effect `latency` s after `sent_at` (default: now).

        `sent_at` lets a log replay place commands between physics steps; commands must be sent
        in time order.
        """
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != self._goal.shape or not np.isfinite(targets).all():
            raise ValueError(f"targets must be {self._goal.shape[0]} finite angles (rad), got {targets!r}")
        head, count = self._ring.tolist()  # Python ints: cheaper arithmetic than NumPy scalars
        capacity = len(self._due)
        if count == capacity:
            raise self.ring_full_error()
        slot = (head + count) % capacity
        self._due[slot] = (data.time if sent_at is None else sent_at) + self.params.latency
        self._commands[slot] = targets
        self._ring[1] = count + 1

    def ring_full_error(self) -> RuntimeError:
        return RuntimeError(f"{len(self._due)} servo commands are in flight already: step the physics between commands")

    def _in_flight(self) -> np.ndarray:
        """Ring slots of the commands in flight, oldest first."""
        head, count = self._ring
        return (head + np.arange(count)) % len(self._due)

    def set_torque(self, data: mujoco.MjData, enabled: bool | np.ndarray) -> None:
        """Torque off leaves the joint free (damping and friction only); on holds the present pose."""
        enabled = np.broadcast_to(np.asarray(enabled, dtype=bool), self.torque_on.shape)
        turned_on = enabled & ~self.torque_on
        if turned_on.any():
            q = data.qpos[self.qpos_adr]
            self._goal[turned_on] = q[turned_on]
            self._pending[turned_on] = q[turned_on]
            # commands in flight would yank a joint that was just enabled
            self._commands[np.ix_(self._in_flight(), turned_on)] = q[turned_on]
        self.torque_on[:] = enabled
        self._write_drive()

    def step(self, data: mujoco.MjData, nstep: int) -> None:
        """Advance the physics `nstep` steps under the servos: the one way sims step the arm.

        Each physics step runs one `substep` of firmware first: in C where the library was built,
        otherwise in Python.
        """
        if self._firmware is not None:
            self._firmware.step(data, nstep)
            return
        for _ in range(nstep):
            self.substep(data)
            mujoco.mj_step(self.model, data)

    def _due_before(self, before: float) -> bool:
        return bool(self._ring[1]) and self._due[self._ring[0]] < before - 1e-12

    def _pop(self) -> np.ndarray:
        head = self._ring[0]
        self._ring[:] = (head + 1) % len(self._due), self._ring[1] - 1
        return self._commands[head]

    def substep(self, data: mujoco.MjData) -> None:
        """Advance the firmware by one physics step: take due commands, slew, write ctrl.

        The goal for the step is the time average of the commands over it, so a command falling
        due mid-step acts for the part of the step after it: the response is continuous in the
        latency (the fitter differentiates through it) and in when commands are sent.
        """
        dt, time = self.physics_dt, data.time
        while self._ring[1] and self._due[self._ring[0]] <= time + 1e-12:  # due already: no split
            self._pending[:] = self._pop()
        if self._due_before(time + dt):
            cursor, end = time, time + dt
            current, weighted = self._pending.copy(), np.zeros_like(self._pending)
            while self._due_before(end):
                due = self._due[self._ring[0]]
                command = self._pop()
                if due > cursor:
                    weighted += current * (due - cursor)
                    cursor = due
                current = command.copy()
            weighted += current * (end - cursor)
            self._pending[:] = current
            target = weighted / dt
        else:
            target = self._pending
        self._goal += np.clip(target - self._goal, -self.max_step, self.max_step)
        data.ctrl[self.actuator_ids] = self._goal
        p = self.params
        if p.friction_load:  # gear friction grows with the torque the gears carry (the last step's)
            self.model.dof_frictionloss[self.dof_adr] = (
                p.frictionloss + p.friction_load * np.abs(data.actuator_force[self.actuator_ids]))
