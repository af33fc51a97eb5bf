"""so101lab's virtual SO-101 as a LeRobot robot: `--robot.type=so101lab_virtual --robot.world=<socket>`.

`so101lab virtual-arm --task PickCube` serves a virtual arm on a pseudo-terminal and its scene (rendered
cameras, episode reset, success) on a Unix socket; it prints both. This robot is LeRobot's own SO-101
follower on that pseudo-terminal (its Feetech bus, safety limits and configuration), with the scene's
cameras as LeRobot cameras (`--robot.cameras` of type `so101lab` work on a plain `so101_follower` too),
the scene's calibration (no interactive calibration) and `reset_scene(seed)` / `is_success()`.
Imported by LeRobot >= 0.6 at start-up (distribution name `lerobot_robot_*`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from lerobot.cameras import CameraConfig
from lerobot.cameras.camera import Camera
from lerobot.motors import MotorCalibration
from lerobot.robots import RobotConfig
from lerobot.robots.so_follower import SOFollower
from lerobot.robots.so_follower.config_so_follower import SOFollowerConfig


@CameraConfig.register_subclass("so101lab")
@dataclass
class SO101LabCameraConfig(CameraConfig):
    """A camera of an so101lab virtual arm's scene, rendered on request by the `so101lab virtual-arm` process."""

    world: str = ""  # the Unix socket `so101lab virtual-arm` prints (virtual@<socket>: the part after @)
    name: str = "front"  # camera name in the scene
    fps: int | None = 30
    width: int | None = 640
    height: int | None = 480


class SO101LabCamera(Camera):
    """Frames are rendered when read (the scene's present state), RGB uint8 (height, width, 3)."""

    def __init__(self, config: SO101LabCameraConfig):
        super().__init__(config)
        self.config = config
        self._camera = None

    @property
    def is_connected(self) -> bool:
        return self._camera is not None

    @staticmethod
    def find_cameras() -> list[dict[str, Any]]:
        return []

    def connect(self, warmup: bool = True) -> None:
        from so101lab.real.virtual_remote import RemoteWorld

        self._camera = RemoteWorld(self.config.world).camera(self.config.name, self.config.height, self.config.width)

    def read(self) -> np.ndarray:
        if self._camera is None:
            raise RuntimeError(f"so101lab camera {self.config.name} is not connected")
        return self._camera.read().copy()

    def async_read(self, timeout_ms: float = 200) -> np.ndarray:
        return self.read()

    def read_latest(self, max_age_ms: int = 500) -> np.ndarray:
        return self.read()

    def disconnect(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None


@RobotConfig.register_subclass("so101lab_virtual")
@dataclass
class SO101LabVirtualConfig(RobotConfig, SOFollowerConfig):
    """LeRobot's SO-101 follower settings; `port` defaults to the virtual arm's pseudo-terminal."""

    port: str = ""
    world: str = ""  # the Unix socket printed by `so101lab virtual-arm --task <Task>`
    camera_names: str = "front,wrist"  # comma-separated scene cameras, added as `--robot.cameras`
    camera_height: int = 480
    camera_width: int = 640
    cameras: dict[str, CameraConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.world:
            raise ValueError("--robot.world: the socket `so101lab virtual-arm --task <Task>` printed is required")
        if not self.port:
            from so101lab.real.virtual_remote import RemoteWorld

            world = RemoteWorld(self.world)
            self.port = world.port
            world.close()
        for name in (n.strip() for n in self.camera_names.split(",") if n.strip()):
            self.cameras.setdefault(name, SO101LabCameraConfig(
                world=self.world, name=name, height=self.camera_height, width=self.camera_width))  # fmt: skip
        super().__post_init__()


class SO101LabVirtual(SOFollower):
    """LeRobot's SO-101 follower on the virtual arm, calibrated as the scene's arm is, with episode hooks."""

    config_class = SO101LabVirtualConfig
    name = "so101lab_virtual"

    def __init__(self, config: SO101LabVirtualConfig):
        from so101lab.real.virtual_remote import RemoteWorld

        self._world = RemoteWorld(config.world)
        super().__init__(config)
        # The scene's calibration, the one `so101lab virtual-arm --calibration-out` writes: no prompts.
        self.calibration = {n: MotorCalibration(**vars(c)) for n, c in self._world.calibration().items()}
        self.bus.calibration = self.calibration
        self._save_calibration()

    def connect(self, calibrate: bool = True) -> None:
        self.bus.connect()
        if not self.bus.is_calibrated:
            self.bus.write_calibration(self.calibration)
        for cam in self.cameras.values():
            cam.connect()
        self.configure()

    def calibrate(self) -> None:
        self.bus.write_calibration(self.calibration)

    def reset_scene(self, seed: int | None = None) -> str:
        """Place the scene's objects for a new episode (as the sim does on `seed`); returns its instruction."""
        task = self._world.reset(seed)
        time.sleep(0.1)  # let the virtual servos settle on the reset pose
        return task

    def is_success(self) -> bool:
        """Whether the scene's task is achieved now (the sim task's success test)."""
        return self._world.is_success()

    def disconnect(self) -> None:
        super().disconnect()
        self._world.close()
