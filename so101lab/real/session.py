"""What the hardware launchers share: port specs, cameras, keyboard prompts.

``--port`` is a serial path, ``virtual:PickCube`` (a virtual arm started in the launcher's own
process) or ``virtual@/tmp/so101lab-virtual-N.sock`` (the one a `so101lab virtual-arm` process
serves); with a virtual arm, bare camera names are its scene's cameras and the scene resets
episodes and judges success.
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
from so101lab.real.env import EpisodeHooks
from so101lab.real.virtual_remote import REMOTE_PREFIX, RemoteWorld
from so101lab.real.virtual_world import VirtualWorld

CALIBRATION_DIR = Path.home() / ".cache" / "so101lab" / "calibration"
VIRTUAL_PREFIX = "virtual:"


def default_calibration(role: str = "follower") -> Path:
    return CALIBRATION_DIR / f"so101_{role}.json"


@dataclass
class Port:
    """A resolved ``--port``: the serial path, and the virtual world behind it if there is one
    (``world`` in this process, or ``remote`` in a `so101lab virtual-arm` process)."""

    path: str
    world: VirtualWorld | None = None
    remote: RemoteWorld | None = None

    @property
    def hooks(self) -> EpisodeHooks | None:
        """Who resets episodes and judges success (None on hardware: the operator)."""
        return self.world or self.remote

    def virtual_camera(self, name: str, height: int, width: int) -> CameraSource:
        if self.world is not None:
            return self.world.camera(name, height, width)
        if self.remote is not None:
            return self.remote.camera(name, height, width)
        raise ValueError(f"camera {name!r} needs a device (name=/dev/videoN) on a real arm")


@contextlib.contextmanager
def open_port(spec: str, seed: int = 0) -> Iterator[Port]:
    """``/dev/ttyACM0`` as is; ``virtual:<Task>`` -> a virtual world started here (stopped on exit);
    ``virtual@<socket>`` -> the world a `so101lab virtual-arm` process serves."""
    if spec.startswith(REMOTE_PREFIX):
        remote = RemoteWorld(spec.removeprefix(REMOTE_PREFIX))
        try:
            yield Port(remote.port, remote=remote)
        finally:
            remote.close()
        return
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
        cams[name] = FFmpegCamera(device, *image_size) if device else port.virtual_camera(name, *image_size)
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
    virtual = port.world or port.remote
    if virtual is not None and not Path(path).expanduser().exists():
        return virtual.calibration()
    return path
