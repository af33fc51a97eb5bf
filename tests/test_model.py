"""The SO-101 MJCF against the facts sheet: kinematics, masses, servos, numerical health."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from so101lab.contract import JOINT_NAMES, JOINT_RANGES_RAD
from so101lab.envs.scene import ASSETS

# The facts sheet's chain (shared/reference/so101-facts.md), typed in independently of the MJCF:
# (body, position in parent, quaternion w x y z); every joint turns about its body's local z.
CHAIN = [
    ("shoulder", (0.0388353, 0, 0.0624), (0, 0, -1, 0)),
    ("upper_arm", (-0.0303992, -0.0182778, -0.0542), (0.5, -0.5, -0.5, -0.5)),
    ("lower_arm", (-0.11257, -0.028, 0), (0.707107, 0, 0, 0.707107)),
    ("wrist", (-0.1349, 0.0052, 0), (0.707107, 0, 0, -0.707107)),
    ("gripper", (0, -0.0611, 0.0181), (0.0172091, -0.0172091, 0.706897, 0.706897)),
    ("moving_jaw", (0.0202, 0.0188, -0.0234), (0.707107, 0.707107, 0, 0)),
]
FIXED_FINGERTIP = np.array([-0.0079, -0.0002, -0.0981])  # "gripperframe", in the gripper body
MASSES = {"base": 0.147, "shoulder": 0.100, "upper_arm": 0.103, "lower_arm": 0.104, "wrist": 0.079,
          "gripper": 0.087, "moving_jaw": 0.012}
TASK_FILES = ["pick_cube.xml", "pick_place.xml", "stack_cubes.xml", "sort_cubes.xml"]


def quat_to_matrix(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def reference_fk(q: np.ndarray) -> dict[str, np.ndarray]:
    """World positions of each joint and of the fixed fingertip, from the facts sheet alone."""
    rotation, position, out = np.eye(3), np.zeros(3), {}
    for (body, pos, quat), angle in zip(CHAIN, q):
        position = position + rotation @ np.array(pos)
        rotation = rotation @ quat_to_matrix(quat) @ rot_z(angle)
        out[body] = position
        if body == "gripper":
            out["gripperframe"] = position + rotation @ FIXED_FINGERTIP
    return out


@pytest.fixture(scope="module")
def robot():
    model = mujoco.MjModel.from_xml_path(str(ASSETS / "so101.xml"))
    return model, mujoco.MjData(model)


def model_fk(model, data, q) -> dict[str, np.ndarray]:
    data.qpos[:] = q
    mujoco.mj_kinematics(model, data)
    out = {body: data.xpos[model.body(body).id].copy() for body, _, _ in CHAIN}
    out["gripperframe"] = data.site("gripperframe").xpos.copy()
    return out


def test_forward_kinematics_matches_facts_sheet_at_zero_and_random_poses(robot):
    model, data = robot
    rng = np.random.default_rng(0)
    low, high = np.array([JOINT_RANGES_RAD[n] for n in JOINT_NAMES]).T
    poses = [np.zeros(6)] + [rng.uniform(low, high) for _ in range(20)]
    for q in poses:
        expected, actual = reference_fk(q), model_fk(model, data, q)
        for name in expected:
            assert np.linalg.norm(expected[name] - actual[name]) < 1e-3, (name, q)


def test_zero_pose_is_the_documented_L(robot):
    model, data = robot
    fk = model_fk(model, data, np.zeros(6))
    assert np.allclose(fk["upper_arm"], [0.0692, -0.0183, 0.1166], atol=1e-3)  # shoulder_lift axis
    assert np.allclose(fk["gripperframe"], [0.3914, 0.0, 0.2265], atol=1e-3)


def test_joints_actuators_masses_follow_the_contract(robot):
    model, _ = robot
    for name in JOINT_NAMES:
        joint = model.joint(name)
        assert np.allclose(joint.range, JOINT_RANGES_RAD[name], atol=1e-5)
        assert model.actuator(name).trnid[0] == joint.id
        assert np.allclose(model.actuator(name).ctrlrange, JOINT_RANGES_RAD[name], atol=1e-5)
    for body, mass in MASSES.items():
        assert model.body(body).mass[0] == pytest.approx(mass)
    assert model.body_subtreemass[0] == pytest.approx(0.632, abs=1e-3)


def test_jaw_gap_follows_measured_opening(robot):
    """Fingertip gap against gripper angle, as measured on the real jaw (facts sheet)."""
    model, data = robot
    for degrees, gap_mm in [(-10, 4), (0, 16), (10, 30), (20, 44), (30, 57), (45, 76), (60, 94), (100, 133)]:
        q = np.zeros(6)
        q[5] = np.deg2rad(degrees)
        model_fk(model, data, q)
        gap = np.linalg.norm(data.site("moving_fingertip").xpos - data.site("gripperframe").xpos)
        assert abs(gap * 1000 - gap_mm) < 1.5, (degrees, gap)


@pytest.mark.parametrize("task_file", TASK_FILES)
def test_scene_steps_under_noise_without_warnings(task_file):
    model = mujoco.MjModel.from_xml_path(str(ASSETS / task_file))
    data = mujoco.MjData(model)
    rng = np.random.default_rng(1)
    low, high = model.actuator_ctrlrange.T
    for _ in range(1500):
        data.ctrl[:] = np.clip(data.ctrl + rng.normal(0, 0.05, model.nu), low, high)
        mujoco.mj_step(model, data)
    assert all(w.number == 0 for w in data.warning), [w.number for w in data.warning]
    assert np.all(np.isfinite(data.qpos))
