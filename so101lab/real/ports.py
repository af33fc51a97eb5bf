"""``--port`` of the hardware launchers: a serial device, or a virtual arm, parsed once.

``/dev/ttyACM0`` is a serial path; ``virtual:PickCube`` a virtual arm started in the launcher's
own process; ``virtual@/tmp/so101lab-virtual-N.sock`` the one a `so101lab virtual-arm` process
serves. With a virtual arm, bare camera names are its scene's cameras, and the scene resets
episodes and judges success.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from so101lab.errors import UsageError
from so101lab.real.calibration import Calibration
from so101lab.real.cameras import CameraSource
from so101lab.real.env import EpisodeHooks
from so101lab.real.virtual_remote import RemoteWorld
from so101lab.real.virtual_world import VirtualWorld

DEFAULT_TASK = "PickCube"
_VIRTUAL = re.compile(r"virtual(?::(?P<task>[^@]*)|@(?P<socket>.*))")


@dataclass(frozen=True)
class PortSpec:
    """What a ``--port`` string names: ``kind`` and its ``target`` (device, task or socket)."""

    kind: Literal["serial", "virtual", "remote"]
    target: str

    @classmethod
    def parse(cls, spec: str) -> PortSpec:
        match = _VIRTUAL.fullmatch(spec)
        if match is None:
            if spec.startswith("virtual"):
                raise UsageError(f"--port {spec!r}: a virtual arm is virtual:<Task> or virtual@<socket>")
            return cls("serial", spec)
        if match["socket"] is not None:
            if not match["socket"]:
                raise UsageError("--port virtual@ needs the socket a `so101lab virtual-arm` printed")
            return cls("remote", match["socket"])
        return cls("virtual", match["task"] or DEFAULT_TASK)


@dataclass
class Port:
    """A resolved ``--port``: the serial path, and the virtual world behind it if there is one
    (``world`` in this process, or ``remote`` in a `so101lab virtual-arm` process)."""

    path: str
    world: VirtualWorld | None = None
    remote: RemoteWorld | None = None

    @property
    def virtual(self) -> VirtualWorld | RemoteWorld | None:
        """The virtual arm's world behind the port (None on hardware)."""
        return self.world or self.remote

    @property
    def hooks(self) -> EpisodeHooks | None:
        """Who resets episodes and judges success (None on hardware: the operator)."""
        return self.virtual

    def virtual_camera(self, name: str, height: int, width: int) -> CameraSource:
        """A camera of the virtual world's scene, by name."""
        if self.virtual is None:
            raise UsageError(f"camera {name!r} needs a device (name=/dev/videoN) on a real arm")
        return self.virtual.camera(name, height, width)


@contextlib.contextmanager
def open_port(spec: str, seed: int = 0) -> Iterator[Port]:
    """The port ``spec`` names, open for the block; a virtual world started here is stopped on exit."""
    parsed = PortSpec.parse(spec)
    if parsed.kind == "serial":
        yield Port(parsed.target)
    elif parsed.kind == "remote":
        remote = RemoteWorld(parsed.target)
        try:
            yield Port(remote.port, remote=remote)
        finally:
            remote.close()
    else:
        world = VirtualWorld(parsed.target, seed=seed).start()
        print(f"virtual SO-101 ({world.sim.__class__.__name__}) on {world.port}", flush=True)
        try:
            yield Port(world.port, world)
        finally:
            world.stop()


def resolve_calibration(path: Path, port: Port) -> Path | Calibration:
    """The calibration file; on a virtual arm without one, the calibration that arm would get."""
    if port.virtual is not None and not Path(path).expanduser().exists():
        return port.virtual.calibration()
    return path
