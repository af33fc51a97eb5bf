"""Success of each task on one MJX state, from the same array functions the CPU tasks use."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from mujoco import mjx

from so101lab.envs.base import SO101Env
from so101lab.envs.tasks.common import cube_lifted, cube_within_bin
from so101lab.envs.tasks.pick_cube import PickCubeEnv
from so101lab.envs.tasks.pick_place import PickPlaceEnv
from so101lab.envs.tasks.sort_cubes import SortCubesEnv
from so101lab.envs.tasks.stack_cubes import StackCubesEnv, cubes_stacked


class SceneIds:
    """Ids resolved once by name from the CPU env, for queries on MJX models and data."""

    def __init__(self, env: SO101Env):
        self.object_names = env.object_names
        self.object_qpos_adr = [int(a) for a in env.object_qpos_adr]
        self.object_bodies = {n: int(b) for n, b in zip(env.object_names, env.object_bodies)}
        self.geom_body = jnp.asarray(env.model.geom_bodyid)
        self.jaw_geoms = tuple(jnp.asarray(j) for j in env.jaw_geoms)
        self.model = env.model

    def object_pose(self, d: mjx.Data, name: str) -> jax.Array:
        adr = self.object_qpos_adr[self.object_names.index(name)]
        return d.qpos[adr:adr + 7]

    def body_xy(self, m: mjx.Model, name: str) -> jax.Array:
        return m.body_pos[self.model.body(name).id, :2]

    def is_grasped(self, d: mjx.Data, name: str) -> jax.Array:
        """The object touches both jaws: as `SO101Env.is_grasped`, over MJX's active contacts."""
        body = self.object_bodies[name]
        contact = d._impl.contact
        g1, g2 = contact.geom[:, 0], contact.geom[:, 1]
        active = contact.dist < contact.includemargin
        on1, on2 = active & (self.geom_body[g1] == body), active & (self.geom_body[g2] == body)
        return jnp.all(jnp.stack([jnp.any((on1 & jnp.isin(g2, jaw)) | (on2 & jnp.isin(g1, jaw)))
                                  for jaw in self.jaw_geoms]))


SuccessFn = Callable[[SceneIds, mjx.Model, mjx.Data], jax.Array]


def _pick_cube(s: SceneIds, m: mjx.Model, d: mjx.Data) -> jax.Array:
    return cube_lifted(s.object_pose(d, "a_cube")) & s.is_grasped(d, "a_cube")


def _in_bin(s: SceneIds, m: mjx.Model, d: mjx.Data, role: str) -> jax.Array:
    cube = f"{role}_cube"
    return cube_within_bin(s.object_pose(d, cube), s.body_xy(m, f"{role}_bin")) & ~s.is_grasped(d, cube)


def _pick_place(s: SceneIds, m: mjx.Model, d: mjx.Data) -> jax.Array:
    return _in_bin(s, m, d, "a")


def _sort_cubes(s: SceneIds, m: mjx.Model, d: mjx.Data) -> jax.Array:
    return _in_bin(s, m, d, "a") & _in_bin(s, m, d, "b")


def _stack_cubes(s: SceneIds, m: mjx.Model, d: mjx.Data) -> jax.Array:
    return cubes_stacked(s.object_pose(d, "a_cube"), s.object_pose(d, "b_cube")) & ~s.is_grasped(d, "a_cube")


SUCCESS: dict[type[SO101Env], SuccessFn] = {
    PickCubeEnv: _pick_cube,
    PickPlaceEnv: _pick_place,
    SortCubesEnv: _sort_cubes,
    StackCubesEnv: _stack_cubes,
}


def success_fn(env: SO101Env) -> SuccessFn:
    for cls in type(env).__mro__:
        if cls in SUCCESS:
            return SUCCESS[cls]
    raise NotImplementedError(f"no MJX success test for {type(env).__name__}; add one to SUCCESS in {__name__}")
