"""ffmpeg cameras: a real ffmpeg process (lavfi test source stands in for v4l2), latest frame, stalls."""

import glob
import os
import subprocess
import time

import imageio_ffmpeg
import numpy as np
import pytest

from so101lab.real.cameras import FFmpegCamera, find_cameras
from so101lab.real.errors import CameraError


def test_background_reader_keeps_the_latest_frame():
    cam = FFmpegCamera("testsrc2=size=160x120:rate=30", 120, 160, input_format="lavfi")
    try:
        first = cam.read().copy()
        assert first.shape == (120, 160, 3) and first.dtype == np.uint8
        time.sleep(0.2)
        assert cam.frames >= 3
        assert not np.array_equal(cam.read(), first)  # testsrc2 animates: a newer frame arrived
    finally:
        cam.close()


def test_source_resized_to_the_configured_size():
    cam = FFmpegCamera("testsrc=size=320x240:rate=30", 48, 64, input_format="lavfi")
    try:
        assert cam.read().shape == (48, 64, 3)
    finally:
        cam.close()


def test_a_stalled_camera_raises_instead_of_returning_a_frozen_frame():
    cam = FFmpegCamera("testsrc=size=64x48:rate=30:duration=0.3", 48, 64, input_format="lavfi",
                       stall_timeout=0.2)
    try:
        cam.read()
        time.sleep(0.8)
        with pytest.raises(CameraError, match=r"stalled: no new frame for"):
            cam.read()
    finally:
        cam.close()


def test_setup_errors_are_specific():
    with pytest.raises(ValueError, match=r"15 fps is slower than the 30 Hz control rate"):
        FFmpegCamera("/dev/video0", fps=15)
    with pytest.raises(CameraError, match=r"/dev/video77 not found.*find-cameras"):
        FFmpegCamera("/dev/video77")
    with pytest.raises(CameraError, match="delivered no frame"):
        FFmpegCamera("nosuchfilter", input_format="lavfi", start_timeout=2)


@pytest.fixture
def streaming_pipe(tmp_path):
    """A named pipe a separate ffmpeg process streams live video into, as a camera device would."""
    pipe = tmp_path / "video0"
    os.mkfifo(pipe)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi",
           "-i", "testsrc2=size=320x240:rate=30:duration=20", "-f", "nut", "-y", str(pipe)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield str(pipe)
    proc.kill()
    proc.wait()


def test_find_cameras_reports_a_live_stream_and_a_missing_device(streaming_pipe, tmp_path):
    missing = str(tmp_path / "video9")
    found = find_cameras(timeout=5, devices=[streaming_pipe, missing], input_format="nut")
    assert [e["device"] for e in found] == [streaming_pipe, missing]
    assert found[0]["ok"] and found[0]["shape"] == [480, 640, 3]  # resized to the contract's image size
    assert not found[1]["ok"] and "delivered no frame" in found[1]["error"]


def test_a_camera_on_a_live_stream_delivers_new_frames(streaming_pipe):
    cam = FFmpegCamera(streaming_pipe, 48, 64, input_format="nut")
    try:
        first = cam.read().copy()
        time.sleep(0.3)
        assert cam.frames >= 5 and not np.array_equal(cam.read(), first)
    finally:
        cam.close()


@pytest.mark.skipif(not glob.glob("/dev/video*"), reason="no /dev/video* device on this machine")
def test_find_cameras_reports_each_video_device():
    found = find_cameras(timeout=2)
    assert [e["device"] for e in found] == sorted(glob.glob("/dev/video*"))
    for entry in found:
        assert entry["ok"] or entry["error"]


def test_a_camera_slower_than_the_control_rate_is_reported(caplog):
    cam = FFmpegCamera("testsrc=size=64x48:rate=12", 48, 64, input_format="lavfi")
    try:
        time.sleep(2.8)
        assert cam.measured_fps == pytest.approx(12, rel=0.25)
        with caplog.at_level("WARNING"):
            cam.read()
        assert "below the 30 Hz control rate" in caplog.text
    finally:
        cam.close()
