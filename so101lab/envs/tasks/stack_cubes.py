"""StackCubes: put the cube of one named colour on top of the cube of another."""

from __future__ import annotations

import numpy as np

from so101lab.envs.base import COLORS, SO101Env
from so101lab.envs.experts import Pick
from so101lab.envs.tasks.common import CUBE_HALF, PLACE_CLEARANCE, place_cube, place_terms, sample_positions


class StackCubesEnv(SO101Env):
    """a_cube goes on b_cube."""

    xml_file = "stack_cubes.xml"
    object_names = ("a_cube", "b_cube")

    def _reset_task(self, rng: np.random.Generator) -> str:
        top, bottom = (str(c) for c in rng.choice(list(COLORS), 2, replace=False))
        for name, color in (("a_cube", top), ("b_cube", bottom)):
            self.set_color(name, self.randomizer.jitter_color(rng, COLORS[color]))
        for name, xy in zip(self.object_names, sample_positions(rng, [0.035, 0.035])):
            place_cube(self, name, xy, rng)
        return f"stack the {top} cube on the {bottom} cube"

    def _stack_target(self) -> np.ndarray:
        """Tcp position to release the top cube just above the bottom one."""
        return self.object_pose("b_cube")[:3] + (0, 0, 2 * CUBE_HALF + 2 * PLACE_CLEARANCE)

    def is_success(self) -> bool:
        top, bottom = self.object_pose("a_cube")[:3], self.object_pose("b_cube")[:3]
        offset = top - bottom
        return bool(np.linalg.norm(offset[:2]) < CUBE_HALF and abs(offset[2] - 2 * CUBE_HALF) < 0.005
                    and bottom[2] < 1.5 * CUBE_HALF and not self.is_grasped("a_cube"))

    def _reward_terms(self) -> dict[str, float]:
        return place_terms(self, "a_cube", self.object_pose("b_cube")[:3])

    def expert_plan(self) -> list[Pick]:
        return [Pick("a_cube", self._stack_target)]
