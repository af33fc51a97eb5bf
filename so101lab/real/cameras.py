"""Cameras for the real arm: ffmpeg (v4l2 on Linux) with a background reader keeping the latest frame.

Reading never waits for the camera: `read()` returns the newest frame, and raises if the camera
has stalled (no new frame for ``stall_timeout``), so a control loop cannot act on a frozen image.
"""

from __future__ import annotations

import glob
import logging
import os
import subprocess
import threading
import time
from collections import deque
from typing import Protocol

import imageio_ffmpeg
import numpy as np

from so101lab.contract import CONTROL_HZ, DEFAULT_IMAGE_SIZE
from so101lab.real.errors import CameraError

log = logging.getLogger(__name__)
FPS_WINDOW = 30  # frames over which the delivered frame rate is measured


class CameraSource(Protocol):
    """Anything Real-v0 can take a frame from (a real camera, a virtual one)."""

    def read(self) -> np.ndarray:
        """The latest frame, HxWx3 uint8 RGB."""
        ...

    def close(self) -> None: ...


class VirtualCameras(Protocol):
    """Where bare camera names come from (a virtual arm's scene; `so101lab.real.ports.Port`)."""

    def virtual_camera(self, name: str, height: int, width: int) -> CameraSource: ...


def open_cameras(specs: tuple[str, ...], virtual: VirtualCameras,
                 image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE) -> dict[str, CameraSource]:
    """``name=/dev/videoN`` -> an ffmpeg camera; a bare ``name`` -> that camera of the virtual scene."""
    cams: dict[str, CameraSource] = {}
    for spec in specs:
        name, _, device = spec.partition("=")
        cams[name] = FFmpegCamera(device, *image_size) if device else virtual.virtual_camera(name, *image_size)
    return cams


class FFmpegCamera:
    """A camera read by an ffmpeg process writing raw RGB frames to a pipe."""

    def __init__(self, device: str = "/dev/video0", height: int = DEFAULT_IMAGE_SIZE[0],
                 width: int = DEFAULT_IMAGE_SIZE[1], fps: int = CONTROL_HZ, *, input_format: str = "v4l2",
                 stall_timeout: float = 1.0, start_timeout: float = 5.0):
        if fps < CONTROL_HZ:
            raise ValueError(f"camera {device} at {fps} fps is slower than the {CONTROL_HZ} Hz control rate; "
                             f"configure it for at least {CONTROL_HZ} fps (policies were trained on "
                             f"{CONTROL_HZ} fps recordings)")
        if input_format == "v4l2":
            if not os.path.exists(device):
                raise CameraError(f"camera {device} not found; `so101lab find-cameras` lists the cameras")
            if not os.access(device, os.R_OK):
                raise CameraError(f"permission denied reading camera {device}: add yourself to the video "
                                  "group (`sudo usermod -aG video $USER`) and log in again")
        self.device, self.height, self.width, self.fps = device, height, width, fps
        self.stall_timeout = stall_timeout
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
               "-f", input_format]
        if input_format == "v4l2":
            cmd += ["-framerate", str(fps), "-video_size", f"{width}x{height}"]
        else:
            cmd.insert(-2, "-re")  # files and test sources: deliver at their own rate, like a camera
        cmd += ["-i", device, "-f", "rawvideo", "-pix_fmt", "rgb24", "-vf", f"scale={width}:{height}", "-"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._stamps: deque[float] = deque(maxlen=FPS_WINDOW)
        self._warned_fps = False
        self.frames = 0
        self._thread = threading.Thread(target=self._read_loop, name=f"camera {device}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout
        while self._frame is None and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.005)
        if self._frame is None:
            err = self._stderr()
            self.close()
            raise CameraError(f"camera {device} delivered no frame within {start_timeout:.0f} s"
                              + (f": {err}" if err else " (is another program using it?)"))

    def _read_loop(self) -> None:
        size = self.height * self.width * 3
        stdout = self._proc.stdout
        assert stdout is not None
        while True:
            buf = stdout.read(size)
            if len(buf) < size:
                return  # ffmpeg ended: read() reports the stall
            frame = np.frombuffer(buf, np.uint8).reshape(self.height, self.width, 3)
            with self._lock:
                self._frame, self._stamp = frame, time.monotonic()
                self._stamps.append(self._stamp)
                self.frames += 1

    def _stderr(self) -> str:
        if self._proc.poll() is None or self._proc.stderr is None:
            return ""
        lines = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def read(self) -> np.ndarray:
        with self._lock:
            frame, age = self._frame, time.monotonic() - self._stamp
        if frame is None or age > self.stall_timeout:
            raise CameraError(f"camera {self.device} stalled: no new frame for {age:.1f} s (unplugged, or "
                              "USB bandwidth exhausted by several cameras on one hub?)")
        fps = self.measured_fps
        if fps is not None and fps < 0.8 * CONTROL_HZ and not self._warned_fps:
            self._warned_fps = True
            log.warning("camera %s delivers %.1f fps, below the %d Hz control rate: observations will "
                        "repeat frames (too little light makes many webcams halve their rate)",
                        self.device, fps, CONTROL_HZ)
        return frame

    @property
    def measured_fps(self) -> float | None:
        """Frame rate actually delivered over the last frames (None until enough frames came)."""
        with self._lock:
            stamps = list(self._stamps)
        if len(stamps) < FPS_WINDOW:
            return None
        return (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-9)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._thread.join(timeout=2)


def find_cameras(timeout: float = 5.0, devices: list[str] | None = None, input_format: str = "v4l2") -> list[dict]:
    """Each device (default: every /dev/video*) with whether one frame could be read from it (and why not).

    ``devices`` and ``input_format`` let tests probe real streams without a camera (a pipe ffmpeg writes to).
    """
    found = []
    for device in sorted(glob.glob("/dev/video*")) if devices is None else devices:
        entry: dict = {"device": device}
        try:
            cam = FFmpegCamera(device, start_timeout=timeout, input_format=input_format)
            entry.update(ok=True, shape=list(cam.read().shape))
            cam.close()
        except (CameraError, ValueError) as exc:
            entry.update(ok=False, error=str(exc))
        found.append(entry)
    return found
