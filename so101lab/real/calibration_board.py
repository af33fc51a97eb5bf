"""The ChArUco board that calibrates a camera: its geometry, a printable page, and where it lies.

A ChArUco board is a chessboard whose white squares hold ArUco markers: every detected corner
knows which corner it is, so a photo that shows only part of the board (the arm in the way)
still gives a pose. The board frame is OpenCV's: origin at the outer corner of the first
square (the page's top-left), x along the top edge, y down the page, z into the table when the
board lies printed side up.

`so101lab calibrate-camera` needs cv2 (opencv-python-headless); nothing else in so101lab does,
so it is imported here, not at package import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# The base frame's origin lies on the table under the arm's centre line, this far behind the
# shoulder_pan axis (so101.xml, body "shoulder"; tests/test_camera_calibration.py ties the two).
PAN_AXIS_X = 0.0388353
A4_MM = (297.0, 210.0)  # landscape
PAGE_DPI = 300


@dataclass(frozen=True)
class Board:
    """A ChArUco board; sizes as printed (measure a square on the print and pass what it is)."""

    squares_x: int = 9
    """Squares along the board's x (the page's long edge)."""
    squares_y: int = 6
    """Squares along the board's y (the page's short edge)."""
    square_mm: float = 30.0
    """Side of one chessboard square on the print, mm."""
    marker_mm: float = 22.0
    """Side of one ArUco marker on the print, mm."""
    dictionary: str = "DICT_5X5_100"
    """OpenCV ArUco dictionary of the markers (cv2.aruco.DICT_*)."""

    def __post_init__(self):
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError(f"a ChArUco board needs at least 3x3 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker_mm < self.square_mm:
            raise ValueError(f"markers ({self.marker_mm} mm) must be smaller than squares ({self.square_mm} mm)")
        if not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r}")
        available = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary)).bytesList.shape[0]
        if (self.squares_x * self.squares_y) // 2 > available:
            raise ValueError(f"{self.dictionary} has too few markers for {self.squares_x}x{self.squares_y} squares")

    @property
    def size_mm(self) -> tuple[float, float]:
        return self.squares_x * self.square_mm, self.squares_y * self.square_mm

    def describe(self) -> str:
        return (f"ChArUco {self.squares_x}x{self.squares_y} squares of {self.square_mm:g} mm, "
                f"markers {self.marker_mm:g} mm, {self.dictionary}")

    def opencv(self) -> cv2.aruco.CharucoBoard:
        """The OpenCV board, in metres (so poses come out in metres)."""
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_mm / 1000,
                                      self.marker_mm / 1000, dictionary)

    def image(self, px_per_square: int) -> np.ndarray:
        """The board alone as a grey image, no margin (also the sim's texture in the tests)."""
        size = (self.squares_x * px_per_square, self.squares_y * px_per_square)
        return self.opencv().generateImage(size, marginSize=0, borderBits=1)


@dataclass(frozen=True)
class Placement:
    """Where the board lies, printed side up, in the arm's base frame (x forward, y left, z up)."""

    x: float = 0.10
    """Board origin corner, metres forward of the base frame's origin."""
    y: float = -0.135
    """Board origin corner, metres to the left of the base frame's origin (negative: right)."""
    yaw_deg: float = 90.0
    """Direction of the board's x edge, degrees from the base's x towards its y (90: the arm's left)."""
    z: float = 0.0
    """Height of the printed surface above the table top (the base frame's z = 0), metres."""

    def rotation(self) -> np.ndarray:
        """3x3 rotation taking board-frame vectors to the base frame (board z points down)."""
        c, s = np.cos(np.radians(self.yaw_deg)), np.sin(np.radians(self.yaw_deg))
        x, z = np.array([c, s, 0.0]), np.array([0.0, 0.0, -1.0])
        return np.column_stack([x, np.cross(z, x), z])

    @property
    def origin(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    def to_base(self, points: np.ndarray) -> np.ndarray:
        """Board-frame points (N x 3, metres) in the base frame."""
        return np.asarray(points) @ self.rotation().T + self.origin

    def describe(self, board: Board) -> str:
        """Where to lay the board, in two lines (printed on the page and by the command)."""
        width, height = (v / 1000 for v in board.size_mm)
        centre = self.to_base(np.array([[width / 2, height / 2, 0.0]]))[0]
        return (f"Lay it flat, printed side up, the origin corner (red dot) at x = {self.x:.3f} m, y = {self.y:.3f} m "
                f"in the arm's base frame (x forward, y left; origin on the table {PAN_AXIS_X * 1000:.1f} mm "
                f"behind the shoulder_pan axis),\nthe board x arrow at yaw {self.yaw_deg:g} deg "
                f"(0: the arm's forward, 90: its left); the board's centre is then at x = {centre[0]:.3f} m, "
                f"y = {centre[1]:.3f} m.")

    def flags(self) -> str:
        """The command-line flags that state this placement (printed on the page)."""
        return (f"--placement.x {self.x:g} --placement.y {self.y:g} --placement.yaw-deg {self.yaw_deg:g}"
                + (f" --placement.z {self.z:g}" if self.z else ""))


def write_printable(out: str | Path, board: Board, placement: Placement) -> tuple[Path, Path]:
    """The board on an A4 landscape page as `out`.pdf (true scale) and `out`.png (300 dpi).

    The PDF page is exactly A4 and the board image is placed at its size in mm, so a printer at
    100 % ("actual size") makes every square `board.square_mm`. The PNG is the same page for the
    screen; print the PDF.
    """
    from matplotlib.figure import Figure

    page_w, page_h = A4_MM
    board_w, board_h = board.size_mm
    margin = 12.0  # mm: room for the notes and the printer's unprintable border
    if board_w > page_w - 2 * margin or board_h > page_h - 2 * margin:
        raise ValueError(f"a {board_w:g} x {board_h:g} mm board does not fit on an A4 page "
                         f"with {margin:g} mm margins: use fewer or smaller squares")
    left, top = (page_w - board_w) / 2, (page_h - board_h) / 2
    # 10 px per mm: corners fall on pixel edges for any whole-0.1-mm square size.
    image = board.image(round(board.square_mm * 10))

    fig = Figure(figsize=(page_w / 25.4, page_h / 25.4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, page_w)
    ax.set_ylim(page_h, 0)  # page millimetres, y down like the board's y
    ax.axis("off")
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, extent=(left, left + board_w, top + board_h, top),
              interpolation="none")
    ax.plot([left], [top], "o", color="tab:red", markersize=6)
    arrow = {"arrowstyle": "->", "color": "tab:red", "lw": 1.2}
    ax.annotate("", (left + 40, top - 3), (left, top - 3), arrowprops=arrow)
    ax.text(left + 42, top - 3, "board x", color="tab:red", va="center", fontsize=7)
    ax.annotate("", (left - 3, top + 40), (left - 3, top), arrowprops=arrow)
    ax.text(left - 3, top + 42, "board y", color="tab:red", ha="center", va="top", fontsize=7, rotation=90)
    ax.text(left + 70, top - 3, f"{board.describe()}. Print the PDF at 100 % (actual size) and measure a "
            f"square: it must be {board.square_mm:g} mm (else pass --board.square-mm MEASURED).",
            va="center", fontsize=6)
    ax.text(left, top + board_h + 2, placement.describe(board), va="top", fontsize=6, linespacing=1.5)
    ax.text(left, top + board_h + 9, f"so101lab calibrate-camera solve {placement.flags()} ...",
            va="top", fontsize=6, family="monospace")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = out.with_suffix(".pdf"), out.with_suffix(".png")
    fig.savefig(pdf)
    fig.savefig(png, dpi=PAGE_DPI)
    return png, pdf
