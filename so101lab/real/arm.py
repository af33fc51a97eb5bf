"""An SO-101 arm on a Feetech bus: connection checks, configuration, units, and safe goals.

`SO101Arm` is the follower (configured, torque on, goals clipped to the calibrated range and to
``max_relative_target`` of the present pose) or the leader (torque off, read only). Leaving its
context, on success or on any exception, turns torque off.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from so101lab.contract import JOINT_NAMES, NUM_JOINTS
from so101lab.real.bus import DEFAULT_BAUDRATE, FeetechBus
from so101lab.real.calibration import Calibration, load_calibration, ticks_to_units, units_to_ticks
from so101lab.real.errors import HardwareError, MotorsNotFoundError
from so101lab.real.registers import BAUD_RATES, STS3215_MODEL_NUMBER

log = logging.getLogger(__name__)

MOTOR_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(JOINT_NAMES)}
IDS = list(MOTOR_IDS.values())
ROLES = ("follower", "leader")
# Written at connect, as LeRobot's SO-101 follower does (P 16 instead of the factory 32 to avoid
# shakiness; fastest acceleration; no answer delay).
FOLLOWER_CONFIG: dict[str, int] = {
    "Return_Delay_Time": 0, "Maximum_Acceleration": 254, "Acceleration": 254, "Operating_Mode": 0,
    "P_Coefficient": 16, "I_Coefficient": 0, "D_Coefficient": 32,
}
# The gripper squeezes objects for long stretches: cap its torque and current so it cannot burn out.
GRIPPER_CONFIG: dict[str, int] = {"Max_Torque_Limit": 500, "Protection_Current": 250, "Overload_Torque": 25}


def check_motors(bus: FeetechBus, expected: Mapping[str, int] = MOTOR_IDS) -> None:
    """Raise a specific error if motors are missing, on another baud rate, or not STS3215."""
    found = bus.broadcast_ping()
    if not found:
        here = bus.baudrate
        for baud in BAUD_RATES:
            if baud == here:
                continue
            bus.set_baudrate(baud)
            other = bus.broadcast_ping(quiet=0.02)
            if other:
                bus.set_baudrate(here)
                raise MotorsNotFoundError(
                    f"no motor answered on {bus.port} at {here} baud, but motors {sorted(other)} answer at "
                    f"{baud} baud: the motors are not set up for this arm; run `so101lab setup-motors`")
        bus.set_baudrate(here)
        raise MotorsNotFoundError(
            f"no motor answered on {bus.port} at any baud rate: check that the arm's power supply is "
            "plugged in and the cable runs from the board to the first motor (or pick the right port "
            "with `so101lab find-port`)")
    missing = {n: i for n, i in expected.items() if i not in found}
    if missing:
        raise MotorsNotFoundError(
            f"motors {', '.join(f'{n} (id {i})' for n, i in missing.items())} did not answer on {bus.port}; "
            f"ids that answered: {sorted(found)}. Check the cable daisy chain at those motors, or run "
            "`so101lab setup-motors` if their ids were never assigned")
    models = {n: bus.read(i, "Model_Number", check_status=False) for n, i in expected.items()}
    wrong = {n: m for n, m in models.items() if m != STS3215_MODEL_NUMBER}
    if wrong:
        raise MotorsNotFoundError(f"motors {wrong} are not STS3215 (model {STS3215_MODEL_NUMBER})")


class SO101Arm:
    """One SO-101 (follower or leader) with positions in LeRobot units."""

    def __init__(self, port: str, calibration: Calibration | str | Path | None, *, role: str = "follower",
                 max_relative_target: float | None = None, baudrate: int = DEFAULT_BAUDRATE,
                 timeout: float = 0.05, retries: int = 2):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if max_relative_target is not None and max_relative_target <= 0:
            raise ValueError(f"max_relative_target must be > 0 (units per step), got {max_relative_target}")
        if calibration is None:
            raise HardwareError(f"the {role} arm on {port} needs a calibration; run `so101lab calibrate`")
        self.calibration = calibration if isinstance(calibration, dict) else load_calibration(calibration)
        self.role = role
        self.max_relative_target = max_relative_target
        self.port, self.baudrate, self.timeout, self.retries = port, baudrate, timeout, retries
        self.bus: FeetechBus | None = None
        lo = np.array([self.calibration[n].range_min for n in JOINT_NAMES])
        hi = np.array([self.calibration[n].range_max for n in JOINT_NAMES])
        self._tick_limits = (lo, hi)
        self.last_positions: np.ndarray | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def connect(self) -> SO101Arm:
        self.bus = FeetechBus(self.port, self.baudrate, timeout=self.timeout, retries=self.retries,
                              names={i: n for n, i in MOTOR_IDS.items()})
        try:
            check_motors(self.bus)
            self.torque_off()
            self._write_calibration()
            if self.role == "follower":
                self._configure_follower()
                self.bus.sync_write("Torque_Enable", dict.fromkeys(IDS, 1))
            self.last_positions = self.read()
        except BaseException:
            self.disconnect()
            raise
        return self

    def disconnect(self) -> None:
        """Torque off (best effort, every motor) and close the port; safe to call twice."""
        if self.bus is None:
            return
        try:
            self.torque_off()
        finally:
            self.bus.close()
            self.bus = None

    def __enter__(self) -> SO101Arm:
        return self.connect() if self.bus is None else self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    @property
    def connected(self) -> bool:
        return self.bus is not None

    def _require_bus(self) -> FeetechBus:
        if self.bus is None:
            raise HardwareError(f"the {self.role} arm on {self.port} is not connected; call connect()")
        return self.bus

    def torque_off(self) -> None:
        """Disable torque on every motor, tolerating errors so one bad motor cannot keep others on."""
        bus = self._require_bus()
        with contextlib.suppress(Exception):
            bus.sync_write("Torque_Enable", dict.fromkeys(IDS, 0))
        for i in IDS:
            if bus.disconnected:  # the port is gone: no motor can be reached, and the error said so once
                return
            try:
                bus.write(i, "Torque_Enable", 0, check_status=False)
                bus.write(i, "Lock", 0, check_status=False)
            except Exception as exc:  # keep going: the others must still be released
                log.warning("could not turn torque off on motor %d: %s", i, exc)

    def _write_calibration(self) -> None:
        """Write homing offsets and position limits where the motors disagree with the file."""
        bus = self._require_bus()
        for name, c in self.calibration.items():
            i = MOTOR_IDS[name]
            for reg, value in (("Homing_Offset", c.homing_offset), ("Min_Position_Limit", c.range_min),
                               ("Max_Position_Limit", c.range_max)):
                if bus.read(i, reg) != value:
                    bus.write(i, reg, value)

    def _configure_follower(self) -> None:
        bus = self._require_bus()
        for i in IDS:
            for reg, value in FOLLOWER_CONFIG.items():
                bus.write(i, reg, value)
        for reg, value in GRIPPER_CONFIG.items():
            bus.write(MOTOR_IDS["gripper"], reg, value)

    # -- state and goals --------------------------------------------------------------------

    def read(self) -> np.ndarray:
        """Present joint positions, float32[6] in LeRobot units."""
        ticks = self._require_bus().sync_read("Present_Position", IDS)
        units = ticks_to_units(self.calibration, np.array([ticks[i] for i in IDS]))
        self.last_positions = units.astype(np.float32)
        return self.last_positions.copy()

    def safe_goal(self, goal: np.ndarray, present: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Goal units -> (units actually sent, ticks): capped around the present pose, then clipped."""
        goal = np.asarray(goal, dtype=np.float64).reshape(-1)
        if goal.shape != (NUM_JOINTS,) or not np.all(np.isfinite(goal)):
            raise ValueError(f"goal must be {NUM_JOINTS} finite joint targets {JOINT_NAMES}, got {goal}")
        present = self.last_positions if present is None else present
        if self.max_relative_target is not None and present is not None:
            cap = self.max_relative_target
            goal = np.clip(goal, present - cap, present + cap)
        ticks = np.clip(units_to_ticks(self.calibration, goal), *self._tick_limits)
        return ticks_to_units(self.calibration, ticks).astype(np.float32), ticks

    def send(self, goal: np.ndarray) -> np.ndarray:
        """Write safe goal positions; returns what was sent (units)."""
        if self.role != "follower":
            raise HardwareError(f"the leader arm on {self.port} is read-only; goals go to a follower")
        sent, ticks = self.safe_goal(goal)
        self._require_bus().sync_write("Goal_Position", {i: int(t) for i, t in zip(IDS, ticks, strict=True)})
        return sent
