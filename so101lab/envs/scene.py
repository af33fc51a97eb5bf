"""Build a task's MjModel: its MJCF, the arm's look, and cameras from a camera file.

Everything here is decided before compiling, through `mujoco.MjSpec`, so the physics arrays of
the compiled model do not depend on the look or the cameras (tests/test_look.py).
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from so101lab.assets.look import apply_look
from so101lab.camera_file import MountedCamera, matrix_to_quat, quat_to_matrix
from so101lab.envs.randomization import DomainRandomization, add_randomized_elements

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "so101"
MOUNT_BODIES = {"world": "world", "gripper": "gripper"}
# MuJoCo cameras look along -z with y up; OpenCV's along +z with y down.
_CV_TO_MJ = np.diag([1.0, -1.0, -1.0])
_PIXEL_PITCH = 3e-6  # m; any value works, MuJoCo only uses focal length / sensor size ratios


def build_model(xml_file: str, visual: str, arm_color, cameras: tuple[MountedCamera, ...] = (),
                shadows: bool = True, mesh_dir: str | Path | None = None,
                randomization: DomainRandomization | None = None, avoid_colors=()) -> mujoco.MjModel:
    """`shadows=False` trades the key light's shadow (a second render pass) for speed; `randomization`
    adds what its episodes may switch on (textures avoiding `avoid_colors`, spare lights, distractors)."""
    spec = mujoco.MjSpec.from_file(str(ASSETS / xml_file))
    apply_look(spec, visual, arm_color, mesh_dir=mesh_dir)
    if randomization is not None:
        add_randomized_elements(spec, randomization, avoid_colors)
    if not shadows:
        for light in spec.lights:
            light.castshadow = False
    for camera in cameras:
        place_camera(spec, camera)
    width = max([c.width for c in cameras], default=0)
    height = max([c.height for c in cameras], default=0)
    spec.visual.global_.offwidth = max(spec.visual.global_.offwidth, width)
    spec.visual.global_.offheight = max(spec.visual.global_.offheight, height)
    return spec.compile()


def place_camera(spec: mujoco.MjSpec, camera: MountedCamera) -> None:
    """Add (or replace) a camera of the spec with a camera file's intrinsics and pose."""
    existing = spec.camera(camera.name)
    if existing is not None:
        spec.delete(existing)
    body = spec.worldbody if camera.mount == "world" else spec.body(MOUNT_BODIES[camera.mount])
    quat = matrix_to_quat(quat_to_matrix(np.asarray(camera.quat)) @ _CV_TO_MJ)
    cam = body.add_camera(name=camera.name, pos=list(camera.pos), quat=quat.tolist())
    cam.resolution = [camera.width, camera.height]
    cam.sensor_size = [camera.width * _PIXEL_PITCH, camera.height * _PIXEL_PITCH]
    cam.focal_pixel = [camera.fx, camera.fy]
    # MuJoCo's principal point is the offset of the image centre (pixel-edge coordinates) from it;
    # camera files use OpenCV's pixel-centre coordinates, half a pixel apart (tests/test_cameras.py).
    cam.principal_pixel = [camera.width / 2 - (camera.cx + 0.5), camera.height / 2 - (camera.cy + 0.5)]


def camera_from_model(model: mujoco.MjModel, name: str, width: int, height: int) -> MountedCamera:
    """A model's camera as a camera file entry, for images of the given size."""
    cam = model.camera(name)
    if model.cam_sensorsize[cam.id, 1] > 0:
        sensor, resolution = model.cam_sensorsize[cam.id], model.cam_resolution[cam.id]
        focal, offset = model.cam_intrinsic[cam.id, :2], model.cam_intrinsic[cam.id, 2:]
        fx, fy = focal / sensor * (width, height)
        ppx, ppy = offset / sensor * resolution
        cx = width / 2 - ppx * width / resolution[0] - 0.5
        cy = height / 2 - ppy * height / resolution[1] - 0.5
    else:
        fy = height / (2 * np.tan(np.radians(model.cam_fovy[cam.id]) / 2))
        fx, cx, cy = fy, (width - 1) / 2, (height - 1) / 2
    body = model.body(int(model.cam_bodyid[cam.id])).name
    mounts = {v: k for k, v in MOUNT_BODIES.items()}
    if body not in mounts:
        raise ValueError(f"camera {name!r} sits on body {body!r}; camera files mount cameras on {sorted(mounts)}")
    quat = matrix_to_quat(quat_to_matrix(model.cam_quat[cam.id]) @ _CV_TO_MJ)
    return MountedCamera(name, width, height, float(fx), float(fy), float(cx), float(cy), mounts[body],
                         tuple(model.cam_pos[cam.id].tolist()), tuple(quat.tolist()))
