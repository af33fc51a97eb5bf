"""Find the arm's serial port: list ports, ask to unplug the arm, and report the one that vanished."""

from __future__ import annotations

import glob
from dataclasses import dataclass

from serial.tools import list_ports

from so101lab.real.keyboard import wait_for_enter


@dataclass
class Args:
    pass


def serial_ports() -> set[str]:
    """USB serial adapters present now (the SO-101 board shows up as ttyACM* or ttyUSB*)."""
    ports = {p.device for p in list_ports.comports()}
    return ports | set(glob.glob("/dev/ttyACM*")) | set(glob.glob("/dev/ttyUSB*")) | set(
        glob.glob("/dev/tty.usbmodem*"))


def vanished_port(before: set[str], after: set[str]) -> str:
    gone = sorted(before - after)
    if len(gone) == 1:
        return gone[0]
    if not gone:
        raise SystemExit("no port disappeared: was the arm's USB cable unplugged? (ports before: "
                         f"{sorted(before) or 'none'})")
    raise SystemExit(f"several ports disappeared ({gone}); unplug only the arm's cable and retry")


def main(args: Args) -> None:
    before = serial_ports()
    print(f"serial ports: {sorted(before) or 'none'}")
    wait_for_enter("Unplug the arm's USB cable from the computer, then press Enter.")
    port = vanished_port(before, serial_ports())
    print(f"The arm's port is {port}. Plug the cable back in.")
