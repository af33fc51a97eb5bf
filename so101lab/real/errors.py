"""Exceptions of the hardware stack; each message names the port, motor or register at fault."""

from __future__ import annotations


class HardwareError(RuntimeError):
    """Base of every error raised by so101lab.real."""


class PortError(HardwareError):
    """The serial port could not be opened (missing, busy, or not permitted)."""


class ArmDisconnectedError(PortError):
    """The serial port went away mid-run (USB cable pulled, power lost, virtual arm stopped)."""


class BusError(HardwareError):
    """A transaction on the bus failed (no answer, corrupt answers, or a motor error)."""


class MotorTimeoutError(BusError):
    """A motor did not answer (after the retries)."""


class MotorStatusError(BusError):
    """A motor answered with hardware error bits set (overload, overheat, ...)."""

    def __init__(self, message: str, motor_id: int, error_bits: int):
        super().__init__(message)
        self.motor_id = motor_id
        self.error_bits = error_bits


class MotorsNotFoundError(BusError):
    """Expected motors are missing from the bus."""


class CalibrationError(HardwareError):
    """A calibration file is missing, malformed, or does not match the arm."""


class CameraError(HardwareError):
    """A camera could not be opened, or stopped delivering frames."""


class NoOperatorError(HardwareError):
    """A prompt needs the operator to act on the arm, but input ended (no terminal attached)."""
