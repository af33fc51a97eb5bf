"""Recording one episode: validate frames, stream camera frames to encoders, buffer the rest.

An `EpisodeRecorder` may live in another process than the `DatasetWriter` (collect's workers
encode their own videos); `finish()` returns a small picklable `EpisodeData` (numbers, tasks,
image thumbnails for stats, paths of finished temp mp4s) that the writer commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from so101lab.datasets import stats as stats_lib
from so101lab.datasets.format import DEFAULT_FEATURES, VISUAL_DTYPES, temp_path_for
from so101lab.datasets.video import DEFAULT_VCODEC, VideoEncoder


@dataclass
class VideoSettings:
    """How camera streams are encoded (LeRobot's defaults)."""

    vcodec: str = DEFAULT_VCODEC
    crf: int = 30
    preset: int | str | None = None
    gop: int = 2
    threads: int | None = None


@dataclass
class EpisodeData:
    """A finished, not yet committed episode."""

    length: int
    values: dict[str, np.ndarray]  # non-video feature -> (length, *shape)
    tasks: list[str]  # per frame
    timestamps: np.ndarray  # float32 (length,)
    videos: dict[str, Path] = field(default_factory=dict)  # video key -> finished temp mp4
    thumbnails: dict[str, np.ndarray] = field(default_factory=dict)  # video key -> uint8 (n, h, w, 3)


class EpisodeRecorder:
    """Collects the frames of one episode for a dataset with ``features`` under ``root``."""

    def __init__(
        self, root: Path, features: dict[str, dict[str, Any]], fps: int, video: VideoSettings
    ) -> None:
        self.root = Path(root)
        self.fps = fps
        self.video = video
        robot = {k: f for k, f in features.items() if k not in DEFAULT_FEATURES}
        for key, f in robot.items():
            if f["dtype"] == "image":
                raise ValueError(
                    f"feature {key!r}: dtype 'image' is not supported by the writer; use 'video'"
                )
        self.video_keys = [k for k, f in robot.items() if f["dtype"] in VISUAL_DTYPES]
        self.value_features = {k: f for k, f in robot.items() if f["dtype"] not in VISUAL_DTYPES}
        self.shapes = {k: tuple(int(s) for s in f["shape"]) for k, f in robot.items()}
        self.dtypes = {k: np.dtype(f["dtype"]) for k, f in self.value_features.items()}
        self._id = uuid.uuid4().hex[:12]
        self._values: dict[str, list[np.ndarray]] = {k: [] for k in self.value_features}
        self._tasks: list[str] = []
        self._timestamps: list[float] = []
        self._thumbs: dict[str, list[np.ndarray]] = {k: [] for k in self.video_keys}
        self._encoders: dict[str, VideoEncoder] = {}
        self.length = 0

    def add_frame(self, frame: dict[str, Any], task: str, timestamp: float | None = None) -> None:
        """Add one time step: a value per feature (arrays of the feature's shape; images HxWx3 uint8)."""
        expected = set(self.shapes)
        missing, extra = expected - set(frame), set(frame) - expected
        if missing or extra:
            raise ValueError(
                f"frame keys do not match the features: missing {sorted(missing)}, extra {sorted(extra)}"
            )
        if not isinstance(task, str) or not task:
            raise ValueError(f"task must be a non-empty string, got {task!r}")
        checked: dict[str, np.ndarray] = {}
        for key, value in frame.items():
            arr = np.asarray(value)
            if key in self._thumbs:
                if arr.dtype != np.uint8 or arr.shape != self.shapes[key]:
                    raise ValueError(
                        f"{key}: expected uint8 image {self.shapes[key]}, got {arr.dtype} {arr.shape}"
                    )
            else:
                if arr.shape != self.shapes[key] and not (self.shapes[key] == (1,) and arr.shape == ()):
                    raise ValueError(f"{key}: expected shape {self.shapes[key]}, got {arr.shape}")
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"{key}: values must be finite, got {arr}")
                arr = arr.astype(self.dtypes[key]).reshape(self.shapes[key])
            checked[key] = arr
        if timestamp is None:
            timestamp = self.length / self.fps
        elif self._timestamps and timestamp <= self._timestamps[-1]:
            raise ValueError(f"timestamps must increase, got {timestamp} after {self._timestamps[-1]}")
        for key in self.video_keys:
            self._encoder(key).write(checked[key])
            self._thumbs[key].append(stats_lib.downscale(checked[key]))
        for key in self.value_features:
            self._values[key].append(checked[key])
        self._tasks.append(task)
        self._timestamps.append(float(timestamp))
        self.length += 1

    def _encoder(self, key: str) -> VideoEncoder:
        enc = self._encoders.get(key)
        if enc is None:
            h, w, _ = self.shapes[key]
            path = temp_path_for(self.root / "videos" / key / f"recording-{self._id}.mp4")
            v = self.video
            enc = self._encoders[key] = VideoEncoder(
                path, h, w, self.fps, v.vcodec, v.crf, v.preset, v.gop, v.threads
            )
        return enc

    def finish(self) -> EpisodeData:
        """Close the encoders and hand over the episode (nothing is committed yet)."""
        if self.length == 0:
            raise ValueError("cannot save an episode without frames")
        for enc in self._encoders.values():
            enc.close()
        sample = stats_lib.sample_indices(self.length)
        data = EpisodeData(
            length=self.length,
            values={k: np.stack(v) for k, v in self._values.items()},
            tasks=list(self._tasks),
            timestamps=np.asarray(self._timestamps, dtype=np.float32),
            videos={k: enc.path for k, enc in self._encoders.items()},
            thumbnails={k: np.stack([t[i] for i in sample]) for k, t in self._thumbs.items()},
        )
        self._encoders = {}
        return data

    def discard(self) -> None:
        """Drop the episode: stop encoders and delete their partial files."""
        for enc in self._encoders.values():
            enc.abort()
        self._encoders = {}
        self.length = 0
