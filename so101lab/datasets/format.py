"""The LeRobot dataset layout (v3.0, and v2.1 for reading): paths, features, info.json, safe file I/O.

Writer and reader both go through here, so the on-disk format is stated once. Every write is
atomic (temp file + fsync + rename): a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from so101lab import contract

CODEBASE_VERSION = "v3.0"
LEGACY_VERSION = "v2.1"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_FILE_SIZE_MB = 100
VIDEO_FILE_SIZE_MB = 200

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
# v2.1: one file per episode, metadata as JSON lines.
LEGACY_EPISODES_PATH = "meta/episodes.jsonl"
LEGACY_TASKS_PATH = "meta/tasks.jsonl"
LEGACY_EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"

# Columns every LeRobot dataset has, besides the robot's own features.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
VISUAL_DTYPES = ("video", "image")


class DatasetFileError(RuntimeError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)


class DatasetInputError(ValueError):
    """A bad argument to a writer or a launcher (size, codec, seeds, settings of an existing dataset)."""


def robot_features(
    cameras: tuple[contract.CameraSpec, ...] = (),
    use_videos: bool = True,
    env_state_dim: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Features of an SO-101 dataset from the contract: state, action, one entry per camera."""
    joint = {"dtype": "float32", "shape": [contract.NUM_JOINTS], "names": list(contract.MOTOR_FEATURE_NAMES)}
    features: dict[str, dict[str, Any]] = {
        contract.FEATURE_STATE: dict(joint),
        contract.FEATURE_ACTION: dict(joint),
    }
    if env_state_dim is not None:
        features[contract.FEATURE_ENV_STATE] = {"dtype": "float32", "shape": [env_state_dim], "names": None}
    for cam in cameras:
        features[contract.image_feature(cam.name)] = {
            "dtype": "video" if use_videos else "image",
            "shape": [cam.height, cam.width, 3],
            "names": ["height", "width", "channels"],
        }
    return features


def video_info(
    height: int,
    width: int,
    codec: str,
    fps: int,
    pix_fmt: str = "yuv420p",
    encoder: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``info`` block LeRobot keeps for each video feature: 0.4's fields, plus (given the encoder
    settings: g, crf, preset) the ones 0.6 writes, which it parses back into its encoder config when it
    appends to or edits a dataset (``video_backend`` must then be "pyav", the only one it accepts; the
    codec and settings are the same as our ffmpeg's)."""
    info: dict[str, Any] = {
        "video.height": height,
        "video.width": width,
        "video.codec": codec,
        "video.pix_fmt": pix_fmt,
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": 3,
        "has_audio": False,
    }
    if encoder is not None:
        info.update({f"video.{k}": v for k, v in encoder.items()})
        info.update({"video.fast_decode": 0, "video.video_backend": "pyav", "video.extra_options": {},
                     "is_depth_map": False})  # fmt: skip
    return info


def new_info(features: dict[str, dict[str, Any]], fps: int, robot_type: str | None) -> dict[str, Any]:
    """info.json of an empty v3.0 dataset with these robot features (default columns appended)."""
    all_features = {k: _normalise_feature(v) for k, v in features.items()}
    for key, value in DEFAULT_FEATURES.items():
        all_features.setdefault(key, dict(value))
    has_video = any(f["dtype"] == "video" for f in all_features.values())
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_SIZE_MB,
        "video_files_size_in_mb": VIDEO_FILE_SIZE_MB,
        "fps": fps,
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None,
        "features": all_features,
    }


def _normalise_feature(feature: dict[str, Any]) -> dict[str, Any]:
    out = dict(feature)
    out["shape"] = [int(s) for s in feature["shape"]]
    out.setdefault("names", None)
    return out


def comparable_features(features: dict[str, dict[str, Any]]) -> dict[str, tuple]:
    """What must match when appending to a dataset: key -> (dtype, shape, names); video info ignored."""
    return {
        key: (f["dtype"], tuple(int(s) for s in f["shape"]), tuple(f["names"]) if f.get("names") else None)
        for key, f in features.items()
    }


def next_chunk_file(chunk_index: int, file_index: int, chunks_size: int = CHUNKS_SIZE) -> tuple[int, int]:
    """Indices of the file after (chunk_index, file_index): a new chunk folder every chunks_size files."""
    file_index += 1
    if file_index >= chunks_size:
        return chunk_index + 1, 0
    return chunk_index, file_index


# ---- atomic file I/O -------------------------------------------------------------------------


def _tmp_path(path: Path) -> Path:
    # The ".tmp" suffix keeps half-written files out of LeRobot's "*/*.parquet" globs.
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp: Path, path: Path) -> None:
    """Make ``tmp`` durable and atomically rename it to ``path``."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_json_atomic(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    tmp.write_text(json.dumps(data, indent=4, ensure_ascii=False))
    commit_file(tmp, path)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    pq.write_table(table, tmp, compression="snappy")
    commit_file(tmp, path)


def temp_path_for(path: Path) -> Path:
    """A sibling temp path for writers that produce the file themselves (ffmpeg, PyAV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return _tmp_path(path)


# ---- reading with errors that name the file ----------------------------------------------------


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetFileError(path, "missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetFileError(path, f"not valid JSON ({e})") from e


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetFileError(path, "missing")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetFileError(path, f"not valid JSON lines ({e})") from e


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise DatasetFileError(path, "missing")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise DatasetFileError(path, f"not a readable parquet file ({e})") from e
