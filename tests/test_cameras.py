"""Sim cameras: camera files (read, checked, rendered with their intrinsics) and the default views."""

from __future__ import annotations

import json

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import so101lab  # noqa: F401  (registers the envs)
from so101lab.camera_file import MountedCamera, load_camera_file, look_at, save_camera_file
from so101lab.envs import DomainRandomization
from so101lab.envs.scene import camera_from_model
from so101lab.envs.tasks.common import CUBE_HALF, PAN_AXIS_XY, REACH, WORKSPACE

_POS, _QUAT = look_at((0.45, 0.3, 0.3), (0.18, 0.0, 0.02))
OFF_CENTRE = MountedCamera("side", 640, 480, 540.0, 560.0, 300.0, 262.0, pos=_POS, quat=_QUAT)


def test_camera_file_round_trip(tmp_path):
    wrist = MountedCamera.from_fov("wrist", 320, 240, 70.0, mount="gripper", pos=(0.0, -0.03, -0.04))
    path = save_camera_file(tmp_path / "cams.json", [OFF_CENTRE, wrist])
    assert load_camera_file(path) == (OFF_CENTRE, wrist)
    assert wrist.fovy_deg == pytest.approx(70.0)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(format="other"), "'format' must be"),
    (lambda d: d["cameras"][0].update(fx=-1), r"cameras\[0\].*focal lengths"),
    (lambda d: d["cameras"][0].update(width=0), r"cameras\[0\].*width and height"),
    (lambda d: d["cameras"][0].update(cx=900), r"cameras\[0\].*principal point"),
    (lambda d: d["cameras"][0].update(mount="elbow"), r"cameras\[0\].*mount"),
    (lambda d: d["cameras"][0].update(quat=[1, 1, 0, 0]), "unit quaternion"),
    (lambda d: d["cameras"][0].update(zoom=2), r"unknown fields \['zoom'\]"),
    (lambda d: d["cameras"].append(dict(d["cameras"][0])), "names repeat"),
])
def test_bad_camera_files_name_file_and_field(tmp_path, edit, message):
    doc = json.loads(save_camera_file(tmp_path / "c.json", [OFF_CENTRE]).read_text())
    edit(doc)
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=f"camera file .*c.json.*{message}"):
        load_camera_file(tmp_path / "c.json")


def _segment(env, camera: str) -> np.ndarray:
    sim = env.unwrapped
    spec = next(c for c in sim.cameras if c.name == camera)
    with mujoco.Renderer(sim.model, spec.height, spec.width) as renderer:
        renderer.enable_segmentation_rendering()
        renderer.update_scene(sim.data, camera)
        return renderer.render()[..., 0]


def test_sim_renders_a_camera_files_intrinsics_and_pose():
    """The cube's centre lands where the pinhole model of the camera file puts it (off-centre
    principal point, unequal focal lengths), and reads back from the model as the same camera."""
    env = gym.make("so101lab/PickCube-v0", camera_config=(OFF_CENTRE,), visual="primitive", shadows=False,
                   randomization=DomainRandomization.none())
    env.reset(seed=0)
    sim = env.unwrapped
    assert sim.cameras[0].name == "side" and (sim.cameras[0].height, sim.cameras[0].width) == (480, 640)
    back = camera_from_model(sim.model, "side", 640, 480)
    assert np.allclose([back.fx, back.fy, back.cx, back.cy], [540, 560, 300, 262], atol=1e-3)
    assert np.allclose(back.pos, OFF_CENTRE.pos) and np.allclose(back.quat, OFF_CENTRE.quat, atol=1e-6)
    for xy in ([0.2, 0.05], [0.16, -0.12]):
        sim.set_object_pose("a_cube", np.array([*xy, CUBE_HALF]))
        mujoco.mj_forward(sim.model, sim.data)
        seg = _segment(env, "side")
        rows, cols = np.nonzero(seg == sim.model.geom("a_cube").id)
        centre = OFF_CENTRE.rotation.T @ (np.array([*xy, CUBE_HALF]) - OFF_CENTRE.pos)
        u = OFF_CENTRE.fx * centre[0] / centre[2] + OFF_CENTRE.cx
        v = OFF_CENTRE.fy * centre[1] / centre[2] + OFF_CENTRE.cy
        assert abs(cols.mean() - u) < 1.0 and abs(rows.mean() - v) < 1.0  # a cube's mask centroid


def test_image_size_scales_a_camera_file_keeping_its_view():
    env = gym.make("so101lab/PickCube-v0", camera_config=(OFF_CENTRE,), image_size=(240, 320), visual="primitive")
    sim = env.unwrapped
    assert (sim.cameras[0].height, sim.cameras[0].width) == (240, 320)
    back = camera_from_model(sim.model, "side", 320, 240)
    assert np.allclose([back.fx, back.fy, back.cx, back.cy], [270, 280, 149.75, 130.75], atol=1e-3)


def _spawn_extremes() -> list[tuple[float, float]]:
    """Cube centres on the boundary of where tasks place objects (box cut to the reach ring)."""
    points = []
    for x in np.linspace(*WORKSPACE[0], 17):
        for y in np.linspace(*WORKSPACE[1], 33):
            if REACH[0] <= np.hypot(x - PAN_AXIS_XY[0], y - PAN_AXIS_XY[1]) <= REACH[1]:
                points.append((x, y))
    pts = np.array(points)
    keep = set()
    for key in (pts[:, 0], -pts[:, 0], pts[:, 1], -pts[:, 1], pts[:, 0] - np.abs(pts[:, 1]), -np.abs(pts[:, 1])):
        keep.update(np.argsort(key)[:4].tolist())
    keep.update(np.argsort(np.abs(pts[:, 1]) + pts[:, 0])[:4].tolist())  # the far middle, where cubes are smallest
    return [tuple(pts[i]) for i in sorted(keep)]


def test_front_camera_shows_every_cube_spawn_at_least_40_px_wide():
    env = gym.make("so101lab/PickCube-v0", cameras=("front",), visual="primitive", shadows=False,
                   randomization=DomainRandomization.none())
    env.reset(seed=0)
    sim, cube = env.unwrapped, env.unwrapped.model.geom("a_cube").id
    for xy in _spawn_extremes():
        sim.set_object_pose("a_cube", np.array([*xy, CUBE_HALF]))  # yaw 0: the narrowest view
        sim.data.qpos[sim.qpos_adr] = np.radians([90, -100, 90, 90, 0, 0])  # arm turned out of the way
        mujoco.mj_forward(sim.model, sim.data)
        rows, cols = np.nonzero(_segment(env, "front") == cube)
        assert cols.size, xy
        assert cols.max() - cols.min() + 1 >= 40, (xy, cols.max() - cols.min() + 1)
        assert cols.min() > 0 and cols.max() < 639 and rows.max() < 479, xy  # wholly in the frame


def test_default_cameras_and_the_optional_top_camera():
    env = gym.make("so101lab/PickCube-v0", cameras=("front", "wrist", "top"), image_size=(48, 64), visual="primitive")
    obs, _ = env.reset(seed=0)
    assert set(obs["pixels"]) == {"front", "wrist", "top"}
    assert all(img.shape == (48, 64, 3) and img.std() > 5 for img in obs["pixels"].values())
