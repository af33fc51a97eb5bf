"""The virtual arm inside a MuJoCo task: serial motors, cameras and episode resets of one scene.

`VirtualWorld` is what `so101lab virtual-arm --task PickCube` runs: a sim task env whose arm is
moved only through the emulated Feetech bus, cameras rendering that scene, and the hooks Real-v0
uses on a virtual arm to reset an episode and to judge success (a human does both on hardware).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from so101lab.contract import DEFAULT_IMAGE_SIZE
from so101lab.errors import UsageError
from so101lab.real.calibration import Calibration
from so101lab.real.physics import MujocoPhysics
from so101lab.real.virtual_arm import Faults, VirtualArm


def task_env_id(task: str) -> str:
    """'PickCube' or 'so101lab/PickCube-v0' -> the registered env id."""
    import so101lab  # noqa: F401  (registers the sim envs)

    env_id = task if "/" in task else f"so101lab/{task}-v0"
    if env_id not in gym.registry:
        known = sorted(k.split("/")[1].removesuffix("-v0") for k in gym.registry if k.startswith("so101lab/"))
        raise UsageError(f"unknown task {task!r}; known: {', '.join(k for k in known if k != 'Real')}")
    return env_id


class VirtualCamera:
    """A camera of the virtual world, rendered on demand in the caller's thread."""

    def __init__(self, world: VirtualWorld, name: str, height: int = DEFAULT_IMAGE_SIZE[0],
                 width: int = DEFAULT_IMAGE_SIZE[1]):
        if name not in world.sim.camera_names:
            raise UsageError(f"the virtual scene has no camera {name!r}; it has {world.sim.camera_names}")
        self.world, self.name, self.height, self.width = world, name, height, width
        self._renderer = None

    def read(self) -> np.ndarray:
        import mujoco

        if self._renderer is None:
            m = self.world.sim.model
            m.vis.global_.offheight = max(m.vis.global_.offheight, self.height)
            m.vis.global_.offwidth = max(m.vis.global_.offwidth, self.width)
            self._renderer = mujoco.Renderer(m, self.height, self.width)
        with self.world.physics.lock:
            self._renderer.update_scene(self.world.sim.data, self.name)
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class VirtualWorld:
    """A sim task driven through a virtual arm on a pty; start it, then point Real-v0 at `port`."""

    def __init__(self, task: str = "PickCube", *, faults: Faults | None = None, seed: int = 0,
                 factory: bool = False, env_kwargs: dict[str, Any] | None = None):
        self.env = gym.make(task_env_id(task), obs_mode="state", **(env_kwargs or {}))
        self.sim = self.env.unwrapped
        self.env.reset(seed=seed)
        self.physics = MujocoPhysics(self.sim)
        self.arm = VirtualArm(self.physics, faults=faults, factory=factory, seed=seed)
        # Powered and holding, as an arm left connected: it does not fall before a client connects.
        for m in self.arm.motors:
            m.set("Torque_Enable", 1)
        self._hold_pose()

    @property
    def port(self) -> str:
        return self.arm.port

    def start(self) -> VirtualWorld:
        self.arm.start()
        return self

    def stop(self) -> None:
        self.arm.stop()
        self.env.close()

    def __enter__(self) -> VirtualWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self, seed: int | None = None) -> str:
        """A new episode of the task (objects placed as the sim would on this seed); its instruction."""
        with self.physics.lock:
            self.env.reset(seed=seed)
            self._hold_pose()
        return self.sim.task

    def is_success(self) -> bool:
        with self.physics.lock:
            return self.sim.is_success()

    def camera(self, name: str, height: int = DEFAULT_IMAGE_SIZE[0], width: int = DEFAULT_IMAGE_SIZE[1]
               ) -> VirtualCamera:
        return VirtualCamera(self, name, height, width)

    def _hold_pose(self) -> None:
        """Goal registers at the present pose, so a reset arm holds where the sim put it."""
        with self.physics.lock:
            self.physics.reset_targets()
            self.arm.refresh()
            for m in self.arm.motors:
                m.set("Goal_Position", m.get("Present_Position"))
            self.arm.refresh()

    def calibration(self) -> Calibration:
        """The calibration a user would record on this arm (see `VirtualArm.calibration`)."""
        return self.arm.calibration()
