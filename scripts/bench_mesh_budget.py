"""What the triangle budget of the mesh look buys and costs, side by side in one run; prints JSON.

    MUJOCO_GL=egl python scripts/bench_mesh_budget.py [--budgets 10000 20000 40000 80000 0] [--frames 60]

Per budget (0 = the full official meshes): triangles of the arm as drawn; the silhouette error
against the full meshes (pixels of the arm that differ in a segmentation render of the front
camera at 480x640, as a fraction of the full arm's pixels, at five poses: mean and worst); and
front-camera frames/s of this process's CPU time at 480x640, beside the primitive arm's.
"""

# ruff: noqa: I001  (so101lab first: it selects headless EGL before mujoco loads its GL backend)
from __future__ import annotations

import so101lab  # noqa: F401

import argparse
import json
import time

import mujoco
import numpy as np

from so101lab.assets.look import apply_look, arm_silhouettes
from so101lab.assets.meshes import drawn_triangles, load_meshes
from so101lab.envs.scene import ASSETS

POSES_DEG = np.array([[0, -95, 60, 60, 0, 30], [30, -40, 20, 80, 90, 0], [-45, 10, -30, 40, -60, 90],
                      [60, -70, 70, 20, 30, 50], [-20, -20, -50, 90, 120, 10]])
SIZE = (480, 640)


def build(visual: str, budget: int | None) -> mujoco.MjModel:
    spec = mujoco.MjSpec.from_file(str(ASSETS / "pick_cube.xml"))
    apply_look(spec, visual, triangle_budget=budget)
    return spec.compile()


def arm_masks(model: mujoco.MjModel) -> list[np.ndarray]:
    return arm_silhouettes(model, np.radians(POSES_DEG), "front", SIZE)


def frames_per_second(model: mujoco.MjModel, frames: int) -> float:
    data = mujoco.MjData(model)
    data.qpos[:6] = np.radians(POSES_DEG[0])
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, *SIZE) as renderer:
        renderer.update_scene(data, "front")
        renderer.render()
        start = time.process_time()
        for _ in range(frames):
            renderer.update_scene(data, "front")
            renderer.render()
        return frames / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[10_000, 20_000, 40_000, 80_000, 0])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    full = arm_masks(build("mesh", None))
    rows = [{"look": "primitive", "fps": round(frames_per_second(build("primitive", None), args.frames), 1)}]
    for budget in args.budgets:
        model = build("mesh", budget or None)
        errors = [float((f ^ s).sum() / f.sum()) for f, s in zip(full, arm_masks(model), strict=True)]
        rows.append({
            "look": "mesh", "budget": budget or "full",
            "triangles": drawn_triangles(load_meshes(budget or None)),
            "silhouette_error_mean": round(float(np.mean(errors)), 4),
            "silhouette_error_worst": round(max(errors), 4),
            "fps": round(frames_per_second(model, args.frames), 1),
        })
    print(json.dumps({"size": SIZE, "camera": "front", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
