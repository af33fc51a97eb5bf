"""StackCubes: put the cube of one named colour on top of the cube of another."""

from __future__ import annotations

import numpy as np

from so101lab.envs.base import SO101Env
from so101lab.envs.experts import Pick
from so101lab.envs.tasks.common import CUBE_HALF, PLACE_CLEARANCE, place_cube, place_terms, sample_positions

STACK_HEIGHT_TOLERANCE = 0.005  # m: the top cube's centre within this of resting on the bottom one
BOTTOM_MAX_Z = 1.5 * CUBE_HALF  # m: the bottom cube's centre below this (still on the table)


def cubes_stacked(top_pos: np.ndarray, bottom_pos: np.ndarray) -> np.ndarray:
    """The top cube's centre rests on the bottom one's, which is on the table (NumPy or JAX arrays)."""
    offset = top_pos[..., :3] - bottom_pos[..., :3]
    centred = (offset[..., 0] ** 2 + offset[..., 1] ** 2) ** 0.5 < CUBE_HALF
    resting = abs(offset[..., 2] - 2 * CUBE_HALF) < STACK_HEIGHT_TOLERANCE
    return centred & resting & (bottom_pos[..., 2] < BOTTOM_MAX_Z)


class StackCubesEnv(SO101Env):
    """a_cube goes on b_cube."""

    xml_file = "stack_cubes.xml"
    object_names = ("a_cube", "b_cube")

    def _reset_task(self, rng: np.random.Generator) -> str:
        top, bottom = (str(c) for c in rng.choice(list(self.colors), 2, replace=False))
        for name, color in (("a_cube", top), ("b_cube", bottom)):
            self.set_color(name, self.randomizer.jitter_color(rng, self.colors[color]))
        for name, xy in zip(self.object_names, sample_positions(rng, [0.035, 0.035])):
            place_cube(self, name, xy, rng)
        return f"stack the {top} cube on the {bottom} cube"

    def _stack_target(self) -> np.ndarray:
        """Tcp position to release the top cube just above the bottom one."""
        return self.object_pose("b_cube")[:3] + (0, 0, 2 * CUBE_HALF + 2 * PLACE_CLEARANCE)

    def is_success(self) -> bool:
        return bool(cubes_stacked(self.object_pose("a_cube"), self.object_pose("b_cube"))) \
            and not self.is_grasped("a_cube")

    def _reward_terms(self) -> dict[str, float]:
        return place_terms(self, "a_cube", self.object_pose("b_cube")[:3])

    def expert_plan(self) -> list[Pick]:
        return [Pick("a_cube", self._stack_target)]
