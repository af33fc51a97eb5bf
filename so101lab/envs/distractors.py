"""Distractors: spare objects of random shape, size and colour that stand where they do not block the task.

They are static bodies (no joint, so no degrees of freedom and no change to the state vector)
whose one geom collides like any object; the slots are added at build time and parked far below
the table when unused, where they touch nothing. An episode moves some of them onto the table
outside the footprints of the task's bodies, the arm's corridors to them and their lines of
sight to the fixed cameras, and colours them away from every task body's colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from so101lab.envs.textures import random_color

SHAPES = (mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_SPHERE)
PARKED_Z = -5.0  # m: unused slots, below the floor and every camera's view
REGION = ((-0.05, 0.33), (-0.26, 0.26))  # m: xy box of the table the front and wrist cameras see
PAN_AXIS_XY = np.array([0.0388, 0.0])
BASE_CLEARANCE = 0.11  # m from the pan axis: the base and the shoulder's sweep
PATH_CLEARANCE = 0.05  # m between a distractor and the arm's corridor to a task body
FOOTPRINT_GAP = 0.03  # m between a distractor and a task body's footprint (or another distractor)
SIGHT_CLEARANCE = 0.02  # m between a distractor and a task body's line of sight to a fixed camera
COLOR_MARGIN = 0.35  # RGB distance from every task body's colour


def distractor_name(i: int) -> str:
    return f"dr_distractor_{i}"


def add_distractor_slots(spec: mujoco.MjSpec, n: int) -> None:
    """`n` parked static bodies, one colliding geom each (its shape and size are set per episode)."""
    for i in range(n):
        body = spec.worldbody.add_body(name=distractor_name(i), pos=[0.0, 0.0, PARKED_Z])
        body.add_geom(name=distractor_name(i), type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.01, 0.01, 0.01],
                      rgba=[0.5, 0.5, 0.5, 1.0], contype=1, conaffinity=1, friction=[0.8, 5e-3, 1e-4])


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / max(np.dot(ab, ab), 1e-12), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))


@dataclass
class Footprint:
    """A task body on the table: xy centre (m), radius (m) and its colours (what distractors avoid)."""

    xy: np.ndarray
    radius: float
    colors: list[np.ndarray]


class Distractors:
    """Places the model's distractor slots per episode; `restore` parks them all."""

    def __init__(self, model: mujoco.MjModel, count: tuple[int, int]):
        self.model = model
        self.count = count
        self.bodies = np.array([model.body(distractor_name(i)).id for i in range(count[1])], dtype=int)
        self.geoms = np.array([model.geom(distractor_name(i)).id for i in range(count[1])], dtype=int)
        self.placed = 0

    def restore(self) -> None:
        m = self.model
        m.body_pos[self.bodies] = (0.0, 0.0, PARKED_Z)
        self.placed = 0

    def place(self, rng: np.random.Generator, task: Sequence[Footprint], cameras_xyz: Sequence[np.ndarray],
              tcp_xy: np.ndarray) -> int:
        """Shape, size, colour and pose of this episode's distractors; returns how many stand on the table."""
        m = self.model
        n = int(rng.integers(self.count[0], self.count[1] + 1))
        avoid = [c for body in task for c in body.colors]
        placed: list[tuple[np.ndarray, float]] = []
        for body, geom in zip(self.bodies[:n], self.geoms[:n], strict=True):
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            if shape == mujoco.mjtGeom.mjGEOM_BOX:
                size = np.array([*rng.uniform(0.008, 0.03, 2), rng.uniform(0.008, 0.025)])
                radius, half_height, rbound = float(np.hypot(*size[:2])), size[2], float(np.linalg.norm(size))
                aabb = size
            elif shape == mujoco.mjtGeom.mjGEOM_CYLINDER:
                size = np.array([rng.uniform(0.01, 0.025), rng.uniform(0.01, 0.03), 0.0])
                radius, half_height, rbound = size[0], size[1], float(np.hypot(size[0], size[1]))
                aabb = np.array([size[0], size[0], size[1]])
            else:
                size = np.array([rng.uniform(0.01, 0.025), 0.0, 0.0])
                radius = half_height = rbound = size[0]
                aabb = np.full(3, size[0])
            xy = self._free_spot(rng, radius, 2 * half_height, task, placed, cameras_xyz, tcp_xy)
            if xy is None:
                continue
            placed.append((xy, radius))
            m.geom_type[geom] = shape
            m.geom_size[geom] = size
            m.geom_rbound[geom] = rbound
            m.geom_aabb[geom] = (0.0, 0.0, 0.0, *aabb)
            m.geom_rgba[geom, :3] = random_color(rng, avoid, COLOR_MARGIN)
            m.body_pos[body] = (*xy, half_height)
            yaw = rng.uniform(-np.pi, np.pi)
            m.body_quat[body] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.placed = len(placed)
        return self.placed

    @staticmethod
    def _free_spot(rng: np.random.Generator, radius: float, height: float, task: Sequence[Footprint],
                   placed: list[tuple[np.ndarray, float]], cameras_xyz: Sequence[np.ndarray],
                   tcp_xy: np.ndarray, tries: int = 300) -> np.ndarray | None:
        (x0, x1), (y0, y1) = REGION
        for _ in range(tries):
            xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            if np.linalg.norm(xy - PAN_AXIS_XY) < BASE_CLEARANCE + radius:
                continue
            if any(np.linalg.norm(xy - p) < r + radius + FOOTPRINT_GAP for p, r in placed):
                continue
            if _segment_distance(xy, PAN_AXIS_XY, tcp_xy) < PATH_CLEARANCE + radius:
                continue
            if not all(_clear_of(xy, radius, height, body, cameras_xyz, tcp_xy) for body in task):
                continue
            return xy
        return None


def _clear_of(xy: np.ndarray, radius: float, height: float, body: Footprint, cameras_xyz: Sequence[np.ndarray],
              tcp_xy: np.ndarray) -> bool:
    """Outside the body's footprint, the arm's corridors to it, and its lines of sight to the cameras."""
    if np.linalg.norm(xy - body.xy) < body.radius + radius + FOOTPRINT_GAP:
        return False
    for start in (PAN_AXIS_XY, tcp_xy):
        if _segment_distance(xy, start, body.xy) < PATH_CLEARANCE + radius:
            return False
    for camera in cameras_xyz:
        # The sight line from the body's top to the camera descends to the body over the horizontal
        # distance `reach`; a distractor of this height hides the body only where the line is lower.
        offset = camera[:2] - body.xy
        reach = float(np.linalg.norm(offset))
        if reach < 1e-6:
            continue
        shadow = min(reach, height * reach / max(camera[2], 0.05) + body.radius)
        end = body.xy + offset / reach * shadow
        if _segment_distance(xy, body.xy, end) < body.radius + radius + SIGHT_CLEARANCE:
            return False
    return True
