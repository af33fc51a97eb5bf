"""`LeRobotDataset`: a torch Dataset over a LeRobot v3.0 (or v2.1) dataset on disk.

Items are what LeRobot's own reader returns: a dict of tensors (frames float32 CHW in [0, 1])
plus "task", with ``delta_timestamps`` windows clamped to the episode and ``<key>_is_pad`` masks.
Non-video columns are loaded once into numpy arrays; video frames are decoded on demand by a
`VideoDecoder` that keeps its containers open per worker process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import pyarrow as pa
import torch

from so101lab.datasets.checks import check_column, check_timestamps
from so101lab.datasets.format import INFO_PATH, DatasetFileError, read_parquet
from so101lab.datasets.meta import DatasetMeta
from so101lab.datasets.video import VideoDecoder


def check_delta_timestamps(delta_timestamps: dict[str, list[float]], fps: int, tolerance_s: float) -> None:
    """Every delta must be a whole number of frames, within ``tolerance_s``."""
    bad = {
        key: [d for d in deltas if abs(d * fps - round(d * fps)) / fps > tolerance_s]
        for key, deltas in delta_timestamps.items()
    }
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        raise ValueError(
            f"delta_timestamps must be multiples of 1/{fps} s (tolerance {tolerance_s} s): {bad}"
        )


class LeRobotDataset(torch.utils.data.Dataset):
    """Frames of a LeRobot dataset at ``root``.

    ``episodes`` selects a subset (items are then numbered over it); ``delta_timestamps``
    maps feature keys to time offsets (s) gathered around each item; ``image_transforms`` is
    applied to each camera tensor.
    """

    def __init__(
        self,
        root: str | Path,
        episodes: list[int] | None = None,
        delta_timestamps: dict[str, list[float]] | None = None,
        tolerance_s: float = 1e-4,
        image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.root = Path(root)
        self.meta = DatasetMeta(self.root)
        self.tolerance_s = tolerance_s
        self.image_transforms = image_transforms
        all_eps = range(self.meta.total_episodes)
        self.episodes = list(all_eps) if episodes is None else list(episodes)
        unknown = [e for e in self.episodes if e not in all_eps]
        if not self.episodes:
            raise ValueError(f"no episodes selected from {self.root}")
        if unknown:
            raise ValueError(f"episodes {unknown} not in {self.root} ({self.meta.total_episodes} episodes)")
        self.delta_timestamps = delta_timestamps
        self.delta_indices: dict[str, np.ndarray] | None = None
        if delta_timestamps is not None:
            unknown_keys = set(delta_timestamps) - set(self.meta.features)
            if unknown_keys:
                raise ValueError(
                    f"delta_timestamps keys {sorted(unknown_keys)} are not features of {self.root}"
                )
            check_delta_timestamps(delta_timestamps, self.meta.fps, tolerance_s)
            self.delta_indices = {
                k: np.array([round(d * self.meta.fps) for d in v], dtype=np.int64)
                for k, v in delta_timestamps.items()
            }
        self._image_keys = {k for k, f in self.meta.features.items() if f["dtype"] == "image"}
        self._columns = self._load_columns()
        self._check_videos_exist()
        lengths = np.array([self.meta.episodes[e]["length"] for e in self.episodes], dtype=np.int64)
        self._ep_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._ep_end = self._ep_start + lengths
        self._ep_of_row = np.repeat(np.arange(len(self.episodes)), lengths)
        self._decoder = VideoDecoder()

    # ---- loading -----------------------------------------------------------------------

    def _load_columns(self) -> dict[str, np.ndarray]:
        """Non-video columns of the selected episodes, rows in episode order."""
        keys = [k for k, f in self.meta.features.items() if f["dtype"] != "video"]
        by_file: dict[Path, list[int]] = {}
        for e in self.episodes:
            by_file.setdefault(self.meta.data_path(self.meta.episodes[e]), []).append(e)
        tables: dict[Path, pa.Table] = {}
        info_path = self.root / INFO_PATH
        for path in by_file:
            table = read_parquet(path)
            for k in keys:
                check_column(table, k, self.meta.features[k], path, info_path)
            tables[path] = table
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for e in self.episodes:
            ep = self.meta.episodes[e]
            path = self.meta.data_path(ep)
            table = tables[path]
            index = table["index"].to_numpy()
            lo, hi = ep["dataset_from_index"], ep["dataset_to_index"]
            start = int(np.searchsorted(index, lo))
            if (
                start + ep["length"] > len(index)
                or index[start] != lo
                or index[start + ep["length"] - 1] != hi - 1
            ):
                raise DatasetFileError(
                    path, f"rows of episode {e} (index {lo}..{hi - 1}) are missing or out of order"
                )
            rows = table.slice(start, ep["length"])
            for k in keys:
                if self.meta.features[k]["dtype"] == "image":  # PNG bytes, decoded on access
                    parts[k].append(_image_bytes(rows[k], path))
                elif self.meta.features[k]["dtype"] == "string":
                    parts[k].append(np.array(rows[k].to_pylist(), dtype=object))
                else:
                    parts[k].append(_column_to_numpy(rows[k], k, self.meta.features[k], path))
        columns = {k: np.concatenate(v) for k, v in parts.items()}
        lengths = np.array([self.meta.episodes[e]["length"] for e in self.episodes], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        check_timestamps(columns["timestamp"], starts, self.meta.fps, self.tolerance_s, info_path)
        return columns

    def _check_videos_exist(self) -> None:
        """Each video feature of info.json has the files the selected episodes point to."""
        for key in self.meta.video_keys:
            for path in {self.meta.video_path(self.meta.episodes[e], key) for e in self.episodes}:
                if not path.is_file():
                    raise DatasetFileError(path, f"missing (video of feature {key!r} in {INFO_PATH})")

    # ---- access ------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._ep_end[-1]) if len(self._ep_end) else 0

    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.meta.features

    def __getitem__(self, idx: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} out of range for a dataset of {n} frames")
        idx = int(idx) % n
        pos = int(self._ep_of_row[idx])
        ep_start, ep_end = int(self._ep_start[pos]), int(self._ep_end[pos])
        ep = self.meta.episodes[self.episodes[pos]]
        item: dict[str, Any] = {}
        rows: dict[str, np.ndarray] = {}
        if self.delta_indices is not None:
            for key, deltas in self.delta_indices.items():
                want = idx + deltas
                rows[key] = np.clip(want, ep_start, ep_end - 1)
                item[f"{key}_is_pad"] = torch.from_numpy((want < ep_start) | (want >= ep_end))
        for key, col in self._columns.items():
            if key in self._image_keys:
                tensor = to_chw_float(np.stack([_decode_png(col[r], key) for r in rows.get(key, [idx])]))
                item[key] = tensor if key in rows else tensor[0]
            elif col.dtype == object:  # strings
                item[key] = list(col[rows[key]]) if key in rows else col[idx]
            else:
                # A copy: callers may modify items in place without touching the dataset.
                item[key] = torch.from_numpy(np.array(col[rows[key]] if key in rows else col[idx]))
        timestamps = self._columns["timestamp"]
        for key in self.meta.video_keys:
            query = timestamps[rows[key]] if key in rows else timestamps[idx : idx + 1]
            shifted = [float(ep[f"videos/{key}/from_timestamp"]) + float(t) for t in query]
            frames = self._decoder.frames(self.meta.video_path(ep, key), shifted, self.tolerance_s)
            tensor = to_chw_float(frames)
            if key not in rows:
                tensor = tensor[0]
            item[key] = tensor
        if self.image_transforms is not None:
            for key in self.meta.camera_keys:
                item[key] = self.image_transforms(item[key])
        item["task"] = self.meta.tasks[int(self._columns["task_index"][idx])]
        return item

    def episode_range(self, episode: int) -> range:
        """Item indices of an episode (an index into ``self.episodes``' dataset numbering)."""
        pos = self.episodes.index(episode)
        return range(int(self._ep_start[pos]), int(self._ep_end[pos]))

    def column(self, key: str, episode: int | None = None) -> np.ndarray:
        """A non-video feature as a numpy array, for the whole selection or one episode."""
        values = self._columns[key]
        if episode is None:
            return values
        r = self.episode_range(episode)
        return values[r.start : r.stop]

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset({self.root}, episodes={self.num_episodes}, frames={len(self)}, fps={self.fps})"
        )


def to_chw_float(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> contiguous float32 (N, 3, H, W) in [0, 1].

    In numpy on purpose: torch's element-wise ops start its OpenMP pool, whose spinning threads
    cost more CPU than the conversion itself and fight DataLoader workers for cores.
    """
    out = np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32)
    np.divide(out, np.float32(255.0), out=out)
    return torch.from_numpy(out)


def _image_bytes(column: pa.ChunkedArray, path: Path) -> np.ndarray:
    """The encoded images of an ``image`` column (struct of bytes and path), as an object array."""
    array = column.combine_chunks()
    if not pa.types.is_struct(array.type) or array.type.get_field_index("bytes") < 0:
        raise DatasetFileError(path, f"image column has type {array.type}, expected struct<bytes, path>")
    return np.array(array.field("bytes").to_pylist(), dtype=object)


def _decode_png(data: bytes | None, key: str) -> np.ndarray:
    if data is None:
        raise ValueError(f"{key}: image stored by path only, not embedded in the parquet file")
    image = iio.imread(data)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return image[..., :3]


def _column_to_numpy(column: pa.ChunkedArray, key: str, feature: dict[str, Any], path: Path) -> np.ndarray:
    dtype = np.dtype(feature["dtype"])
    shape = [int(s) for s in feature["shape"]]
    try:
        array = column.combine_chunks()
        if pa.types.is_fixed_size_list(array.type) or pa.types.is_list(array.type):
            flat = array.flatten().to_numpy(zero_copy_only=False)
            return flat.astype(dtype, copy=False).reshape(len(array), *shape)
        values = array.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
        return values if shape == [1] else values.reshape(len(array), *shape)
    except (pa.ArrowException, ValueError) as e:
        raise DatasetFileError(path, f"column {key!r} does not fit {feature['dtype']} {shape}: {e}") from e
