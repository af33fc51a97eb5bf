"""The arm's look: official meshes change no physics, stay close to the full CAD, and keep clear of
the objects' colours."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import so101lab  # noqa: F401  (registers the envs)
from so101lab.assets.look import ARM_COLORS, MESH_GROUP, apply_look, arm_silhouettes
from so101lab.assets.meshes import DEFAULT_TRIANGLE_BUDGET, drawn_triangles, load_meshes
from so101lab.envs import make_expert
from so101lab.envs.registration import SIM_ENV_IDS
from so101lab.envs.scene import ASSETS


def _trajectory(env_id: str, visual: str, seed: int = 3, steps: int = 90) -> list[np.ndarray]:
    env = gym.make(env_id, obs_mode="state", visual=visual)
    obs, _ = env.reset(seed=seed)
    expert, sim = make_expert(env), env.unwrapped
    states = []
    for _ in range(steps):
        obs, *_ = env.step(expert.act(obs))
        states.append(np.concatenate([sim.data.qpos, sim.data.qvel, obs["agent_pos"], obs["environment_state"]]))
    env.close()
    return states


@pytest.mark.parametrize("env_id", SIM_ENV_IDS)
def test_mesh_look_changes_no_physics(env_id):
    """The same seed and actions with both looks give the same trajectory, bit for bit."""
    mesh, primitive = _trajectory(env_id, "mesh"), _trajectory(env_id, "primitive")
    assert all(np.array_equal(a, b) for a, b in zip(mesh, primitive, strict=True))
    assert not np.array_equal(mesh[0], mesh[-1])  # the expert did move things


def test_mesh_look_draws_meshes_only():
    env = gym.make("so101lab/PickCube-v0", obs_mode="state", visual="mesh").unwrapped
    model = env.model
    meshes = model.geom_type == mujoco.mjtGeom.mjGEOM_MESH
    assert meshes.sum() == 17 and (model.geom_group[meshes] == MESH_GROUP).all()
    assert (model.geom_contype[meshes] == 0).all() and (model.geom_conaffinity[meshes] == 0).all()
    robot = np.isin(model.geom_bodyid, [model.body(b).id for b in ("base", "gripper", "moving_jaw")])
    assert (model.geom_group[robot & ~meshes] > 2).all()  # primitives hidden from the cameras
    assert drawn_triangles(load_meshes()) <= DEFAULT_TRIANGLE_BUDGET


def test_missing_meshes_fail_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SO101LAB_MESH_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"lacks the official SO-101 meshes .*pip install 'so101lab\[meshes\]'"):
        gym.make("so101lab/PickCube-v0", visual="mesh")
    env = gym.make("so101lab/PickCube-v0", obs_mode="state", visual="primitive")  # the fallback still works
    env.reset(seed=0)


def _arm_masks(budget: int | None, poses: np.ndarray, size=(240, 320)) -> list[np.ndarray]:
    """Pixels of the arm's mesh geoms in a segmentation render from the front camera, per pose."""
    spec = mujoco.MjSpec.from_file(str(ASSETS / "pick_cube.xml"))
    apply_look(spec, "mesh", triangle_budget=budget)
    return arm_silhouettes(spec.compile(), poses, "front", size)


def test_simplified_arm_silhouette_matches_the_full_meshes():
    """Pixels where the decimated and the full arm differ, at several poses: docs/visual.md states it."""
    poses = np.radians([[0, -95, 60, 60, 0, 30], [30, -40, 20, 80, 90, 0], [-45, 10, -30, 40, -60, 90]])
    full, simple = _arm_masks(None, poses), _arm_masks(DEFAULT_TRIANGLE_BUDGET, poses)
    for f, s in zip(full, simple, strict=True):
        assert f.sum() > 2000  # the arm is well in view
        assert (f ^ s).sum() / f.sum() < 0.03


def test_objects_never_take_the_arms_colour():
    for color in ARM_COLORS:
        env = gym.make("so101lab/PickPlace-v0", obs_mode="state", visual="primitive", arm_color=color).unwrapped
        arm = np.array(ARM_COLORS[color])
        for seed in range(8):
            env.reset(seed=seed)
            for body in ("a_cube", "a_bin"):
                rgb = env.model.geom_rgba[env.model.geom_bodyid == env.model.body(body).id][0, :3]
                assert np.linalg.norm(rgb - arm) > 0.2, (color, seed, body)
    yellow = gym.make("so101lab/PickCube-v0", obs_mode="state", visual="primitive", arm_color="yellow").unwrapped
    assert all("yellow" not in yellow.reset(seed=s)[1]["task"] for s in range(20))
