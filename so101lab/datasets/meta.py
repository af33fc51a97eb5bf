"""Dataset metadata (info, tasks, episodes, stats) of a v3.0 or v2.1 dataset, in one v3.0-shaped view.

Episodes are rows with v3.0 column names (``dataset_from_index``, ``videos/<key>/from_timestamp``,
...); a v2.1 dataset's per-episode files are mapped onto them, so the reader has one code path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from so101lab.datasets import stats as stats_lib
from so101lab.datasets.checks import check_info
from so101lab.datasets.format import (
    CODEBASE_VERSION,
    INFO_PATH,
    LEGACY_EPISODES_PATH,
    LEGACY_EPISODES_STATS_PATH,
    LEGACY_TASKS_PATH,
    LEGACY_VERSION,
    STATS_PATH,
    TASKS_PATH,
    DatasetFileError,
    read_json,
    read_jsonl,
    read_parquet,
)

PANDAS_INDEX_COLUMN = "__index_level_0__"


class DatasetMeta:
    """Everything under ``meta/``: ``info``, ``tasks`` (list, position = task_index), ``episodes``
    (list of dicts, position = episode_index), ``episode_stats`` and dataset ``stats``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root {self.root} does not exist")
        self.info: dict[str, Any] = read_json(self.root / INFO_PATH)
        check_info(self.info, self.root / INFO_PATH)
        self.version: str = self.info["codebase_version"]
        if self.version == CODEBASE_VERSION:
            self.tasks = _load_tasks(self.root / TASKS_PATH)
            self.episodes, self.episode_stats = _load_episodes(self.root)
            _check_episode_columns(self.episodes, self.video_keys, self.root / "meta" / "episodes")
        elif self.version == LEGACY_VERSION:
            self.tasks, self.episodes, self.episode_stats = _load_legacy(self.root, self.info)
        else:
            raise DatasetFileError(
                self.root / INFO_PATH,
                f"codebase_version {self.version!r} is not supported "
                f"(only {CODEBASE_VERSION} or {LEGACY_VERSION})",
            )
        stats_path = self.root / STATS_PATH
        if stats_path.exists():
            self.stats = stats_lib.from_jsonable(read_json(stats_path))
        else:
            self.stats = stats_lib.aggregate(self.episode_stats)

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] in ("video", "image")]

    @property
    def total_episodes(self) -> int:
        return len(self.episodes)

    @property
    def total_frames(self) -> int:
        return sum(int(ep["length"]) for ep in self.episodes)

    def data_path(self, ep: dict[str, Any]) -> Path:
        if self.version == LEGACY_VERSION:
            rel = self.info["data_path"].format(
                episode_chunk=ep["data/chunk_index"], episode_index=ep["episode_index"]
            )
        else:
            rel = self.info["data_path"].format(
                chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"]
            )
        return self.root / rel

    def video_path(self, ep: dict[str, Any], key: str) -> Path:
        chunk = ep[f"videos/{key}/chunk_index"]
        if self.version == LEGACY_VERSION:
            rel = self.info["video_path"].format(
                episode_chunk=chunk, video_key=key, episode_index=ep["episode_index"]
            )
        else:
            rel = self.info["video_path"].format(
                video_key=key, chunk_index=chunk, file_index=ep[f"videos/{key}/file_index"]
            )
        return self.root / rel

    def __repr__(self) -> str:
        return (
            f"DatasetMeta(root={self.root}, version={self.version}, episodes={self.total_episodes}, "
            f"frames={self.total_frames}, fps={self.fps}, tasks={len(self.tasks)})"
        )


def _load_tasks(path: Path) -> list[str]:
    table = read_parquet(path)
    names = table.column_names
    text_col = PANDAS_INDEX_COLUMN if PANDAS_INDEX_COLUMN in names else "task" if "task" in names else None
    if text_col is None or "task_index" not in names:
        raise DatasetFileError(path, f"expected columns task_index and task, found {names}")
    pairs = sorted(zip(table["task_index"].to_pylist(), table[text_col].to_pylist(), strict=True))
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise DatasetFileError(path, "task_index values are not 0..N-1")
    return [t for _, t in pairs]


def _load_episodes(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, stats_lib.Stats]]]:
    paths = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not paths:
        raise DatasetFileError(
            root / "meta" / "episodes", "no episodes parquet file (dataset has no episodes)"
        )
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows += read_parquet(path).to_pylist()
    rows.sort(key=lambda r: r["episode_index"])
    if [r["episode_index"] for r in rows] != list(range(len(rows))):
        raise DatasetFileError(root / "meta" / "episodes", "episode_index values are not 0..N-1")
    episodes, episode_stats = [], []
    for row in rows:
        episodes.append({k: v for k, v in row.items() if not k.startswith("stats/")})
        episode_stats.append(_unflatten_stats({k: v for k, v in row.items() if k.startswith("stats/")}))
    return episodes, episode_stats


def _check_episode_columns(episodes: list[dict[str, Any]], video_keys: list[str], path: Path) -> None:
    """Every episode row locates its data and, for each video feature of info.json, its video."""
    need = ["length", "dataset_from_index", "dataset_to_index", "data/chunk_index", "data/file_index"]
    for key in video_keys:
        need += [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp")]
    for ep in episodes:
        missing = [c for c in need if ep.get(c) is None]
        if missing:
            raise DatasetFileError(path, f"episode {ep['episode_index']} has no {missing[0]!r} column value")


def _unflatten_stats(flat: dict[str, Any]) -> dict[str, stats_lib.Stats]:
    out: dict[str, stats_lib.Stats] = {}
    for key, value in flat.items():
        if value is None:
            continue
        feature, stat = key[len("stats/") :].rsplit("/", 1)
        out.setdefault(feature, {})[stat] = np.asarray(value)
    return out


def _load_legacy(root: Path, info: dict[str, Any]) -> tuple[list[str], list[dict], list[dict]]:
    task_rows = read_jsonl(root / LEGACY_TASKS_PATH)
    tasks = [r["task"] for r in sorted(task_rows, key=lambda r: r["task_index"])]
    raw = sorted(read_jsonl(root / LEGACY_EPISODES_PATH), key=lambda r: r["episode_index"])
    stats_path = root / LEGACY_EPISODES_STATS_PATH
    stats_rows = (
        {r["episode_index"]: r["stats"] for r in read_jsonl(stats_path)} if stats_path.exists() else {}
    )
    chunks_size = int(info.get("chunks_size", 1000))
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    episodes, episode_stats, start = [], [], 0
    for r in raw:
        idx, length = int(r["episode_index"]), int(r["length"])
        ep: dict[str, Any] = {
            "episode_index": idx,
            "tasks": list(r.get("tasks", [])),
            "length": length,
            "data/chunk_index": idx // chunks_size,
            "data/file_index": idx,
            "dataset_from_index": start,
            "dataset_to_index": start + length,
        }
        for key in video_keys:
            ep[f"videos/{key}/chunk_index"] = idx // chunks_size
            ep[f"videos/{key}/file_index"] = idx
            ep[f"videos/{key}/from_timestamp"] = 0.0
            ep[f"videos/{key}/to_timestamp"] = length / float(info["fps"])
        episodes.append(ep)
        episode_stats.append(stats_lib.from_jsonable(stats_rows.get(idx, {})))
        start += length
    return tasks, episodes, episode_stats


def tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as LeRobot (pandas) writes it: the task text is the index."""
    table = pa.table(
        {
            "task_index": pa.array(range(len(tasks)), pa.int64()),
            PANDAS_INDEX_COLUMN: pa.array(tasks, pa.large_string()),
        }
    )
    pandas_meta = (
        '{"index_columns": ["__index_level_0__"], "column_indexes": [{"name": null, "field_name": null, '
        '"pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}], '
        '"columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", '
        '"numpy_type": "int64", "metadata": null}, {"name": null, "field_name": "__index_level_0__", '
        '"pandas_type": "unicode", "numpy_type": "object", "metadata": null}], "attributes": {}, '
        '"creator": {"library": "pyarrow", "version": "' + pa.__version__ + '"}, "pandas_version": "2.2.0"}'
    )
    return table.replace_schema_metadata({"pandas": pandas_meta})
