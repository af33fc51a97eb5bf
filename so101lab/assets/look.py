"""How the arm looks: the official meshes or the primitives, in a printed-part colour.

The collision geoms (capsules, boxes, finger pads) are the physics and never change. The mesh
look adds the official parts as visual-only geoms (no contacts, no mass) and moves the
primitives to a geom group the cameras do not draw; tests/test_look.py replays one episode with
both looks and compares the trajectories bit for bit.
"""

from __future__ import annotations

import mujoco
import numpy as np

from so101lab.assets.meshes import DEFAULT_TRIANGLE_BUDGET, MESH_PARTS, load_meshes

VISUALS = ("mesh", "primitive")
# Printed-part colours LeRobot users print the SO-101 in (PLA, matte); servos are black.
ARM_COLORS: dict[str, tuple[float, float, float]] = {
    "white": (0.88, 0.88, 0.86),
    "yellow": (0.95, 0.78, 0.12),
    "orange": (0.95, 0.45, 0.1),
    "black": (0.1, 0.1, 0.1),
    "grey": (0.55, 0.56, 0.58),
}
DEFAULT_ARM_COLOR = "white"
SERVO_RGB = (0.06, 0.06, 0.07)
HIDDEN_GROUP = 3  # mujoco.Renderer draws groups 0-2 by default
MESH_GROUP = 2
ROBOT_BODIES = ("base", "shoulder", "upper_arm", "lower_arm", "wrist", "gripper", "moving_jaw")


def arm_rgb(color: str | tuple[float, float, float]) -> np.ndarray:
    """A named printed-part colour, or an RGB triple in 0..1."""
    if isinstance(color, str):
        if color not in ARM_COLORS:
            raise ValueError(f"arm_color must be one of {sorted(ARM_COLORS)} or an RGB triple, got {color!r}")
        return np.array(ARM_COLORS[color])
    rgb = np.asarray(color, dtype=float)
    if rgb.shape != (3,) or not ((rgb >= 0) & (rgb <= 1)).all():
        raise ValueError(f"arm_color must be one of {sorted(ARM_COLORS)} or an RGB triple in 0..1, got {color!r}")
    return rgb


def apply_look(spec: mujoco.MjSpec, visual: str, color: str | tuple[float, float, float] = DEFAULT_ARM_COLOR,
               triangle_budget: int | None = DEFAULT_TRIANGLE_BUDGET, mesh_dir=None) -> None:
    """Dress the robot of a scene spec (before compiling) in the chosen look and colour."""
    if visual not in VISUALS:
        raise ValueError(f"visual must be one of {VISUALS}, got {visual!r}")
    printed = arm_rgb(color)
    robot_geoms = [g for name in ROBOT_BODIES for g in spec.body(name).geoms]
    links = [g for g in robot_geoms if g.classname.name == "link"]
    if visual == "primitive":
        for geom in links:
            geom.rgba[:3] = printed
        return
    meshes = load_meshes(triangle_budget, mesh_dir)
    for name, (vertices, faces) in meshes.items():
        spec.add_mesh(name=f"so101_{name}", uservert=vertices.ravel().tolist(), userface=faces.ravel().tolist())
    for kind, rgb in (("printed", printed), ("servo", SERVO_RGB)):
        # Matte PLA and servo plastic: a little specular so the parts' shapes read under one light.
        spec.add_material(name=f"so101_{kind}", rgba=[*rgb, 1.0], specular=0.3, shininess=0.3)
    for part in MESH_PARTS:
        spec.body(part.body).add_geom(
            type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"so101_{part.mesh}", pos=part.pos, quat=part.quat,
            contype=0, conaffinity=0, density=0, group=MESH_GROUP, material=f"so101_{part.kind}",
        )
    for geom in robot_geoms:
        geom.group = HIDDEN_GROUP  # the primitives still collide; only the cameras no longer draw them


def arm_silhouettes(model: mujoco.MjModel, poses: np.ndarray, camera: str = "front",
                    size: tuple[int, int] = (480, 640)) -> list[np.ndarray]:
    """Where the arm's mesh parts show in `camera` at each pose (the six joints, radians): a
    segmentation render, how the simplified arm is measured against the full CAD."""
    data = mujoco.MjData(model)
    arm = np.flatnonzero(model.geom_type == mujoco.mjtGeom.mjGEOM_MESH)
    masks = []
    with mujoco.Renderer(model, *size) as renderer:
        renderer.enable_segmentation_rendering()
        for pose in poses:
            data.qpos[:6] = pose
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera)
            seg = renderer.render()
            masks.append(np.isin(seg[..., 0], arm) & (seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM))
    return masks
