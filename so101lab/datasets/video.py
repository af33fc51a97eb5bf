"""Video files of a dataset: streaming encoder (ffmpeg), episode concatenation, frame decoder (PyAV).

Frames go to ffmpeg as raw RGB over a pipe, one at a time (no PNG round trip), from a feeder
thread so the recording loop never waits on the encoder. A finished episode's mp4 is appended
to the camera's current file by remuxing packets (no re-encoding) into a temp file that then
atomically replaces it, so a file on disk is always a complete, playable mp4.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import threading
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

from so101lab.datasets.format import DatasetFileError, commit_file, temp_path_for

DEFAULT_VCODEC = "libsvtav1"
VCODECS = ("libsvtav1", "h264")
CODEC_NAMES = {"libsvtav1": "av1", "h264": "h264"}  # ffmpeg encoder -> codec name stored in info.json
DEFAULT_PRESETS: dict[str, int | str] = {"libsvtav1": 12, "h264": "veryfast"}


def encoder_args(vcodec: str, crf: int, preset: int | str | None, gop: int, threads: int | None) -> list[str]:
    """ffmpeg output options of a codec, defaults as LeRobot's (yuv420p, keyframe every ``gop``)."""
    if vcodec == "libsvtav1":
        args = ["-c:v", "libsvtav1", "-crf", str(crf), "-g", str(gop)]
        args += ["-preset", str(DEFAULT_PRESETS[vcodec] if preset is None else preset)]
        if threads:
            args += ["-svtav1-params", f"lp={threads}"]
    elif vcodec == "h264":
        # No B-frames: pts == dts, which keeps concatenation and seeking simple.
        args = ["-c:v", "libx264", "-crf", str(crf), "-g", str(gop), "-bf", "0"]
        args += ["-preset", str(DEFAULT_PRESETS[vcodec] if preset is None else preset)]
        if threads:
            args += ["-threads", str(threads)]
    else:
        raise ValueError(f"unknown video codec {vcodec!r}; choose one of {VCODECS}")
    return [*args, "-pix_fmt", "yuv420p"]


class VideoEncoder:
    """Encodes HxWx3 uint8 frames, fed one by one, into an mp4 at ``path`` with an ffmpeg process."""

    def __init__(
        self,
        path: Path,
        height: int,
        width: int,
        fps: int,
        vcodec: str = DEFAULT_VCODEC,
        crf: int = 30,
        preset: int | str | None = None,
        gop: int = 2,
        threads: int | None = None,
    ) -> None:
        if height % 2 or width % 2:
            raise ValueError(f"yuv420p video needs even frame sizes, got {height}x{width}")
        self.path = Path(path)
        self.shape = (height, width, 3)
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
            *encoder_args(vcodec, crf, preset, gop, threads), "-an", "-f", "mp4", str(self.path),
        ]  # fmt: skip
        self._stderr = temp_path_for(self.path.with_suffix(".log"))
        with open(self._stderr, "wb") as err:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()
        self.frames = 0

    def _feed(self) -> None:
        assert self._proc.stdin is not None
        while (data := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                self._proc.stdin.write(data)
            except (BrokenPipeError, OSError) as e:
                self._error = e

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(
                f"frame for {self.path.name} must be uint8 {self.shape}, got {frame.dtype} {frame.shape}"
            )
        if self._error is not None:
            raise RuntimeError(f"ffmpeg stopped encoding {self.path}: {self._read_stderr()}")
        self._queue.put(np.ascontiguousarray(frame).tobytes())
        self.frames += 1

    def close(self) -> None:
        """Flush and wait for ffmpeg; the mp4 is complete when this returns."""
        self._queue.put(None)
        self._thread.join()
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        code = self._proc.wait()
        log = self._read_stderr()
        self._stderr.unlink(missing_ok=True)
        if code != 0 or self._error is not None:
            raise RuntimeError(f"ffmpeg failed (exit {code}) writing {self.path}: {log}")

    def abort(self) -> None:
        """Stop encoding and delete the partial file."""
        self._error = self._error or RuntimeError("aborted")
        self._queue.put(None)
        self._proc.kill()
        self._thread.join()
        self._proc.wait()
        self._stderr.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)

    def _read_stderr(self) -> str:
        try:
            return self._stderr.read_text(errors="replace").strip()[-2000:]
        except OSError:
            return ""


def append_video(dst: Path, episode: Path) -> float:
    """Append the mp4 ``episode`` to ``dst`` (created if absent), atomically; delete ``episode``.

    Returns the time (s) in ``dst`` where the episode's first frame now sits.
    """
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        commit_file(episode, dst)
        return 0.0
    tmp = temp_path_for(dst)
    with av.open(str(dst)) as old, av.open(str(episode)) as new:
        src_old, src_new = old.streams.video[0], new.streams.video[0]
        with av.open(str(tmp), "w", format="mp4") as out:
            stream = out.add_stream_from_template(src_old, opaque=True)
            stream.time_base = src_old.time_base
            tb = src_old.time_base
            frame_ticks = round(1 / (float(src_old.average_rate or 30) * float(tb)))
            end = _copy_packets(old, src_old, out, stream, offset=0, tb=tb, frame_ticks=frame_ticks)
            _copy_packets(new, src_new, out, stream, offset=end, tb=tb, frame_ticks=frame_ticks)
    commit_file(tmp, dst)
    episode.unlink()
    return float(end * tb)


def _copy_packets(src, src_stream, out, stream, offset: int, tb: Fraction, frame_ticks: int) -> int:
    """Mux every packet of ``src_stream`` into ``stream`` shifted by ``offset`` ticks; returns end tick."""
    end = offset
    scale = src_stream.time_base / tb
    for packet in src.demux(src_stream):
        if packet.pts is None:  # demuxer flush packet
            continue
        pts = offset + round(packet.pts * scale)
        dts = offset + round(packet.dts * scale) if packet.dts is not None else pts
        duration = round(packet.duration * scale) if packet.duration else frame_ticks
        packet.pts, packet.dts, packet.duration = pts, dts, duration
        packet.stream = stream
        packet.time_base = tb
        out.mux(packet)
        end = max(end, pts + duration)
    return end


def truncate_video(path: Path, end_s: float) -> None:
    """Drop frames at or after ``end_s`` (leftovers of an episode that was never committed)."""
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        tb = stream.time_base
        frame_s = 1 / float(stream.average_rate or 30)
        times = [p.pts * tb for p in src.demux(stream) if p.pts is not None]
    if not times or float(max(times)) < end_s - frame_s / 2:
        return
    tmp = temp_path_for(path)
    with av.open(str(path)) as src, av.open(str(tmp), "w", format="mp4") as out:
        stream = src.streams.video[0]
        dst = out.add_stream_from_template(stream, opaque=True)
        dst.time_base = stream.time_base
        for packet in src.demux(stream):
            if packet.pts is None or float(packet.pts * tb) >= end_s - frame_s / 2:
                continue
            packet.stream = dst
            out.mux(packet)
    commit_file(tmp, path)


class _OpenVideo:
    """One open container plus what was decoded last, so nearby queries skip the seek."""

    def __init__(self, path: Path) -> None:
        try:
            self.container = av.open(str(path))
            self.stream = self.container.streams.video[0]
        except (av.error.FFmpegError, IndexError) as e:
            raise DatasetFileError(path, f"not a readable video ({e})") from e
        # One thread: a query decodes 1-3 frames (keyframe every 2), so threads would not help,
        # and decoder threads alive at fork() can deadlock DataLoader workers.
        self.stream.codec_context.thread_count = 1
        self.time_base = float(self.stream.time_base)
        self.frame_s = 1.0 / float(self.stream.average_rate or 30)
        self.frames_iter = None
        self.last_t: float | None = None
        self.recent: OrderedDict[float, np.ndarray] = OrderedDict()  # t -> rgb frame


_INHERITED: list[OrderedDict] = []


class VideoDecoder:
    """Frames of mp4 files at given timestamps, with open decoders reused across calls.

    Containers are opened lazily in the process that reads and dropped after a fork or pickle,
    so one instance is safe to hand to DataLoader workers (each worker gets its own decoders).
    """

    RECENT_FRAMES = 8
    MAX_SKIP_FRAMES = 4  # decode forward instead of seeking when the target is this close

    def __init__(self, max_open: int = 16) -> None:
        self.max_open = max_open
        self._pid = os.getpid()
        self._open: OrderedDict[Path, _OpenVideo] = OrderedDict()

    def __getstate__(self) -> dict:
        return {"max_open": self.max_open}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_open"])

    def _video(self, path: Path) -> _OpenVideo:
        if os.getpid() != self._pid:
            # Forked: use fresh decoders, and never free the parent's copies here (closing a
            # container inherited through fork() can hang in FFmpeg), so keep them referenced.
            _INHERITED.append(self._open)
            self._open = OrderedDict()
            self._pid = os.getpid()
        video = self._open.get(path)
        if video is None:
            if not path.is_file():
                raise DatasetFileError(path, "missing")
            video = self._open[path] = _OpenVideo(path)
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)[1].container.close()
        self._open.move_to_end(path)
        return video

    def frames(self, path: Path, timestamps: list[float], tolerance_s: float) -> np.ndarray:
        """uint8 frames (N, H, W, 3) whose times are within ``tolerance_s`` of ``timestamps``."""
        video = self._video(path)
        found: dict[int, np.ndarray] = {}
        for i, ts in enumerate(timestamps):
            hit = _nearest(video.recent, ts, tolerance_s)
            if hit is not None:
                found[i] = hit
        pending = [i for i in range(len(timestamps)) if i not in found]
        if pending:
            try:
                self._decode_into(video, timestamps, pending, found, tolerance_s)
            except av.error.FFmpegError as e:
                self._open.pop(path, None)
                raise DatasetFileError(path, f"cannot decode video ({e})") from e
        missing = [timestamps[i] for i in range(len(timestamps)) if i not in found]
        if missing:
            raise DatasetFileError(path, f"no frame within {tolerance_s}s of timestamps {missing}")
        return np.stack([found[i] for i in range(len(timestamps))])

    def _decode_into(self, video, timestamps, pending, found, tol) -> None:
        first = min(timestamps[i] for i in pending)
        last = max(timestamps[i] for i in pending)
        near = (
            video.last_t is not None
            and video.last_t < first <= video.last_t + self.MAX_SKIP_FRAMES * video.frame_s
        )
        if not near or video.frames_iter is None:
            target = max(0, int((first - tol) / video.time_base))
            video.container.seek(target, stream=video.stream, backward=True, any_frame=False)
            video.frames_iter = video.container.decode(video.stream)
            video.last_t = None
        for frame in video.frames_iter:
            if frame.pts is None:
                continue
            t = frame.pts * video.time_base
            video.last_t = t
            if t < first - tol:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            video.recent[t] = rgb
            if len(video.recent) > self.RECENT_FRAMES:
                video.recent.popitem(last=False)
            for i in pending:
                if i not in found and abs(t - timestamps[i]) < tol:
                    found[i] = rgb
            if t >= last - tol:
                return
        video.frames_iter = None  # reached the end of the file


def _nearest(recent: OrderedDict[float, np.ndarray], ts: float, tol: float) -> np.ndarray | None:
    for t, rgb in recent.items():
        if abs(t - ts) < tol:
            return rgb
    return None


def probe_frames(path: Path) -> int:
    """Number of video frames in an mp4 (counted from packets, no decoding)."""
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.pts is not None)
