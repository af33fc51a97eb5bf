"""Calibrate a fixed camera against the arm with a printed ChArUco board; write a camera file.

    so101lab calibrate-camera print-board --out board          # board.pdf (print it) + board.png
    so101lab calibrate-camera solve --pose-photo on_table.jpg --photos tilt1.jpg tilt2.jpg tilt3.jpg

`solve` finds the board in every photo, estimates the intrinsics, takes the camera's pose in the
arm's base frame from the photo with the board at its stated place, and writes (or updates, by
camera name) a camera file for `gym.make(..., camera_config=FILE)` (docs/real.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from so101lab.camera_file import load_camera_file, save_camera_file
from so101lab.real.calibration_board import Board, Placement, write_printable
from so101lab.real.camera_calibration import MAX_ERROR_PX, calibrate


@dataclass
class PrintBoard:
    """Write the board on an A4 page as PDF (true scale, to print) and PNG, with where to lay it."""

    out: Path = Path("outputs/calibration_board")
    """Path without suffix: writes OUT.pdf and OUT.png."""
    board: Board = field(default_factory=Board)
    """The board to draw."""
    placement: Placement = field(default_factory=Placement)
    """Where the board will lie (printed on the page as a reminder)."""


@dataclass
class Solve:
    """Intrinsics and base-frame pose of a camera from photos of the board; writes a camera file."""

    pose_photo: Path
    """Photo with the board lying at its stated place (--placement.*), the camera where it stays."""
    photos: tuple[Path, ...] = ()
    """More photos for the intrinsics: the board tilted at several angles and distances, same lens and focus."""
    out: Path = Path("cameras.json")
    """Camera file to write; an existing file keeps its other cameras."""
    name: str = "front"
    """Camera name in the file (the env's and dataset's camera key)."""
    intrinsics: Path | None = None
    """Camera file whose camera NAME gives the intrinsics to use as they are; only the pose is estimated."""
    distortion: bool = True
    """With 3+ photos also estimate lens distortion k1 k2 p1 p2 (kept in the file; the sim renders a pinhole)."""
    max_error_px: float = MAX_ERROR_PX
    """Reject a photo whose RMS reprojection error is above this many pixels."""
    board: Board = field(default_factory=Board)
    """The printed board (measure a square on the print: --board.square-mm)."""
    placement: Placement = field(default_factory=Placement)
    """Where the board lies in the pose photo, in the arm's base frame."""


def print_board(args: PrintBoard) -> None:
    png, pdf = write_printable(args.out, args.board, args.placement)
    print(f"{args.board.describe()}\nwritten {pdf} (print at 100 %, actual size) and {png}")
    print(args.placement.describe(args.board))


def solve(args: Solve) -> None:
    given = None
    if args.intrinsics is not None:
        given = {c.name: c for c in load_camera_file(args.intrinsics)}.get(args.name)
        if given is None:
            raise ValueError(f"camera file {args.intrinsics} has no camera named {args.name!r}")
    result = calibrate(args.pose_photo, args.photos, args.board, args.placement, args.name, given,
                       args.distortion, args.max_error_px)
    for photo, error in result.errors_px.items():
        print(f"{photo}: {result.corners[photo]} corners, reprojection error {error:.2f} px RMS")

    cam = result.camera
    others = [c for c in load_camera_file(args.out) if c.name != cam.name] if args.out.exists() else []
    save_camera_file(args.out, [*others, cam])
    print(f"intrinsics ({result.intrinsics}): fx {cam.fx:.1f} fy {cam.fy:.1f} cx {cam.cx:.1f} cy {cam.cy:.1f} px, "
          f"vertical field of view {cam.fovy_deg:.2f} deg" + (f", distortion {np.round(cam.distortion, 4).tolist()}"
                                                              if cam.distortion else ""))
    view = cam.rotation[:, 2]
    print(f"pose in the base frame: position {np.round(cam.pos, 4).tolist()} m, looking along "
          f"{np.round(view, 3).tolist()} ({np.degrees(np.arcsin(-view[2])):.1f} deg down)")
    print(f"camera {cam.name!r} written to {args.out}: gym.make(..., camera_config={str(args.out)!r})")


def main(args: PrintBoard | Solve) -> None:
    try:
        print_board(args) if isinstance(args, PrintBoard) else solve(args)
    except (ValueError, FileNotFoundError) as e:  # PhotoError and bad files: one line naming the culprit
        raise SystemExit(str(e)) from None
