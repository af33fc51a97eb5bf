"""Calibrate an SO-101 (follower or leader) and write a LeRobot-compatible calibration file.

Move the arm to the middle of its range when asked, then every joint through its full range,
and press Enter. The file works with LeRobot too (same fields and units).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from so101lab.contract import JOINT_NAMES
from so101lab.real.arm import check_motors
from so101lab.real.bus import FeetechBus
from so101lab.real.calibration import Calibration, default_calibration, save_calibration
from so101lab.real.keyboard import EnterPressed, wait_for_enter
from so101lab.real.setup import calibrate


@dataclass
class Args:
    port: str
    """Serial port of the arm (see `so101lab find-port`)."""
    role: Literal["follower", "leader"] = "follower"
    """Which arm this is (decides the default file name)."""
    out: Path | None = None
    """Calibration file to write (default ~/.cache/so101lab/calibration/so101_<role>.json)."""


def run(args: Args, ready: Callable[[str], None], stop: Callable[[], bool]) -> tuple[Calibration, Path]:
    with FeetechBus(args.port) as bus:
        check_motors(bus)
        cal = calibrate(bus, ready, stop)
    path = save_calibration(cal, args.out or default_calibration(args.role))
    return cal, path


class KeyboardPrompts:
    """Enter confirms the middle pose; during range recording Enter (read in the background) stops."""

    def __init__(self) -> None:
        self.recording: EnterPressed | None = None

    def ready(self, message: str) -> None:
        if "entire range" in message:
            self.recording = EnterPressed(message)
        else:
            wait_for_enter(message)

    def stop(self) -> bool:
        return self.recording is not None and self.recording()


def main(args: Args) -> None:
    prompts = KeyboardPrompts()
    cal, path = run(args, prompts.ready, prompts.stop)
    for name in JOINT_NAMES:
        c = cal[name]
        print(f"{name:>14}: homing_offset {c.homing_offset:5d}  range {c.range_min:4d}..{c.range_max:4d}")
    print(f"calibration written to {path}")
