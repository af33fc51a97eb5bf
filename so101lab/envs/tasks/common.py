"""Pieces the cube tasks share: object sizes, placement sampling, success tests, reward terms."""

from __future__ import annotations

import numpy as np

from so101lab.envs.base import TABLE_Z, SO101Env

CUBE_HALF = 0.0125
BIN_INNER_HALF = 0.039  # inner half-width of a bin
BIN_WALL_TOP = 0.03
LIFT_HEIGHT = 0.05  # PickCube: the cube's bottom must rise this far above the table
# Where objects are placed: a box in front of the arm (x, y ranges in metres, robot base frame)
# cut to the ring around the shoulder_pan axis where the tool reaches straight down with margin.
WORKSPACE = ((0.13, 0.29), (-0.16, 0.16))
PAN_AXIS_XY = np.array([0.0388, 0.0])
REACH = (0.11, 0.245)  # m from the pan axis
PLACE_CLEARANCE = 0.006  # m between a released cube and what it lands on


def sample_positions(rng: np.random.Generator, radii: list[float], region=WORKSPACE,
                     tries: int = 1000) -> list[np.ndarray]:
    """Non-overlapping xy positions of objects with the given footprint radii."""
    (x0, x1), (y0, y1) = region
    placed: list[np.ndarray] = []
    for radius in radii:
        for _ in range(tries):
            xy = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            reach = np.linalg.norm(xy - PAN_AXIS_XY)
            if REACH[0] <= reach <= REACH[1] and all(
                np.linalg.norm(xy - p) > radius + r for p, r in zip(placed, radii)
            ):
                placed.append(xy)
                break
        else:
            raise RuntimeError(f"could not place {len(radii)} objects in {region} without overlap")
    return placed


def place_cube(env: SO101Env, name: str, xy: np.ndarray, rng: np.random.Generator) -> None:
    env.set_object_pose(name, np.array([*xy, TABLE_Z + CUBE_HALF]), yaw=rng.uniform(-np.pi, np.pi))


def place_bin(env: SO101Env, name: str, xy: np.ndarray) -> None:
    env.model.body_pos[env.model.body(name).id] = (*xy, TABLE_Z)


def bin_xy(env: SO101Env, name: str) -> np.ndarray:
    return env.model.body_pos[env.model.body(name).id][:2].copy()


def cube_lifted(cube_pos: np.ndarray) -> np.ndarray:
    """PickCube's height test on a cube centre (NumPy or JAX arrays, batched over leading axes)."""
    return cube_pos[..., 2] - CUBE_HALF - TABLE_Z > LIFT_HEIGHT


def cube_within_bin(cube_pos: np.ndarray, bin_pos_xy: np.ndarray) -> np.ndarray:
    """A cube centre lies within a bin's walls and below their top (NumPy or JAX arrays)."""
    inside = (abs(cube_pos[..., :2] - bin_pos_xy) < BIN_INNER_HALF - CUBE_HALF * 0.5).all(-1)
    return inside & (cube_pos[..., 2] < TABLE_Z + BIN_WALL_TOP + CUBE_HALF)


def in_bin(env: SO101Env, cube: str, bin_name: str) -> bool:
    """The cube rests inside the bin: within its walls, below their top, not held up."""
    return bool(cube_within_bin(env.object_pose(cube)[:3], bin_xy(env, bin_name))) and not env.is_grasped(cube)


def above_bin(env: SO101Env, bin_name: str) -> np.ndarray:
    """Tcp position to release a cube into a bin."""
    return np.array([*bin_xy(env, bin_name), TABLE_Z + BIN_WALL_TOP + CUBE_HALF + 2 * PLACE_CLEARANCE])


def pick_terms(env: SO101Env, cube: str) -> dict[str, float]:
    """Dense reward terms (each 0..1): reach the cube, close on it, lift it."""
    cube_pos = env.object_pose(cube)[:3]
    reach = 1.0 - np.tanh(10.0 * np.linalg.norm(env.tcp_position - cube_pos))
    lift = np.clip((cube_pos[2] - CUBE_HALF - TABLE_Z) / LIFT_HEIGHT, 0.0, 1.0)
    return {"reach": float(reach), "grasp": float(env.is_grasped(cube)), "lift": float(lift)}


def place_terms(env: SO101Env, cube: str, target: np.ndarray) -> dict[str, float]:
    """Pick terms plus closeness of the cube to where it should end up."""
    distance = np.linalg.norm(env.object_pose(cube)[:2] - target[:2])
    return {**pick_terms(env, cube), "place": float(1.0 - np.tanh(10.0 * distance))}
