"""Camera files: what a mounted camera sees, shared by the sim, the real arm and calibration.

A camera file is JSON::

    {"format": "so101lab-cameras/1",
     "cameras": [{"name": "front", "width": 640, "height": 480,
                  "fx": 520.0, "fy": 520.0, "cx": 320.0, "cy": 240.0,
                  "mount": "world", "pos": [0.55, 0.0, 0.32], "quat": [w, x, y, z]}]}

Intrinsics are the pinhole model in pixels (OpenCV's: pixel centres at whole coordinates). The
pose is the camera frame in its mount's frame, in OpenCV's camera axes (x right, y down, z along the view): `mount` is
``"world"`` (the arm's base frame: x forward, z up, origin under the base) or ``"gripper"`` (the
wrist-roll body, for a wrist camera). `so101lab calibrate-camera` writes such a file; sim envs
render it (`gym.make(..., camera_config=FILE)`) and `Real-v0` takes its names and sizes, so sim
and real datasets agree. Lens distortion, if calibrated, is kept (`distortion`, OpenCV's
k1 k2 p1 p2 k3) for the record; the sim renders an ideal pinhole.

No MuJoCo import here: hardware-only installs read camera files too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "so101lab-cameras/1"
MOUNTS = ("world", "gripper")
MAX_IMAGE_SIDE = 4096


@dataclass(frozen=True)
class MountedCamera:
    """A pinhole camera (pixels) at a pose in its mount's frame (OpenCV camera axes)."""

    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    mount: str = "world"
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # w x y z, camera axes -> mount axes
    distortion: tuple[float, ...] = field(default=())

    def __post_init__(self):
        where = f"camera {self.name!r}"
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"a camera needs a non-empty name, got {self.name!r}")
        if not (0 < self.width <= MAX_IMAGE_SIDE and 0 < self.height <= MAX_IMAGE_SIDE):
            raise ValueError(f"{where}: width and height must be in 1..{MAX_IMAGE_SIDE}, got "
                             f"{self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"{where}: focal lengths fx, fy must be positive pixels, got {self.fx}, {self.fy}")
        if not (-0.5 <= self.cx <= self.width - 0.5 and -0.5 <= self.cy <= self.height - 0.5):
            raise ValueError(f"{where}: principal point ({self.cx}, {self.cy}) lies outside the "
                             f"{self.width}x{self.height} image")
        if self.mount not in MOUNTS:
            raise ValueError(f"{where}: mount must be one of {MOUNTS}, got {self.mount!r}")
        if len(self.pos) != 3 or len(self.quat) != 4 or not np.isfinite([*self.pos, *self.quat]).all():
            raise ValueError(f"{where}: pos must be 3 and quat 4 finite numbers")
        if abs(np.linalg.norm(self.quat) - 1) > 1e-3:
            raise ValueError(f"{where}: quat {self.quat} is not a unit quaternion")

    @property
    def fovy_deg(self) -> float:
        """Vertical field of view of the whole image (for a centred principal point)."""
        return float(np.degrees(2 * np.arctan(self.height / (2 * self.fy))))

    @property
    def rotation(self) -> np.ndarray:
        """3x3 rotation taking camera-frame (OpenCV axes) vectors to the mount frame."""
        return quat_to_matrix(np.asarray(self.quat))

    @classmethod
    def from_fov(cls, name: str, width: int, height: int, fovy_deg: float, **pose) -> MountedCamera:
        """A camera with square pixels, a centred principal point and a vertical field of view."""
        f = height / (2 * np.tan(np.radians(fovy_deg) / 2))
        return cls(name, width, height, f, f, (width - 1) / 2, (height - 1) / 2, **pose)

    def scaled(self, width: int, height: int) -> MountedCamera:
        """The same camera delivering another image size (intrinsics scale with it; pixel centres
        are at whole coordinates, so the principal point scales about -0.5)."""
        sx, sy = width / self.width, height / self.height
        return MountedCamera(self.name, width, height, self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                             (self.cy + 0.5) * sy - 0.5, self.mount, self.pos, self.quat, self.distortion)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """Unit quaternion (w x y z, w >= 0) of a rotation matrix."""
    r = np.asarray(r, dtype=float)
    k = np.array([
        [r[0, 0] - r[1, 1] - r[2, 2], r[1, 0] + r[0, 1], r[2, 0] + r[0, 2], r[2, 1] - r[1, 2]],
        [r[1, 0] + r[0, 1], r[1, 1] - r[0, 0] - r[2, 2], r[2, 1] + r[1, 2], r[0, 2] - r[2, 0]],
        [r[2, 0] + r[0, 2], r[2, 1] + r[1, 2], r[2, 2] - r[0, 0] - r[1, 1], r[1, 0] - r[0, 1]],
        [r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1], r[0, 0] + r[1, 1] + r[2, 2]],
    ]) / 3.0
    values, vectors = np.linalg.eigh(k)
    x, y, z, w = vectors[:, np.argmax(values)]
    q = np.array([w, x, y, z])
    return q if w >= 0 else -q


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """pos and quat (OpenCV camera axes) of a camera at `eye` looking at `target`."""
    eye, target, up = (np.asarray(v, dtype=float) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return tuple(eye.tolist()), tuple(matrix_to_quat(np.column_stack([x, y, z])).tolist())


def load_camera_file(path: str | Path) -> tuple[MountedCamera, ...]:
    """Read and check a camera file; every error names the file and what is wrong in one line."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"camera file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"camera file {path} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"camera file {path}: 'format' must be {FORMAT!r}")
    entries = doc.get("cameras")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"camera file {path}: 'cameras' must be a non-empty list")
    known = set(MountedCamera.__dataclass_fields__)
    cameras = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"camera file {path}: cameras[{i}] must be an object")
        unknown = set(entry) - known
        if unknown:
            raise ValueError(f"camera file {path}: cameras[{i}] has unknown fields {sorted(unknown)}")
        try:
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
            cameras.append(MountedCamera(**values))
        except (TypeError, ValueError) as e:
            raise ValueError(f"camera file {path}: cameras[{i}]: {e}") from None
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise ValueError(f"camera file {path}: camera names repeat: {names}")
    return tuple(cameras)


def save_camera_file(path: str | Path, cameras: tuple[MountedCamera, ...] | list[MountedCamera]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    for cam in cameras:
        entry = asdict(cam)
        entry["pos"], entry["quat"] = list(cam.pos), list(cam.quat)
        if not cam.distortion:
            del entry["distortion"]
        else:
            entry["distortion"] = list(cam.distortion)
        entries.append(entry)
    path.write_text(json.dumps({"format": FORMAT, "cameras": entries}, indent=2) + "\n")
    return path
