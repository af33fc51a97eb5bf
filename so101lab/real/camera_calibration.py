"""A camera's intrinsics and its pose in the arm's base frame, from photos of the ChArUco board.

One photo (the pose photo) shows the board lying at its stated `Placement` with the camera where
it stays; it gives the pose. Intrinsics come from every photo:

- an intrinsics camera file given: its fx, fy, cx, cy and distortion, used as they are;
- `MIN_PHOTOS_FOR_INTRINSICS` photos or more: fx, fy, cx, cy (and lens distortion k1 k2 p1 p2 if
  asked; k3 stays 0, a webcam lens does not need it and few photos cannot pin it down);
- fewer: an ideal pinhole with square pixels and the principal point at the image centre, only
  the focal length estimated (the board must look tilted in the photo, not face-on).

Every photo the calibration cannot use raises `PhotoError`, a one-line message naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from so101lab.camera_file import MountedCamera, matrix_to_quat
from so101lab.real.calibration_board import Board, Placement

MIN_CORNERS = 10  # ChArUco corners per photo; fewer make a weak pose and a weak focal length
MAX_ERROR_PX = 1.0  # default bound on a photo's RMS reprojection error, pixels
MIN_PHOTOS_FOR_INTRINSICS = 3
MAX_FOCAL_STD = 0.01  # relative standard deviation of the estimated focal length


class PhotoError(ValueError):
    """A photo the calibration cannot use; the message names the photo and why."""


@dataclass(frozen=True)
class Detection:
    """The board corners found in one photo: board-frame points (m) and their pixels."""

    photo: Path
    object_points: np.ndarray  # N x 3, float32, board frame
    image_points: np.ndarray  # N x 2, float32, pixels
    size: tuple[int, int]  # width, height


@dataclass(frozen=True)
class Calibration:
    camera: MountedCamera
    errors_px: dict[Path, float]  # RMS reprojection error per photo
    corners: dict[Path, int]
    intrinsics: str  # how they were obtained: "given", "estimated", "focal only"
    focal_std: float | None = field(default=None)  # relative, when estimated


def read_photo(photo: str | Path) -> np.ndarray:
    """A photo as a grey image; a missing or unreadable file is a PhotoError."""
    photo = Path(photo)
    if not photo.is_file():
        raise PhotoError(f"photo {photo} does not exist")
    image = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise PhotoError(f"photo {photo} is not an image OpenCV can read")
    return image


def detect(photo: str | Path, board: Board) -> Detection:
    """The board's corners in a photo, or a PhotoError if they cannot give a pose."""
    photo = Path(photo)
    image = read_photo(photo)
    cv_board = board.opencv()
    corners, ids, _, marker_ids = cv2.aruco.CharucoDetector(cv_board).detectBoard(image)
    if ids is None or len(ids) == 0:
        found = 0 if marker_ids is None else len(marker_ids)
        raise PhotoError(f"photo {photo}: board not found ({found} markers of {board.dictionary} seen; "
                         f"expected a {board.describe()})")
    object_points, image_points = cv_board.matchImagePoints(corners, ids)
    object_points, image_points = object_points.reshape(-1, 3), image_points.reshape(-1, 2)
    if len(ids) < MIN_CORNERS:
        raise PhotoError(f"photo {photo}: only {len(ids)} board corners found, at least {MIN_CORNERS} needed "
                         "(more of the board in view, less blur, more light)")
    spread = np.linalg.svd(object_points[:, :2] - object_points[:, :2].mean(axis=0), compute_uv=False)
    if spread[-1] / np.sqrt(len(ids)) < board.square_mm / 1000 / 2:
        raise PhotoError(f"photo {photo}: the {len(ids)} corners found lie along a line; show more of the board")
    return Detection(photo, object_points.astype(np.float32), image_points.astype(np.float32),
                     (image.shape[1], image.shape[0]))


def _matrix(camera: MountedCamera) -> np.ndarray:
    return np.array([[camera.fx, 0, camera.cx], [0, camera.fy, camera.cy], [0, 0, 1.0]])


def _pose(d: Detection, k: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Board pose in the camera (rvec, tvec): IPPE for the planar board, refined by Levenberg-Marquardt."""
    ok, rvec, tvec = cv2.solvePnP(d.object_points, d.image_points, k, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise PhotoError(f"photo {d.photo}: no camera pose fits the board corners")
    rvec, tvec = cv2.solvePnPRefineLM(d.object_points, d.image_points, k, dist, rvec, tvec)
    return rvec, tvec


def _rms_error(d: Detection, k: np.ndarray, dist: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> float:
    projected, _ = cv2.projectPoints(d.object_points, rvec, tvec, k, dist)
    return float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - d.image_points) ** 2, axis=1))))


def _estimate_intrinsics(detections: list[Detection], distortion: bool) -> tuple[np.ndarray, np.ndarray, str, float]:
    size = detections[0].size
    k0 = np.eye(3)  # without CALIB_USE_INTRINSIC_GUESS only fx/fy's ratio (1) is read from it
    if len(detections) >= MIN_PHOTOS_FOR_INTRINSICS:
        flags = cv2.CALIB_FIX_K3 if distortion else (
            cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST)
        method = "estimated"
    else:
        flags = (cv2.CALIB_FIX_PRINCIPAL_POINT | cv2.CALIB_FIX_ASPECT_RATIO | cv2.CALIB_ZERO_TANGENT_DIST
                 | cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3)
        method = "focal only"
    _, k, dist, _, _, std, _, _ = cv2.calibrateCameraExtended(
        [d.object_points for d in detections], [d.image_points for d in detections], size, k0, np.zeros(5),
        flags=flags)
    focal_std = float(std[1, 0] / k[1, 1])
    if not focal_std < MAX_FOCAL_STD:
        raise ValueError(f"the photos do not pin down the focal length (+-{focal_std:.1%}): add photos with the "
                         "board tilted towards or away from the camera, or pass a camera file with --intrinsics")
    return k, dist.ravel(), method, focal_std


def calibrate(pose_photo: str | Path, photos: Sequence[str | Path], board: Board, placement: Placement,
              name: str = "front", intrinsics: MountedCamera | None = None,
              distortion: bool = True, max_error_px: float = MAX_ERROR_PX) -> Calibration:
    """The camera that took `pose_photo` (the board at `placement`), in the base frame.

    `photos` are more views of the board (anywhere, same lens and focus) for the intrinsics.
    """
    detections = [detect(p, board) for p in [pose_photo, *photos]]
    width, height = detections[0].size
    for d in detections[1:]:
        if d.size != (width, height):
            raise PhotoError(f"photo {d.photo} is {d.size[0]}x{d.size[1]}, the pose photo {width}x{height}: "
                             "one camera, one image size")
    if intrinsics is not None:
        intrinsics = intrinsics.scaled(width, height)
        k, dist = _matrix(intrinsics), np.array(intrinsics.distortion or np.zeros(5), dtype=float)
        method, focal_std = "given", None
    else:
        k, dist, method, focal_std = _estimate_intrinsics(detections, distortion)

    errors, poses = {}, []
    for d in detections:
        rvec, tvec = _pose(d, k, dist)
        errors[d.photo] = _rms_error(d, k, dist, rvec, tvec)
        poses.append((rvec, tvec))
        if errors[d.photo] > max_error_px:
            raise PhotoError(f"photo {d.photo}: reprojection error {errors[d.photo]:.2f} px RMS is above the "
                             f"{max_error_px:g} px bound (blur, a board that is not flat, a wrong --board.square-mm, "
                             "or a lens needing distortion)")

    # solvePnP: x_cam = R x_board + t, so the camera sits at -R^T t in the board frame.
    rvec, tvec = poses[0]
    r_cam_board = cv2.Rodrigues(rvec)[0]
    r_base_board = placement.rotation()
    rotation = r_base_board @ r_cam_board.T  # camera axes -> base axes
    position = placement.to_base((-r_cam_board.T @ tvec).reshape(1, 3))[0]
    kept = tuple(float(v) for v in dist) if np.any(dist) else ()  # given intrinsics: theirs, as given
    camera = MountedCamera(name, width, height, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]),
                           "world", tuple(position.tolist()), tuple(matrix_to_quat(rotation).tolist()), kept)
    return Calibration(camera, errors, {d.photo: len(d.image_points) for d in detections}, method, focal_std)
