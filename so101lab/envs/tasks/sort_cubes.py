"""SortCubes: put each of two cubes into the bin of its own colour."""

from __future__ import annotations

import numpy as np

from so101lab.envs.base import SO101Env
from so101lab.envs.experts import Pick
from so101lab.envs.tasks.common import above_bin, bin_xy, in_bin, place_bin, place_cube, place_terms, sample_positions

# Bins sit on the left and right of the workspace, cubes in the band between them, leaving the
# open jaws room to grasp a cube without touching a bin.
BIN_SIDES = (np.array([0.22, -0.14]), np.array([0.22, 0.14]))
BIN_JITTER = 0.01
CUBE_BAND = ((0.15, 0.28), (-0.03, 0.03))


class SortCubesEnv(SO101Env):
    """a_cube belongs in a_bin, b_cube in b_bin; which side each bin is on varies."""

    xml_file = "sort_cubes.xml"
    object_names = ("a_cube", "b_cube")

    def _reset_task(self, rng: np.random.Generator) -> str:
        colors = [str(c) for c in rng.choice(list(self.colors), 2, replace=False)]
        for role, color in zip("ab", colors):
            rgb = self.randomizer.jitter_color(rng, self.colors[color])
            self.set_color(f"{role}_cube", rgb)
            self.set_color(f"{role}_bin", rgb)
        sides = rng.permutation(2)
        for role, side in zip("ab", sides):
            place_bin(self, f"{role}_bin", BIN_SIDES[side] + rng.uniform(-BIN_JITTER, BIN_JITTER, 2))
        for name, xy in zip(self.object_names, sample_positions(rng, [0.025, 0.025], CUBE_BAND)):
            place_cube(self, name, xy, rng)
        return f"put the {colors[0]} cube in the {colors[0]} bin and the {colors[1]} cube in the {colors[1]} bin"

    def _extra_state(self) -> np.ndarray:
        return np.concatenate([bin_xy(self, "a_bin"), bin_xy(self, "b_bin")])

    def is_success(self) -> bool:
        return all(in_bin(self, f"{s}_cube", f"{s}_bin") for s in "ab")

    def _reward_terms(self) -> dict[str, float]:
        return {f"{k}_{s}": v for s in "ab"
                for k, v in place_terms(self, f"{s}_cube", above_bin(self, f"{s}_bin")).items()}

    def expert_plan(self) -> list[Pick]:
        return [Pick(f"{s}_cube", lambda s=s: above_bin(self, f"{s}_bin")) for s in "ab"]
