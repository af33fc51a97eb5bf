"""What the hardware launchers share: port specs (real or ``virtual:<Task>``), cameras, prompts.

``--port virtual:PickCube`` starts a virtual arm in the launcher's own process, so its cameras
(which render the same MuJoCo scene) can be used too; a plain path is a serial port.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from so101lab.contract import DEFAULT_IMAGE_SIZE
from so101lab.real.calibration import Calibration
from so101lab.real.cameras import CameraSource, FFmpegCamera
from so101lab.real.virtual_world import VirtualWorld

CALIBRATION_DIR = Path.home() / ".cache" / "so101lab" / "calibration"
VIRTUAL_PREFIX = "virtual:"


def default_calibration(role: str = "follower") -> Path:
    return CALIBRATION_DIR / f"so101_{role}.json"


@dataclass
class Port:
    """A resolved ``--port``: the serial path, and the in-process virtual world if there is one."""

    path: str
    world: VirtualWorld | None = None


@contextlib.contextmanager
def open_port(spec: str, seed: int = 0) -> Iterator[Port]:
    """``/dev/ttyACM0`` as is, or ``virtual:<Task>`` -> a running virtual world (stopped on exit)."""
    if not spec.startswith(VIRTUAL_PREFIX):
        yield Port(spec)
        return
    world = VirtualWorld(spec.removeprefix(VIRTUAL_PREFIX) or "PickCube", seed=seed).start()
    print(f"virtual SO-101 ({world.sim.__class__.__name__}) on {world.port}", flush=True)
    try:
        yield Port(world.port, world)
    finally:
        world.stop()


def open_cameras(specs: tuple[str, ...], port: Port, image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
                 ) -> dict[str, CameraSource]:
    """``name=/dev/videoN`` -> an ffmpeg camera; a bare ``name`` -> that camera of the virtual world."""
    cams: dict[str, CameraSource] = {}
    for spec in specs:
        name, _, device = spec.partition("=")
        if device:
            cams[name] = FFmpegCamera(device, *image_size)
        elif port.world is not None:
            cams[name] = port.world.camera(name, *image_size)
        else:
            raise ValueError(f"camera {spec!r} needs a device (name=/dev/videoN) on a real arm")
    return cams


class Keyboard:
    """Lines typed on stdin, read by one background thread, so prompts and 'press Enter to stop'
    checks share stdin without racing each other."""

    _instance: Keyboard | None = None

    def __init__(self) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, name="keyboard", daemon=True).start()

    @classmethod
    def get(cls) -> Keyboard:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _read(self) -> None:
        for line in sys.stdin:
            self._lines.put(line.rstrip("\n"))
        self._lines.put("")  # EOF counts as Enter, so nothing waits forever

    def ask(self, message: str) -> str:
        """Print a prompt and wait for a line (discarding lines typed before it)."""
        self.drain()
        print(message, end=" ", flush=True)
        return self._lines.get()

    def pressed(self) -> bool:
        """True if Enter was pressed since the last check (non-blocking)."""
        try:
            self._lines.get_nowait()
            return True
        except queue.Empty:
            return False

    def drain(self) -> None:
        while self.pressed():
            pass


def wait_for_enter(message: str) -> None:
    Keyboard.get().ask(message)


def ask_yes_no(question: str) -> bool:
    return Keyboard.get().ask(f"{question} [y/N]").strip().lower() in ("y", "yes")


class EnterPressed:
    """Polled stop condition: true once Enter is pressed after this was created."""

    def __init__(self, message: str = "") -> None:
        self._keyboard = Keyboard.get()
        self._keyboard.drain()
        self._done = False
        if message:
            print(message, flush=True)

    def __call__(self) -> bool:
        self._done = self._done or self._keyboard.pressed()
        return self._done


def resolve_calibration(path: Path, port: Port) -> Path | Calibration:
    """The calibration file; on a virtual arm without one, the calibration that arm would get."""
    if port.world is not None and not Path(path).exists():
        return port.world.calibration()
    return path
