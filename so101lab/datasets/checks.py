"""Checks that turn bad inputs and hand-edited metadata into one-line errors, before they hurt.

Writing side: image sizes, codecs and the memory a recording will need are checked before a
dataset directory is created. Reading side: ``meta/info.json`` is checked on its own (fps,
feature dtypes and shapes) and against the files (columns, their types and shapes, the
timestamps' spacing); every message names the file and the field.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from so101lab.datasets.format import DEFAULT_FEATURES, VISUAL_DTYPES, DatasetFileError, DatasetInputError
from so101lab.datasets.lock import DatasetLockedError
from so101lab.datasets.video import VCODECS

# What a launcher reports as one line, without a traceback: each is about the user's arguments or
# files (and names them), not a bug.
USER_ERRORS = (DatasetInputError, DatasetFileError, DatasetLockedError, FileExistsError)

# ---- inputs of a recording ----------------------------------------------------------------------

# The largest camera side accepted: 4K frames, within MuJoCo's offscreen buffer and every codec.
MAX_IMAGE_SIDE = 4096
# Peak memory of a recording process, measured with `so101lab collect` (one worker, 2 cameras,
# libsvtav1, psutil-sampled RSS of the worker and its ffmpeg children): ~500 MB at any size, plus
# 160-190 bytes per camera pixel (h264: ~90). Rounded up so the estimate errs on the safe side.
PROCESS_BASE_BYTES = 600 * 2**20
BYTES_PER_CAMERA_PIXEL = 200
MEMORY_FRACTION = 0.8  # of the memory available when the run starts


def check_image_size(height: int, width: int) -> None:
    """A camera size the encoder takes (yuv420p: even) and the machine can hold (each side <= 4096)."""
    for name, side in (("height", height), ("width", width)):
        if not isinstance(side, (int, np.integer)) or isinstance(side, bool) or not 2 <= side <= MAX_IMAGE_SIDE:
            raise DatasetInputError(
                f"image {name} {side!r} is out of range: each side must be 2..{MAX_IMAGE_SIDE} pixels"
            )
        if side % 2:
            raise DatasetInputError(f"image {name} {side} is odd: yuv420p video needs even sizes")


def check_vcodec(vcodec: str) -> None:
    if vcodec not in VCODECS:
        raise DatasetInputError(f"unknown video codec {vcodec!r}; choose one of {', '.join(VCODECS)}")


def available_memory() -> int:
    """Bytes of memory available to new processes (MemAvailable on Linux, physical memory elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(height: int, width: int, cameras: int, processes: int = 1) -> None:
    """Refuse a recording whose estimated peak memory exceeds what the machine has free."""
    need = processes * (PROCESS_BASE_BYTES + cameras * height * width * BYTES_PER_CAMERA_PIXEL)
    have = available_memory()
    if need > MEMORY_FRACTION * have:
        raise DatasetInputError(
            f"{processes} recording process(es) with {cameras} camera(s) of {height}x{width} need about "
            f"{need / 2**30:.1f} GiB, more than {MEMORY_FRACTION:.0%} of the {have / 2**30:.1f} GiB available; "
            "use smaller images or fewer workers"
        )


def check_recording(height: int, width: int, cameras: int, processes: int, vcodec: str) -> None:
    """All checks a launcher runs before it creates a dataset."""
    check_image_size(height, width)
    check_vcodec(vcodec)
    check_memory(height, width, cameras, processes)


def check_features(features: dict[str, dict[str, Any]]) -> None:
    """Features a writer can record: known dtypes, positive shapes, camera sizes as above."""
    for key, feature in features.items():
        where = f"feature {key!r}"
        _check_feature(feature, lambda problem, where=where: DatasetInputError(f"{where}: {problem}"))
        if feature["dtype"] in VISUAL_DTYPES:
            check_image_size(*feature["shape"][:2])


# ---- meta/info.json, on its own and against the files ---------------------------------------------


def _check_feature(feature: Any, error) -> None:
    """Shape and dtype of one feature entry; ``error(problem)`` builds the exception to raise."""
    if not isinstance(feature, dict):
        raise error(f"must be an object, got {feature!r}")
    dtype, shape = feature.get("dtype"), feature.get("shape")
    if dtype == "language":
        raise error("dtype 'language' (LeRobot 0.6's lerobot-annotate annotations) is not supported by "
                    "so101lab's reader; drop the feature with LeRobot's dataset tools to read the rest")
    video = feature.get("info") or {}
    if dtype in VISUAL_DTYPES and (video.get("is_depth_map") or video.get("video.is_depth_map")):
        raise error("is a depth map video (is_depth_map, LeRobot 0.6's depth cameras); so101lab reads "
                    "RGB cameras only")
    if dtype not in (*VISUAL_DTYPES, "string") and not _is_numpy_dtype(dtype):
        raise error(f"dtype {dtype!r} is not a numeric dtype, 'string', 'video' or 'image'")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise error(f"shape {shape!r} is not a list of positive integers")
    if dtype in VISUAL_DTYPES and (len(shape) != 3 or shape[2] != 3):
        raise error(f"shape {shape} of a camera must be [height, width, 3]")


def _is_numpy_dtype(dtype: Any) -> bool:
    if not isinstance(dtype, str):
        return False
    try:
        return np.dtype(dtype).kind in "biuf"
    except TypeError:
        return False


def check_info(info: Any, path: Path) -> None:
    """The values of info.json the reader relies on; errors name ``path`` and the field."""

    def error(field: str, problem: str) -> DatasetFileError:
        return DatasetFileError(path, f"{field}: {problem}")

    if not isinstance(info, dict):
        raise DatasetFileError(path, f"must hold a JSON object, not {type(info).__name__}")
    for key in ("codebase_version", "fps", "features"):
        if key not in info:
            raise error(key, "missing")
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise error("fps", f"{fps!r} is not a positive number of frames per second")
    if fps != int(fps):
        raise error("fps", f"{fps!r} is not a whole number of frames per second")
    features = info["features"]
    if not isinstance(features, dict) or not features:
        raise error("features", "must be a non-empty object")
    for key, feature in features.items():
        _check_feature(feature, lambda problem, key=key: error(f"features.{key}", problem))
    missing = [k for k in DEFAULT_FEATURES if k not in features]
    if missing:
        raise error("features", f"has no {missing} (columns every LeRobot dataset has)")
    for key, feature in features.items():
        if feature["dtype"] != "video":
            continue
        video = feature.get("info") or {}
        if "video.fps" in video and video["video.fps"] != fps:
            raise error("fps", f"{fps!r} differs from features.{key}.info.video.fps ({video['video.fps']!r})")
        for i, side in enumerate(("video.height", "video.width")):
            if side in video and video[side] != feature["shape"][i]:
                raise error(f"features.{key}.shape", f"{feature['shape']} differs from info.{side} ({video[side]!r})")


def check_column(table: pa.Table, key: str, feature: dict[str, Any], data_path: Path, info_path: Path) -> None:
    """Column ``key`` of a data file holds what ``features.<key>`` of info.json says (dtype, shape)."""
    field = f"features.{key}"
    if key not in table.column_names:
        raise DatasetFileError(info_path, f"{field}: no such column in {data_path}")
    dtype, shape = feature["dtype"], feature["shape"]
    if dtype == "image" or (dtype == "string" and shape == [1]):
        return  # decoded (and checked) on access
    typ = table.schema.field(key).type
    nested = pa.types.is_fixed_size_list(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ)
    value_type = typ.value_type if nested else typ
    want_type = pa.string() if dtype == "string" else pa.from_numpy_dtype(np.dtype(dtype))
    if value_type != want_type and not (dtype == "string" and value_type == pa.large_string()):
        raise DatasetFileError(info_path, f"{field}.dtype: {dtype!r}, but {data_path} holds {value_type}")
    size = int(np.prod(shape))
    if not nested:
        if shape != [1]:
            raise DatasetFileError(info_path, f"{field}.shape: {shape}, but {data_path} holds one value per frame")
        return
    if pa.types.is_fixed_size_list(typ):
        lengths = {typ.list_size}
    else:
        lengths = set(pc.unique(pc.list_value_length(table[key])).to_pylist()) if table.num_rows else {size}
    if lengths != {size}:
        raise DatasetFileError(
            info_path, f"{field}.shape: {shape} ({size} values), but {data_path} holds {sorted(lengths)} per frame"
        )


def check_timestamps(
    timestamps: np.ndarray, starts: np.ndarray, fps: int, tolerance_s: float, info_path: Path
) -> None:
    """Frames are 1/fps apart within each episode (``starts``: first row of each episode)."""
    if len(timestamps) < 2:
        return
    gaps = np.diff(timestamps.astype(np.float64))
    within = np.ones(len(gaps), dtype=bool)
    within[starts[(starts > 0) & (starts < len(timestamps))] - 1] = False
    gaps = gaps[within]
    if len(gaps) and np.abs(gaps - 1.0 / fps).max() > tolerance_s:
        typical = float(np.median(gaps))
        raise DatasetFileError(
            info_path,
            f"fps: {fps}, but the data's timestamps are {typical:.4g} s apart ({1 / typical:.4g} frames/s)",
        )
