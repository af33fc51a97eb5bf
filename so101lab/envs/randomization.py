"""Domain randomisation of the SO-101 scenes: seeded, configurable, undone at every reset.

Each reset restores the nominal model, then perturbs it with the env's seeded generator, so
episodes are independent and `reset(seed=s)` reproduces one exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import mujoco
import numpy as np

from so101lab.envs.servo import ServoParams


@dataclass(frozen=True)
class DomainRandomization:
    """How much each aspect varies per episode. Zero (or a (1, 1) scale) turns an aspect off.

    Object poses are randomised by the tasks themselves (their placement regions).
    """

    object_color: float = 0.08  # +- jitter of each RGB channel around the named colour
    light_intensity: float = 0.25  # +- relative change of the key light and headlight
    light_direction: float = 0.15  # +- change of each key light direction component (steep: shadows in the map)
    table_color: float = 0.12  # +- jitter of the table RGB tint
    camera_position: float = 0.01  # +- metres on each axis of the fixed cameras
    camera_rotation: float = 0.03  # +- radians about each axis of the fixed cameras
    friction_scale: tuple[float, float] = (0.8, 1.2)  # of every object and finger sliding friction
    object_mass_scale: tuple[float, float] = (0.7, 1.4)
    servo_gain_scale: tuple[float, float] = (0.9, 1.1)  # of the servo stiffness kp
    servo_damping_scale: tuple[float, float] = (0.8, 1.2)  # of the joint damping

    @classmethod
    def none(cls) -> DomainRandomization:
        """No randomisation at all: the nominal scene every episode (object poses still vary)."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0))


def _uniform(rng: np.random.Generator, scale: tuple[float, float]) -> float:
    lo, hi = scale
    if lo > hi or lo <= 0:
        raise ValueError(f"scale range {scale} must satisfy 0 < low <= high")
    return float(rng.uniform(lo, hi))


class Randomizer:
    """Applies a `DomainRandomization` to one MjModel; object colours are set by the tasks."""

    def __init__(self, model: mujoco.MjModel, config: DomainRandomization, object_geoms: list[int],
                 fixed_cameras: list[int]):
        self.model = model
        self.config = config
        self.object_geoms = np.array(object_geoms, dtype=int)
        self.fixed_cameras = np.array(fixed_cameras, dtype=int)
        self.table_material = model.geom_matid[model.geom("table").id]
        self.friction_geoms = np.flatnonzero(model.geom_contype > 0)
        self._nominal = {
            name: getattr(model, name).copy()
            for name in ("light_diffuse", "light_dir", "mat_rgba", "cam_pos", "cam_quat", "geom_friction",
                         "body_mass", "body_inertia")
        }
        self._nominal_headlight = model.vis.headlight.diffuse.copy()

    def restore(self) -> None:
        for name, value in self._nominal.items():
            getattr(self.model, name)[:] = value
        self.model.vis.headlight.diffuse[:] = self._nominal_headlight

    def apply(self, rng: np.random.Generator, servo: ServoParams) -> ServoParams:
        """Restore the nominal scene, perturb it, and return the servo parameters to use."""
        self.restore()
        c, m = self.config, self.model
        if c.light_intensity:
            m.light_diffuse *= rng.uniform(1 - c.light_intensity, 1 + c.light_intensity)
            m.vis.headlight.diffuse[:] *= rng.uniform(1 - c.light_intensity, 1 + c.light_intensity)
        if c.light_direction:
            m.light_dir += rng.uniform(-c.light_direction, c.light_direction, m.light_dir.shape)
            m.light_dir[:, 2] = -np.abs(m.light_dir[:, 2])  # keep lights pointing down
        if c.table_color:
            rgb = m.mat_rgba[self.table_material, :3]
            m.mat_rgba[self.table_material, :3] = np.clip(rgb + rng.uniform(-c.table_color, c.table_color, 3), 0, 1)
        for cam in self.fixed_cameras:
            m.cam_pos[cam] += rng.uniform(-c.camera_position, c.camera_position, 3)
            if c.camera_rotation:
                delta = np.zeros(4)
                mujoco.mju_axisAngle2Quat(delta, rng.normal(size=3), rng.uniform(-c.camera_rotation, c.camera_rotation))
                mujoco.mju_mulQuat(m.cam_quat[cam], delta, m.cam_quat[cam].copy())
        m.geom_friction[self.friction_geoms, 0] *= _uniform(rng, c.friction_scale)
        for body in np.unique(m.geom_bodyid[self.object_geoms]):
            scale = _uniform(rng, c.object_mass_scale)
            m.body_mass[body] *= scale
            m.body_inertia[body] *= scale
        return dataclasses.replace(
            servo,
            kp_per_p=servo.kp_per_p * _uniform(rng, c.servo_gain_scale),
            damping=servo.damping * _uniform(rng, c.servo_damping_scale),
        )

    def jitter_color(self, rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
        """A named colour with this episode's jitter (tasks colour their objects with it)."""
        amount = self.config.object_color
        return np.clip(np.asarray(rgb) + rng.uniform(-amount, amount, 3), 0, 1) if amount else np.asarray(rgb)
