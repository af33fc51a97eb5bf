"""PickPlace: put a cube of a named colour into the bin of another named colour."""

from __future__ import annotations

import numpy as np

from so101lab.envs.base import SO101Env
from so101lab.envs.experts import Pick
from so101lab.envs.tasks.common import above_bin, bin_xy, in_bin, place_bin, place_cube, place_terms, sample_positions


class PickPlaceEnv(SO101Env):
    xml_file = "pick_place.xml"
    object_names = ("a_cube",)

    def _reset_task(self, rng: np.random.Generator) -> str:
        cube_color, bin_color = (str(c) for c in rng.choice(list(self.colors), 2, replace=False))
        self.set_color("a_cube", self.randomizer.jitter_color(rng, self.colors[cube_color]))
        self.set_color("a_bin", self.randomizer.jitter_color(rng, self.colors[bin_color]))
        bin_pos, cube_pos = sample_positions(rng, [0.065, 0.03])
        place_bin(self, "a_bin", bin_pos)
        place_cube(self, "a_cube", cube_pos, rng)
        return f"put the {cube_color} cube in the {bin_color} bin"

    def _extra_state(self) -> np.ndarray:
        return bin_xy(self, "a_bin")

    def is_success(self) -> bool:
        return in_bin(self, "a_cube", "a_bin")

    def _reward_terms(self) -> dict[str, float]:
        return place_terms(self, "a_cube", above_bin(self, "a_bin"))

    def expert_plan(self) -> list[Pick]:
        return [Pick("a_cube", lambda: above_bin(self, "a_bin"))]
