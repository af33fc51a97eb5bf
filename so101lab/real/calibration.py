"""Calibration files in LeRobot's format and the tick <-> unit conversions they define.

A file maps each joint to ``{"id", "drive_mode", "homing_offset", "range_min", "range_max"}``.
Units are LeRobot's (``use_degrees=True``): degrees about the middle of the calibrated range for
the arm joints, 0..100 over the range for the gripper.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from so101lab.contract import JOINT_NAMES
from so101lab.real.errors import CalibrationError
from so101lab.real.registers import MAX_TICK

GRIPPER = JOINT_NAMES.index("gripper")
FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")
CALIBRATION_DIR = Path.home() / ".cache" / "so101lab" / "calibration"


def default_calibration(role: str = "follower") -> Path:
    """Where `so101lab calibrate` writes an arm's file when no path is given (``role``: follower, leader)."""
    return CALIBRATION_DIR / f"so101_{role}.json"


@dataclass(frozen=True)
class MotorCalibration:
    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


Calibration = dict[str, MotorCalibration]


def validate(cal: Calibration, source: str = "calibration") -> Calibration:
    """Check joint names, field ranges and range_min < range_max, naming what is wrong."""
    missing = [n for n in JOINT_NAMES if n not in cal]
    extra = [n for n in cal if n not in JOINT_NAMES]
    if missing or extra:
        raise CalibrationError(f"{source}: joints missing {missing}, unexpected {extra}; "
                               f"expected {list(JOINT_NAMES)}")
    for name in JOINT_NAMES:
        c = cal[name]
        if not 0 <= c.range_min < c.range_max <= MAX_TICK:
            raise CalibrationError(f"{source}: {name} has range_min {c.range_min} and range_max "
                                   f"{c.range_max}; need 0 <= range_min < range_max <= {MAX_TICK} "
                                   "(was the joint moved through its range during calibration?)")
        if not -2047 <= c.homing_offset <= 2047:
            raise CalibrationError(f"{source}: {name} homing_offset {c.homing_offset} is outside -2047..2047")
        if c.drive_mode not in (0, 1):
            raise CalibrationError(f"{source}: {name} drive_mode must be 0 or 1, got {c.drive_mode}")
    return {n: cal[n] for n in JOINT_NAMES}


def load_calibration(path: str | Path) -> Calibration:
    path = Path(path).expanduser()
    if not path.exists():
        raise CalibrationError(f"calibration file {path} does not exist; run `so101lab calibrate` first")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"calibration file {path} is not valid JSON: {exc}") from None
    cal = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) != set(FIELDS):
            raise CalibrationError(f"{path}: entry {name!r} must have exactly the fields {list(FIELDS)}")
        if not all(isinstance(entry[f], int) for f in FIELDS):
            raise CalibrationError(f"{path}: entry {name!r} fields must be integers")
        cal[name] = MotorCalibration(**entry)
    return validate(cal, str(path))


def save_calibration(cal: Calibration, path: str | Path) -> Path:
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({n: asdict(c) for n, c in validate(cal).items()}, indent=4))
    return path


def _arrays(cal: Calibration) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo = np.array([cal[n].range_min for n in JOINT_NAMES], dtype=np.float64)
    hi = np.array([cal[n].range_max for n in JOINT_NAMES], dtype=np.float64)
    inv = np.array([cal[n].drive_mode for n in JOINT_NAMES], dtype=bool)
    return lo, hi, inv


def ticks_to_units(cal: Calibration, ticks: np.ndarray) -> np.ndarray:
    """Present_Position ticks -> degrees (arm joints) and 0..100 (gripper, clamped to its range)."""
    lo, hi, inv = _arrays(cal)
    ticks = np.asarray(ticks, dtype=np.float64)
    out = (ticks - (lo + hi) / 2) * 360.0 / MAX_TICK
    g_lo, g_hi = lo[GRIPPER], hi[GRIPPER]
    grip = (np.clip(ticks[..., GRIPPER], g_lo, g_hi) - g_lo) / (g_hi - g_lo) * 100.0
    out[..., GRIPPER] = 100.0 - grip if inv[GRIPPER] else grip
    return out


def units_to_ticks(cal: Calibration, units: np.ndarray) -> np.ndarray:
    """Inverse of `ticks_to_units` (gripper clamped to 0..100), rounded to whole ticks."""
    lo, hi, inv = _arrays(cal)
    units = np.asarray(units, dtype=np.float64)
    out = units * MAX_TICK / 360.0 + (lo + hi) / 2
    g = np.clip(units[..., GRIPPER], 0.0, 100.0)
    g = 100.0 - g if inv[GRIPPER] else g
    out[..., GRIPPER] = g / 100.0 * (hi[GRIPPER] - lo[GRIPPER]) + lo[GRIPPER]
    return np.rint(out).astype(np.int64)


def unit_limits(cal: Calibration) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated range of each joint in units (low, high)."""
    lo, hi, _ = _arrays(cal)
    a, b = ticks_to_units(cal, lo), ticks_to_units(cal, hi)
    return np.minimum(a, b), np.maximum(a, b)
