"""A virtual world shared with other processes: its cameras and episode hooks over a Unix socket.

`so101lab virtual-arm --task PickCube` serves its scene here, so commands in other shells can
use `--port virtual@<socket>`: the serial port as usual, plus the scene's cameras, episode
resets and success, exactly as with an in-process `virtual:<Task>` arm.

Wire format: one JSON request line; one JSON reply line, followed by ``bytes`` raw bytes for a
camera frame (RGB, row-major).
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from so101lab.real.calibration import Calibration, MotorCalibration
from so101lab.real.errors import CameraError, HardwareError
from so101lab.real.virtual_world import VirtualCamera, VirtualWorld

REMOTE_PREFIX = "virtual@"


class _Handler(socketserver.StreamRequestHandler):
    server: WorldServer

    def handle(self) -> None:
        cameras: dict[tuple[str, int, int], VirtualCamera] = {}  # renderers live in this thread
        try:
            for line in self.rfile:
                request = json.loads(line)
                reply, payload = self.server.answer(request, cameras)
                self.wfile.write(json.dumps(reply).encode() + b"\n" + payload)
                self.wfile.flush()
        except (ConnectionError, json.JSONDecodeError):
            pass
        finally:
            for cam in cameras.values():
                cam.close()


class WorldServer(socketserver.ThreadingUnixStreamServer):
    """Serves one virtual world's port, calibration, cameras and episode hooks."""

    daemon_threads = True

    def __init__(self, world: VirtualWorld, path: str | Path):
        self.world = world
        self.path = Path(path)
        self.path.unlink(missing_ok=True)
        super().__init__(str(self.path), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name="virtual-world-server", daemon=True)
        self._thread.start()

    def answer(self, request: dict[str, Any], cameras: dict) -> tuple[dict[str, Any], bytes]:
        op, w = request.get("op"), self.world
        try:
            if op == "port":
                return {"port": w.port}, b""
            if op == "calibration":
                return {"calibration": {n: asdict(c) for n, c in w.calibration().items()}}, b""
            if op == "reset":
                return {"task": w.reset(request.get("seed"))}, b""
            if op == "success":
                return {"success": w.is_success()}, b""
            if op == "frame":
                key = (request["camera"], int(request["height"]), int(request["width"]))
                if key not in cameras:
                    cameras[key] = w.camera(*key)
                frame = cameras[key].read()
                return {"bytes": frame.nbytes}, frame.tobytes()
            return {"error": f"unknown request {op!r}"}, b""
        except Exception as exc:  # report to the client instead of dropping its connection
            return {"error": f"{type(exc).__name__}: {exc}"}, b""

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.path.unlink(missing_ok=True)


class _Connection:
    def __init__(self, path: str | Path):
        self.path = str(path)
        try:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(self.path)
        except OSError as exc:
            raise HardwareError(f"no virtual arm serves {self.path} ({exc}); start one with "
                                "`so101lab virtual-arm --task PickCube` and use the socket it prints") from None
        self.file = self.sock.makefile("rb")
        self.lock = threading.Lock()

    def ask(self, **request: Any) -> tuple[dict[str, Any], bytes]:
        with self.lock:
            self.sock.sendall(json.dumps(request).encode() + b"\n")
            line = self.file.readline()
            if not line:
                raise HardwareError(f"the virtual arm at {self.path} went away")
            reply = json.loads(line)
            payload = self.file.read(reply["bytes"]) if "bytes" in reply else b""
        if "error" in reply:
            raise HardwareError(f"virtual arm at {self.path}: {reply['error']}")
        return reply, payload

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class RemoteCamera:
    """A camera of a virtual world in another process (one connection per camera)."""

    def __init__(self, path: str | Path, name: str, height: int, width: int):
        self.name, self.height, self.width = name, height, width
        self._conn = _Connection(path)

    def read(self) -> np.ndarray:
        try:
            _, payload = self._conn.ask(op="frame", camera=self.name, height=self.height, width=self.width)
        except HardwareError as exc:
            raise CameraError(f"virtual camera {self.name}: {exc}") from None
        return np.frombuffer(payload, np.uint8).reshape(self.height, self.width, 3)

    def close(self) -> None:
        self._conn.close()


class RemoteWorld:
    """Client of a `WorldServer`: the serial port, calibration and episode hooks."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._conn = _Connection(path)
        self.port: str = self._conn.ask(op="port")[0]["port"]

    def calibration(self) -> Calibration:
        raw = self._conn.ask(op="calibration")[0]["calibration"]
        return {n: MotorCalibration(**c) for n, c in raw.items()}

    def reset(self, seed: int | None = None) -> str:
        return self._conn.ask(op="reset", seed=seed)[0]["task"]

    def is_success(self) -> bool:
        return bool(self._conn.ask(op="success")[0]["success"])

    def camera(self, name: str, height: int, width: int) -> RemoteCamera:
        return RemoteCamera(self.path, name, height, width)

    def close(self) -> None:
        self._conn.close()
