"""Give each motor of a new arm its id (1 shoulder_pan .. 6 gripper) and the bus baud rate.

Motors ship with id 1, so they must be set up one at a time: connect the board to one motor,
press Enter, and repeat from the gripper down to the shoulder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from so101lab.contract import JOINT_NAMES
from so101lab.real.arm import MOTOR_IDS
from so101lab.real.bus import DEFAULT_BAUDRATE, FeetechBus
from so101lab.real.keyboard import wait_for_enter
from so101lab.real.setup import setup_motor


@dataclass
class Args:
    port: str
    """Serial port of the arm's board (see `so101lab find-port`)."""
    baudrate: int = DEFAULT_BAUDRATE
    """Baud rate to leave every motor at."""


def run(args: Args, ready: Callable[[str], None] = wait_for_enter) -> dict[str, tuple[int, int]]:
    """Set up every motor; returns joint -> (baud rate, id) it had before."""
    before = {}
    with FeetechBus(args.port) as bus:
        for name in reversed(JOINT_NAMES):
            ready(f"Connect the controller board to the '{name}' motor only and press Enter.")
            before[name] = setup_motor(bus, name, args.baudrate)
            print(f"{name}: id {before[name][1]} @ {before[name][0]} baud -> id {MOTOR_IDS[name]} "
                  f"@ {args.baudrate} baud", flush=True)
    return before


def main(args: Args) -> None:
    run(args)
    print("All motors set up. Daisy-chain them and connect the board to the shoulder_pan motor.")
