"""PickCube: lift a cube of a named colour off the table."""

from __future__ import annotations

import numpy as np

from so101lab.envs.base import SO101Env
from so101lab.envs.experts import Pick
from so101lab.envs.tasks.common import cube_lifted, pick_terms, place_cube, sample_positions


class PickCubeEnv(SO101Env):
    xml_file = "pick_cube.xml"
    object_names = ("a_cube",)

    def _reset_task(self, rng: np.random.Generator) -> str:
        color = str(rng.choice(list(self.colors)))
        self.set_color("a_cube", self.randomizer.jitter_color(rng, self.colors[color]))
        (xy,) = sample_positions(rng, [0.02])
        place_cube(self, "a_cube", xy, rng)
        return f"pick up the {color} cube"

    def is_success(self) -> bool:
        return bool(cube_lifted(self.object_pose("a_cube"))) and self.is_grasped("a_cube")

    def _reward_terms(self) -> dict[str, float]:
        return pick_terms(self, "a_cube")

    def expert_plan(self) -> list[Pick]:
        return [Pick("a_cube")]
