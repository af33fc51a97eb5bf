"""`so101lab/Real-v0`: the real (or virtual) SO-101 with the sim envs' spaces, keys, units and 30 Hz.

Safety: goals are clipped to the calibrated range and to ``max_relative_target`` of the present
pose, and torque goes off on `close()`, on any exception inside `reset`/`step` (Ctrl-C included)
and when the interpreter exits with the env still open.

`reset()` starts every episode where the sim starts: an arm outside the sim's home pose (±
its reset noise) is moved there slowly and at reduced torque (`HomeMove`), so a policy trained
in sim sees the first states it was trained on.
"""

from __future__ import annotations

import contextlib
import math
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np

from so101lab.camera_file import load_camera_file
from so101lab.contract import (
    CONTROL_DT,
    CONTROL_HZ,
    DEFAULT_IMAGE_SIZE,
    JOINT_NAMES,
    NUM_JOINTS,
    OBS_PIXELS,
    OBS_STATE,
    CameraSpec,
    joint_space,
    observation_space,
)
from so101lab.envs.base import HOME_NOISE, HOME_POSE
from so101lab.real.arm import IDS, SO101Arm
from so101lab.real.calibration import Calibration
from so101lab.real.cameras import CameraSource, FFmpegCamera
from so101lab.real.errors import CameraError, HardwareError


@dataclass(frozen=True)
class HomeMove:
    """How `reset()` brings the arm to the sim's home pose before an episode."""

    pose: Sequence[float] = tuple(float(x) for x in HOME_POSE)  # joint targets, LeRobot units
    noise: float = HOME_NOISE  # the goal is pose + uniform(-noise, noise), drawn from the env's seed
    speed: float = 45.0  # deg/s (gripper units/s) of the joint with the farthest to go; all arrive together
    torque: float = 0.5  # fraction of the servos' torque allowed during the move: a blocked arm yields
    tolerance: float = 4.0  # each joint within this of its goal when the move ends (gravity sag, backlash)
    settle_seconds: float = 2.0  # time allowed past the planned duration to arrive

    def __post_init__(self) -> None:
        if len(self.pose) != NUM_JOINTS:
            raise ValueError(f"HomeMove.pose needs {NUM_JOINTS} joint targets, got {len(self.pose)}")
        if self.noise < 0 or self.tolerance <= 0 or self.speed <= 0 or self.settle_seconds <= 0:
            raise ValueError("HomeMove needs noise >= 0 and tolerance, speed, settle_seconds > 0")
        if not 0 < self.torque <= 1:
            raise ValueError(f"HomeMove.torque is a fraction in (0, 1], got {self.torque}")


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
                 camera_config: str | Path | None = None, home: HomeMove | None = HomeMove()):
        """`camera_config`: a camera file (so101lab.camera_file); its cameras' names and sizes are the
        ones recorded, so a dataset from this arm matches one from a sim env given the same file.
        `home`: the move to the sim's home pose at each reset (None: start wherever the arm is;
        ``reset(options={"home": False})`` skips it for one episode)."""
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.task = task
        self.hooks = episode_hooks
        self.home = home
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
            if self.home is not None and (options or {}).get("home", True):
                self.move_home(self.home)
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

    def move_home(self, home: HomeMove) -> bool:
        """Bring the arm into the sim's start region (``home.pose`` ± ``home.noise``), speed- and
        torque-limited; False if it was there already. Raises `HardwareError` if it does not arrive."""
        pose = np.asarray(home.pose, dtype=np.float32)
        present = self.arm.read()
        if np.all(np.abs(present - pose) <= home.noise + home.tolerance):
            return False
        goal = pose + self.np_random.uniform(-home.noise, home.noise, NUM_JOINTS).astype(np.float32)
        goal = np.clip(goal, self.action_space.low, self.action_space.high)
        distance = goal - present
        steps = max(1, math.ceil(float(np.abs(distance).max()) / home.speed / CONTROL_DT))
        bus = self.arm.bus
        limits = bus.sync_read("Torque_Limit", IDS)
        reduced = {i: min(v, round(home.torque * 1000)) for i, v in limits.items()}
        bus.sync_write("Torque_Limit", reduced)
        if bus.sync_read("Torque_Limit", IDS) != reduced:  # a sync write has no reply: read it back
            raise HardwareError("the servos did not take the reduced torque limit for the home move; torque is off")
        try:
            next_tick = time.perf_counter()
            for k in range(1, steps + 1):
                s = k / steps
                self.arm.send(present + distance * (10 * s**3 - 15 * s**4 + 6 * s**5))  # minimum jerk
                next_tick += CONTROL_DT
                time.sleep(max(0.0, next_tick - time.perf_counter()))
            deadline = time.monotonic() + home.settle_seconds
            while np.any(np.abs((now := self.arm.read()) - goal) > home.tolerance):
                if time.monotonic() > deadline:
                    worst = int(np.argmax(np.abs(now - goal)))
                    raise HardwareError(
                        f"the arm did not reach the home pose: {JOINT_NAMES[worst]} is at {now[worst]:.1f}, "
                        f"its goal {goal[worst]:.1f} (blocked, or too heavy for {home.torque:.0%} torque?); "
                        "torque is off")
                time.sleep(CONTROL_DT)
        finally:
            if bus.disconnected is False and self.arm.connected:
                bus.sync_write("Torque_Limit", limits)
        return True

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
