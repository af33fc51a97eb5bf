"""PickCube: lift a cube of a named colour off the table."""

from __future__ import annotations

import numpy as np

from so101lab.envs.base import COLORS, TABLE_Z, Evaluation, SO101Env
from so101lab.envs.experts import Pick

CUBE_HALF = 0.0125
LIFT_HEIGHT = 0.05  # the cube's bottom must rise this far above the table
# Region (x, y ranges in metres, robot base frame) where cubes are placed: in front of the arm,
# within comfortable top-down reach.
CUBE_REGION = ((0.16, 0.28), (-0.12, 0.12))


def sample_xy(rng: np.random.Generator, region=CUBE_REGION) -> np.ndarray:
    (x0, x1), (y0, y1) = region
    return np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])


def grasp_terms(env: SO101Env, cube: str) -> tuple[float, float, float]:
    """Dense reward terms shared by the pick tasks: reach the cube, close on it, lift it (each 0..1)."""
    cube_pos = env.object_pose(cube)[:3]
    reach = 1.0 - np.tanh(10.0 * np.linalg.norm(env.tcp_position - cube_pos))
    closed = 1.0 - env.joint_positions[5] / 100.0
    lift = np.clip((cube_pos[2] - CUBE_HALF - TABLE_Z) / LIFT_HEIGHT, 0.0, 1.0)
    return float(reach), float(closed * reach), float(lift)


class PickCubeEnv(SO101Env):
    xml_file = "pick_cube.xml"
    object_names = ("cube",)

    def _reset_task(self, rng: np.random.Generator) -> str:
        color = str(rng.choice(list(COLORS)))
        self.set_color("cube", self.randomizer.jitter_color(rng, COLORS[color]))
        xy = sample_xy(rng)
        self.set_object_pose("cube", np.array([*xy, TABLE_Z + CUBE_HALF]), yaw=rng.uniform(-np.pi, np.pi))
        self.cube_color = color
        return f"pick up the {color} cube"

    def _evaluate(self) -> Evaluation:
        reach, grasp, lift = grasp_terms(self, "cube")
        lifted = self.object_pose("cube")[2] - CUBE_HALF - TABLE_Z > LIFT_HEIGHT
        return Evaluation(bool(lifted), {"reach": reach, "grasp": grasp, "lift": lift})

    def expert_plan(self) -> list[Pick]:
        return [Pick("cube")]
