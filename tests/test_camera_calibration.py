"""Camera calibration without a camera: the board rendered in the sim from known cameras.

The board (its own image as a MuJoCo texture) lies on PickCube's table at its stated placement;
five cameras with one set of intrinsics look at it from different sides. The pose camera's
photo gives the pose, all five the intrinsics; the calibration must recover the known camera.
"""

from __future__ import annotations

import re
import zlib

import pytest

cv2 = pytest.importorskip("cv2")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import so101lab  # noqa: E402, F401  (EGL before the first render)
from so101lab.assets.look import apply_look  # noqa: E402
from so101lab.camera_file import MountedCamera, load_camera_file, look_at  # noqa: E402
from so101lab.envs.scene import ASSETS, camera_from_model, place_camera  # noqa: E402
from so101lab.experiments import cli  # noqa: E402
from so101lab.real.calibration_board import PAN_AXIS_X, Board, Placement, write_printable  # noqa: E402
from so101lab.real.camera_calibration import MIN_CORNERS, PhotoError, calibrate, detect  # noqa: E402

WIDTH, HEIGHT = 640, 480
BOARD = Board()
PAPER = 0.0002  # m, half the sim board's thickness
PLACEMENT = Placement(z=2 * PAPER)  # the printed surface, on top of the thin box
EYES = [(0.58, 0.04, 0.36), (0.30, 0.30, 0.28), (0.35, -0.28, 0.30), (0.05, -0.05, 0.40), (0.22, 0.02, 0.42)]


def _board_centre() -> np.ndarray:
    w, h = (v / 1000 for v in BOARD.size_mm)
    return PLACEMENT.to_base(np.array([[w / 2, h / 2, 0.0]]))[0]


def _add_board(spec: mujoco.MjSpec, texture: str) -> None:
    spec.add_texture(name="board", type=mujoco.mjtTexture.mjTEXTURE_2D, file=texture)
    material = spec.add_material(name="board")
    material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "board"
    # The box's +z face shows the texture unmirrored with the box's y opposite the board's y.
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, (PLACEMENT.rotation() @ np.diag([1.0, -1.0, -1.0])).ravel())
    w, h = (v / 1000 for v in BOARD.size_mm)
    spec.worldbody.add_geom(name="board", type=mujoco.mjtGeom.mjGEOM_BOX, size=[w / 2, h / 2, PAPER],
                            pos=[*_board_centre()[:2], PAPER], quat=quat.tolist(), material="board",
                            contype=0, conaffinity=0)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Renders of the board by five cameras (one lens), the model, and the photo paths."""
    root = tmp_path_factory.mktemp("calibration")
    texture = root / "board_texture.png"
    cv2.imwrite(str(texture), BOARD.image(60))
    cameras = [MountedCamera(f"cam{i}", WIDTH, HEIGHT, 600.0, 600.0, 322.5, 236.0, "world",
                             *look_at(eye, _board_centre() + (0.01 * i, 0, 0))) for i, eye in enumerate(EYES)]
    spec = mujoco.MjSpec.from_file(str(ASSETS / "pick_cube.xml"))
    apply_look(spec, "primitive", "white")
    for camera in cameras:
        place_camera(spec, camera)
    _add_board(spec, str(texture))
    spec.light("key").castshadow = False  # the arm's shadow would hide corners (real photos: move the arm)
    spec.visual.global_.offwidth, spec.visual.global_.offheight = WIDTH, HEIGHT
    model = spec.compile()
    data = mujoco.MjData(model)
    data.joint("shoulder_pan").qpos = 1.9  # the arm swung off the board
    mujoco.mj_forward(model, data)
    photos = []
    with mujoco.Renderer(model, HEIGHT, WIDTH) as renderer:
        for camera in cameras:
            renderer.update_scene(data, camera.name)
            photos.append(root / f"{camera.name}.png")
            cv2.imwrite(str(photos[-1]), renderer.render()[:, :, ::-1])
    return model, photos, root


def _pose_errors(found: MountedCamera, truth: MountedCamera) -> tuple[float, float]:
    """Position error (m) and rotation error (deg) between two cameras."""
    relative = found.rotation.T @ truth.rotation
    angle = np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1)))
    return float(np.linalg.norm(np.subtract(found.pos, truth.pos))), float(angle)


def test_command_recovers_pose_and_field_of_view(scene, tmp_path, capsys):
    model, photos, _ = scene
    out = tmp_path / "cameras.json"
    cli.main(["calibrate-camera", "solve", "--pose-photo", str(photos[0]), "--photos", *map(str, photos[1:]),
              "--out", str(out), "--name", "cam0", "--placement.z", str(PLACEMENT.z)])
    assert "written to" in capsys.readouterr().out
    (found,) = load_camera_file(out)
    truth = camera_from_model(model, "cam0", WIDTH, HEIGHT)
    position, angle = _pose_errors(found, truth)
    assert position < 0.002 and angle < 0.3, (position, angle)
    assert abs(found.fovy_deg - truth.fovy_deg) < 0.5
    # MuJoCo's pixel centres sit half a pixel off OpenCV's (measured); either way within a pixel.
    assert abs(found.cx - truth.cx) < 1.5 and abs(found.cy - truth.cy) < 1.5
    assert found.mount == "world" and (found.width, found.height) == (WIDTH, HEIGHT)


def test_one_photo_with_given_intrinsics_gives_the_pose(scene):
    model, photos, _ = scene
    truth = camera_from_model(model, "cam0", WIDTH, HEIGHT)
    result = calibrate(photos[0], [], BOARD, PLACEMENT, "cam0", intrinsics=truth)
    position, angle = _pose_errors(result.camera, truth)
    assert result.intrinsics == "given" and position < 0.002 and angle < 0.3, (position, angle)


def test_one_photo_alone_estimates_the_focal_length_only(scene):
    model, photos, _ = scene
    truth = camera_from_model(model, "cam0", WIDTH, HEIGHT)
    result = calibrate(photos[0], [], BOARD, PLACEMENT, "cam0")
    found = result.camera
    assert result.intrinsics == "focal only" and found.fx == found.fy
    assert (found.cx, found.cy) == ((WIDTH - 1) / 2, (HEIGHT - 1) / 2)  # OpenCV's image centre
    position, angle = _pose_errors(found, truth)
    # Coarser: the principal point is assumed, not measured.
    assert abs(found.fovy_deg - truth.fovy_deg) < 1.0 and position < 0.01 and angle < 1.0


def test_bad_photos_name_the_photo(scene, tmp_path):
    _, photos, _ = scene
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((HEIGHT, WIDTH, 3), 200, np.uint8))
    with pytest.raises(PhotoError, match=r"photo .*blank\.png: board not found"):
        calibrate(photos[0], [photos[1], blank], BOARD, PLACEMENT)
    with pytest.raises(PhotoError, match=r"photo .*missing\.jpg does not exist"):
        calibrate(tmp_path / "missing.jpg", [], BOARD, PLACEMENT)
    not_image = tmp_path / "notes.png"
    not_image.write_text("not a picture")
    with pytest.raises(PhotoError, match=r"photo .*notes\.png is not an image"):
        detect(not_image, BOARD)
    corner = tmp_path / "corner.png"  # a corner of the board only
    cv2.imwrite(str(corner), cv2.imread(str(photos[4]))[60:200, 350:520])
    with pytest.raises(PhotoError, match=rf"photo .*corner\.png: only \d board corners found, at least {MIN_CORNERS}"):
        detect(corner, BOARD)
    with pytest.raises(PhotoError, match=r"photo .*cam0\.png: reprojection error .* above the 0.01 px bound"):
        calibrate(photos[0], photos[1:], BOARD, PLACEMENT, max_error_px=0.01)


def test_command_errors_are_one_line(scene, tmp_path):
    _, photos, _ = scene
    with pytest.raises(SystemExit, match=r"^so101lab calibrate-camera: photo \S*nope\.jpg does not exist$"):
        cli.main(["calibrate-camera", "solve", "--pose-photo", str(tmp_path / "nope.jpg")])
    other = tmp_path / "other.json"
    cli.main(["calibrate-camera", "solve", "--pose-photo", str(photos[0]), "--out", str(other),
              "--name", "side", "--placement.z", str(PLACEMENT.z)])
    no_front = r"^so101lab calibrate-camera: camera file \S*other\.json has no camera named 'front'$"
    with pytest.raises(SystemExit, match=no_front):
        cli.main(["calibrate-camera", "solve", "--pose-photo", str(photos[0]), "--intrinsics", str(other),
                  "--out", str(tmp_path / "front.json")])
    assert not (tmp_path / "front.json").exists()


def test_printed_board_is_true_scale_and_detectable(tmp_path):
    png, pdf = write_printable(tmp_path / "board", BOARD, PLACEMENT)
    content = pdf.read_bytes()
    mm = 72 / 25.4
    page = [float(v) for v in re.search(rb"/MediaBox \[ ?0 0 ([\d.]+) ([\d.]+) ?\]", content).groups()]
    assert page == pytest.approx([297 * mm, 210 * mm], abs=1e-3)  # A4 landscape
    streams = (zlib.decompress(s) for s in re.findall(rb"stream\r?\n(.*?)endstream", content, re.S)
               if s[:1] == b"x")
    drawing = next(s for s in streams if b"Do" in s)
    # The board image's transform: its width and height on the page, in points.
    a, _, _, d = (float(v) for v in re.search(rb"([-\d.]+) 0 0\s+([-\d.]+) ([-\d.]+) ([-\d.]+) cm /I\d+ Do",
                                               drawing).groups())
    assert (abs(a), abs(d)) == pytest.approx((BOARD.size_mm[0] * mm, BOARD.size_mm[1] * mm), abs=1e-3)
    assert len(detect(png, BOARD).image_points) == (BOARD.squares_x - 1) * (BOARD.squares_y - 1)


def test_placement_and_pan_axis_match_the_model(scene):
    model, _, _ = scene
    assert model.body("shoulder").pos[0] == pytest.approx(PAN_AXIS_X, abs=1e-7)
    for yaw in (0.0, 90.0, -35.0):
        rotation = Placement(yaw_deg=yaw).rotation()
        assert np.allclose(rotation @ rotation.T, np.eye(3)) and np.linalg.det(rotation) == pytest.approx(1)
        assert rotation[:, 2] == pytest.approx([0, 0, -1])  # printed side up: the board's z into the table
