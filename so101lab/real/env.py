"""`so101lab/Real-v0`: the real (or virtual) SO-101 with the sim envs' spaces, keys, units and 30 Hz.

Safety: goals are clipped to the calibrated range and to ``max_relative_target`` of the present
pose, and torque goes off on `close()`, on any exception inside `reset`/`step` (Ctrl-C included)
and when the interpreter exits with the env still open.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np

from so101lab.camera_file import load_camera_file
from so101lab.contract import (
    CONTROL_DT,
    CONTROL_HZ,
    DEFAULT_IMAGE_SIZE,
    NUM_JOINTS,
    OBS_PIXELS,
    OBS_STATE,
    CameraSpec,
    joint_space,
    observation_space,
)
from so101lab.real.arm import SO101Arm
from so101lab.real.calibration import Calibration
from so101lab.real.cameras import CameraSource, FFmpegCamera
from so101lab.real.errors import CameraError


class EpisodeHooks(Protocol):
    """Who resets the scene and judges success: a person on hardware, the sim on a virtual arm."""

    def reset(self, seed: int | None = None) -> str:
        """Set up a new episode; return its language instruction."""
        ...

    def is_success(self) -> bool: ...


def _shutdown(arm: SO101Arm, cameras: dict[str, CameraSource]) -> None:
    try:
        arm.disconnect()
    finally:
        for cam in cameras.values():
            cam.close()


class SO101RealEnv(gym.Env):
    """An SO-101 follower on a serial port with cameras, stepped at 30 Hz of wall-clock time."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, port: str, calibration: Calibration | str | Path,
                 cameras: Mapping[str, CameraSource | str] | None = None, *,
                 image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE, max_relative_target: float | None = None,
                 task: str = "", episode_hooks: EpisodeHooks | None = None, render_mode: str | None = None,
                 camera_config: str | Path | None = None):
        """`camera_config`: a camera file (so101lab.camera_file); its cameras' names and sizes are the
        ones recorded, so a dataset from this arm matches one from a sim env given the same file."""
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.task = task
        self.hooks = episode_hooks
        self.arm = SO101Arm(port, calibration, role="follower", max_relative_target=max_relative_target)
        self.cameras: dict[str, CameraSource] = {}
        sizes = {c.name: (c.height, c.width) for c in load_camera_file(camera_config)} if camera_config else {}
        unknown = [name for name in (cameras or {}) if sizes and name not in sizes]
        if unknown:
            raise ValueError(f"camera(s) {unknown} are not in the camera file {camera_config} (it has {sorted(sizes)})")
        try:
            for name, source in (cameras or {}).items():
                size = sizes.get(name, image_size)
                delivered = (getattr(source, "height", None), getattr(source, "width", None))
                if name in sizes and None not in delivered and delivered != size:
                    raise ValueError(f"camera {name!r} delivers {delivered[0]}x{delivered[1]} but the camera "
                                     f"file {camera_config} says {size[0]}x{size[1]}")
                self.cameras[name] = FFmpegCamera(source, *size) if isinstance(source, str) else source
            self.arm.connect()
        except BaseException:
            _shutdown(self.arm, self.cameras)
            raise
        self._finalizer = weakref.finalize(self, _shutdown, self.arm, self.cameras)
        self.specs = tuple(CameraSpec(n, *sizes.get(n, image_size)) for n in self.cameras)
        self.action_space = joint_space()
        self.observation_space = observation_space(self.specs)
        self._next_tick: float | None = None
        self.last_frames: dict[str, np.ndarray] = {}
        self.overruns = 0  # ticks that started late (the loop could not keep 30 Hz)

    # -- gym API ----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        with self._failsafe():
            if self.hooks is not None:
                self.task = self.hooks.reset(seed)
            obs = self._observation()
            self._next_tick = time.perf_counter() + CONTROL_DT
        return obs, self._info(False)

    def step(self, action):
        with self._failsafe():
            action = np.asarray(action, dtype=np.float32).reshape(-1)
            if action.shape != (NUM_JOINTS,) or not np.all(np.isfinite(action)):
                raise ValueError(f"action must be {NUM_JOINTS} finite joint targets (deg, gripper 0..100), "
                                 f"got {action!r}")
            clipped = np.clip(action, self.action_space.low, self.action_space.high)
            sent = self.arm.send(clipped)
            self._wait_tick()
            obs = self._observation()
            success = bool(self.hooks.is_success()) if self.hooks is not None else False
        info = self._info(success)
        info["sent_action"] = sent
        return obs, 0.0, success, False, info

    def render(self):
        if self.render_mode == "rgb_array" and self.last_frames:
            return np.concatenate(list(self.last_frames.values()), axis=1)
        return None

    def close(self) -> None:
        """Torque off and release the port and cameras (idempotent)."""
        self._finalizer()

    # -- helpers ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _failsafe(self) -> Iterator[None]:
        """Any failure inside, Ctrl-C included, turns torque off before it propagates."""
        if not self.arm.connected:
            raise RuntimeError("Real-v0 is closed (torque was turned off); make a new env")
        try:
            yield
        except BaseException:
            self.close()
            raise

    def _wait_tick(self) -> None:
        now = time.perf_counter()
        if self._next_tick is None:
            self._next_tick = now
        if now < self._next_tick:
            time.sleep(self._next_tick - now)
            self._next_tick += CONTROL_DT
        else:
            self.overruns += now - self._next_tick > 0.005
            self._next_tick = now + CONTROL_DT

    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {OBS_STATE: self.arm.read()}
        if self.cameras:
            frames = {}
            for spec in self.specs:
                frame = self.cameras[spec.name].read()
                if frame.shape != (spec.height, spec.width, 3) or frame.dtype != np.uint8:
                    raise CameraError(f"camera {spec.name} gave a {frame.dtype} frame of shape "
                                      f"{frame.shape}, expected uint8 {(spec.height, spec.width, 3)}")
                frames[spec.name] = frame
            obs[OBS_PIXELS] = self.last_frames = frames
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        return {"task": self.task, "is_success": success}
