"""A virtual SO-101 behind a real pseudo-terminal: six emulated STS3215s on a physics backend.

Any serial client (this project's bus, the vendor SDK, LeRobot) opens `VirtualArm.port` as if
it were the arm's USB adapter. The client's baud rate is read from the terminal settings, so a
wrong baud rate behaves as on hardware: no motor answers. Faults can be injected to test that
every failure gives a retry or a clear error.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import termios
import threading
import time
import tty
from dataclasses import dataclass, field

import numpy as np

from so101lab.contract import JOINT_NAMES, JOINT_RANGES_RAD
from so101lab.real.calibration import Calibration, MotorCalibration
from so101lab.real.emulator import RAD_PER_TICK, VirtualBusFirmware, VirtualMotor
from so101lab.real.physics import PhysicsBackend, scene_physics
from so101lab.real.protocol import PacketParser, StatusError
from so101lab.real.registers import MAX_TICK, TICKS_PER_TURN

_TCGETS2 = 0x802C542A  # Linux ioctl reading struct termios2 (holds the numeric baud rate)
_STANDARD_BAUDS = {getattr(termios, f"B{b}"): b for b in (
    9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 2000000)
    if hasattr(termios, f"B{b}")}


@dataclass
class Faults:
    """Faults to inject; probabilities are per reply packet."""

    noise_ticks: float = 0.0  # std of Gaussian noise added to Present_Position (ticks)
    drop_rate: float = 0.0  # a reply is lost
    corrupt_rate: float = 0.0  # one byte of a reply is flipped
    missing: set[str] = field(default_factory=set)  # motors (joint names) that never answer
    overload: set[str] = field(default_factory=set)  # motors reporting OVERLOAD (torque drops)


def tty_baudrate(fd: int) -> int:
    """The baud rate a client set on a terminal (numeric, also for non-standard rates)."""
    buf = array.array("I", [0] * 11)
    try:
        fcntl.ioctl(fd, _TCGETS2, buf)
        return int(buf[10])  # c_ospeed
    except OSError:
        return _STANDARD_BAUDS.get(termios.tcgetattr(fd)[5], 0)


class VirtualArm:
    """The emulator thread serving one pty; use as a context manager or `start()`/`stop()`."""

    def __init__(self, physics: PhysicsBackend | None = None, *, faults: Faults | None = None,
                 factory: bool = False, seed: int = 0, tick_hz: float = 500.0):
        self.physics = physics or scene_physics(seed=seed)
        self.faults = faults or Faults()
        self.rng = np.random.default_rng(seed)
        # Encoder zero of each joint as assembled: off by up to ~25 deg (wrist_roll kept near centre
        # so its full turn range fits), which is what calibration has to discover.
        spread = np.array([300, 300, 300, 300, 20, 300])
        zeros = TICKS_PER_TURN // 2 + self.rng.integers(-spread, spread + 1)
        self.motors = [VirtualMotor(name, int(z)) for name, z in zip(JOINT_NAMES, zeros, strict=True)]
        if not factory:
            for i, m in enumerate(self.motors):
                m.set("ID", i + 1)
        self.firmware = VirtualBusFirmware(self.motors)
        self.tick_dt = 1.0 / tick_hz
        self.packets = 0
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._parser = PacketParser()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = time.monotonic()
        self._sync()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> VirtualArm:
        if self._thread is None:
            self._running.set()
            self._last = time.monotonic()
            self._thread = threading.Thread(target=self._serve, name="virtual-so101", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> VirtualArm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests and the CLI use ---------------------------------------------------------

    def motor(self, name: str) -> VirtualMotor:
        return self.motors[JOINT_NAMES.index(name)]

    def connect_only(self, *names: str) -> None:
        """Wire only these motors to the bus (motor setup connects one at a time)."""
        for m in self.motors:
            m.connected = m.name in names

    def connect_all(self) -> None:
        for m in self.motors:
            m.connected = True

    def joint_positions(self) -> np.ndarray:
        """True joint angles (rad) of the physics backend."""
        with self.physics.lock:
            return self.physics.state()[0]

    def torque_enabled(self) -> np.ndarray:
        return np.array([m.torque_on for m in self.motors])

    def move_by_hand(self, angles: dict[str, float]) -> None:
        """Set joints with torque off to these angles (rad), as a hand moving the arm."""
        with self.physics.lock:
            for name, angle in angles.items():
                self.physics.push(JOINT_NAMES.index(name), angle)
            self._sync()

    def calibration(self) -> Calibration:
        """The calibration a user would record here: mid pose at 2047, ranges of the joint limits.

        Lets tests and demos skip the interactive procedure; `so101lab calibrate` on this arm
        writes the same numbers (to a tick) by moving the joints through their ranges.
        """
        cal = {}
        for i, m in enumerate(self.motors):
            offset = m.zero_tick - MAX_TICK // 2
            lo, hi = JOINT_RANGES_RAD[m.name]
            if m.name == "wrist_roll":
                rmin, rmax = 0, MAX_TICK
            else:
                rmin = round(m.zero_tick + lo / RAD_PER_TICK) - offset
                rmax = round(m.zero_tick + hi / RAD_PER_TICK) - offset
            cal[m.name] = MotorCalibration(i + 1, 0, offset, rmin, rmax)
        return cal

    # -- the serving loop -------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the physics into the registers and push goals (after outside changes to either)."""
        with self.physics.lock:
            self._sync()

    def _sync(self) -> None:
        """Physics state -> Present registers; goals and torque flags -> physics."""
        f = self.faults
        for m in self.motors:
            m.error_bits = int(StatusError.OVERLOAD) if m.name in f.overload else 0
            if m.name in f.missing:
                m.connected = False
        q, qd, effort = self.physics.state()
        for i, m in enumerate(self.motors):
            m.update_present(q[i], qd[i], effort[i], self.physics.stall_torque, f.noise_ticks, self.rng)
        targets = np.array([m.target() for m in self.motors])
        self.physics.command(targets, self.torque_enabled())
        p_gains = np.array([m.get("P_Coefficient") for m in self.motors], dtype=np.float64)
        limits = np.array([min(m.get("Max_Torque_Limit"), m.get("Torque_Limit")) for m in self.motors]) / 1000
        self.physics.configure(p_gains, limits)

    def _advance(self) -> None:
        now = time.monotonic()
        with self.physics.lock:
            self.physics.advance(now - self._last)
            self._sync()
        self._last = now

    def _serve(self) -> None:
        while self._running.is_set():
            ready, _, _ = select.select([self._master], [], [], self.tick_dt)
            self._advance()
            if not ready:
                # Like the firmware, drop a partial packet after a silent gap: garbage on the wire
                # cannot swallow the next real instruction.
                self._parser.clear()
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                continue
            baud = tty_baudrate(self._slave)
            out = bytearray()
            for pkt in self._parser.feed(data):
                self.packets += 1
                with self.physics.lock:
                    replies = self.firmware.handle(pkt, baud)
                    self._sync()
                for motor, reply in _collide(replies):
                    out += self._with_faults(reply)
                    delay = motor.get("Return_Delay_Time") * 2e-6
                    if delay:
                        time.sleep(delay)
            if out:
                os.write(self._master, bytes(out))

    def _with_faults(self, reply: bytes) -> bytes:
        f = self.faults
        if f.drop_rate and self.rng.random() < f.drop_rate:
            return b""
        if f.corrupt_rate and self.rng.random() < f.corrupt_rate:
            corrupted = bytearray(reply)
            corrupted[self.rng.integers(len(corrupted))] ^= int(self.rng.integers(1, 256))
            return bytes(corrupted)
        return reply


def _collide(replies: list[tuple[VirtualMotor, bytes]]) -> list[tuple[VirtualMotor, bytes]]:
    """Motors sharing an id answer at once: the wire carries the AND of their bytes (idle is high)."""
    merged: dict[int, tuple[VirtualMotor, bytes]] = {}
    for motor, reply in replies:
        if motor.id in merged:
            first, other = merged[motor.id]
            n = max(len(reply), len(other))
            pairs = zip(reply.ljust(n, b"\xff"), other.ljust(n, b"\xff"), strict=True)
            reply = bytes(a & b for a, b in pairs)
            motor = first
        merged[motor.id] = (motor, reply)
    return list(merged.values())
