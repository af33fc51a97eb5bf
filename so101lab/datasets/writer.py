"""Writing LeRobot v3.0 datasets so that every finished episode is on disk at once.

`save_episode` commits in an order that keeps the dataset loadable at every instant: videos
(remux into temp + rename), data parquet (rewrite into temp + rename), tasks, the episodes
parquet (the commit point: an episode exists once it is listed there), stats.json, info.json.
A crash (even SIGKILL) loses only the episode in progress; reopening the dataset trims anything
written past the last listed episode and appends after it. Only one writer at a time: each holds
the dataset's lock (`so101lab.datasets.lock`) from before its repair step until it is closed.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from so101lab import contract
from so101lab.datasets import stats as stats_lib
from so101lab.datasets.checks import check_column, check_features, check_info, check_vcodec
from so101lab.datasets.format import (
    DATA_FILE_SIZE_MB,
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_FILE_SIZE_MB,
    VIDEO_PATH,
    VISUAL_DTYPES,
    DatasetInputError,
    comparable_features,
    new_info,
    next_chunk_file,
    read_json,
    read_parquet,
    video_info,
    write_json_atomic,
    write_parquet_atomic,
)
from so101lab.datasets.lock import LOCK_NAME, DatasetLock
from so101lab.datasets.meta import DatasetMeta, tasks_table
from so101lab.datasets.recorder import EpisodeData, EpisodeRecorder, VideoSettings
from so101lab.datasets.video import CODEC_NAMES, DEFAULT_PRESETS, append_video, truncate_video

MB = 1024 * 1024
_DATASET_DIRS = ("meta", "data", "videos")  # what a dataset is made of under its root
_RESERVED_COLUMNS = ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index")


class DatasetWriter:
    """Creates a dataset at ``root`` (``features`` required) or appends to the one there.

    Record with ``add_frame(frame, task)`` ... ``save_episode()`` (or ``discard_episode()``), or
    record elsewhere with `new_recorder()` and commit the result with `save_episode(data)`. The
    writer holds the dataset's lock from construction to `close()`: a second writer is refused at
    once (`DatasetLockedError` naming the holder's pid).
    """

    def __init__(
        self,
        root: str | Path,
        features: dict[str, dict[str, Any]] | None = None,
        fps: int = contract.CONTROL_HZ,
        robot_type: str | None = contract.ROBOT_TYPE,
        video: VideoSettings | None = None,
        data_files_size_in_mb: float = DATA_FILE_SIZE_MB,
        video_files_size_in_mb: float = VIDEO_FILE_SIZE_MB,
    ) -> None:
        self.root = Path(root)
        self.video = video or VideoSettings()
        # Bad arguments fail here, before the directory (or its lock) exists.
        check_vcodec(self.video.vcodec)
        if features is not None:
            check_features(features)
        if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps <= 0:
            raise DatasetInputError(f"fps must be a positive integer, got {fps!r}")
        if not (self.root / INFO_PATH).exists():
            if features is None:
                raise DatasetInputError(f"{self.root} holds no dataset; pass features to create one")
            if self.root.exists() and any(p.name != LOCK_NAME for p in self.root.iterdir()):
                raise FileExistsError(f"{self.root} is not empty and holds no dataset (no {INFO_PATH})")
        root_existed = self.root.exists()
        self._recorder: EpisodeRecorder | None = None
        self._lock: DatasetLock | None = DatasetLock(self.root)
        self._created = False  # whether this writer wrote the dataset's info.json
        try:
            has_episodes = any((self.root / "meta" / "episodes").glob("*/*.parquet"))
            if has_episodes or features is None:
                self._open_existing(features, fps)
            else:
                self._create(features, fps, robot_type, remove_root=not root_existed)
                self.info["data_files_size_in_mb"] = data_files_size_in_mb
                self.info["video_files_size_in_mb"] = video_files_size_in_mb
                write_json_atomic(self.info, self.root / INFO_PATH)
        except BaseException:
            self.close()
            raise
        self._tasks_written = len(self.tasks)

    # ---- creation / resume ---------------------------------------------------------------

    def _create(
        self, features: dict[str, dict[str, Any]], fps: int, robot_type: str | None, remove_root: bool
    ) -> None:
        """A new, empty dataset; one that holds no episode yet (a run that failed early) is replaced."""
        self._remove_dataset_files()
        self._created, self._remove_root = True, remove_root
        self.info = new_info(features, fps, robot_type)
        codec = CODEC_NAMES[self.video.vcodec]
        preset = self.video.preset if self.video.preset is not None else DEFAULT_PRESETS[self.video.vcodec]
        encoder = {"g": self.video.gop, "crf": self.video.crf, "preset": preset}
        for feature in self.info["features"].values():
            if feature["dtype"] == "video":
                h, w, _ = feature["shape"]
                feature["info"] = video_info(h, w, codec, fps, encoder=encoder)
        self.tasks: list[str] = []
        self.episodes: list[dict[str, Any]] = []
        self.episode_stats: list[dict[str, stats_lib.Stats]] = []
        self._data_file = (0, 0)
        self._video_files = {k: (0, 0) for k in self.video_keys}
        self._meta_file = (0, 0)

    def _remove_dataset_files(self) -> None:
        for name in _DATASET_DIRS:
            shutil.rmtree(self.root / name, ignore_errors=True)

    def _open_existing(self, features: dict[str, dict[str, Any]] | None, fps: int) -> None:
        committed = any((self.root / "meta" / "episodes").glob("*/*.parquet"))
        meta = DatasetMeta(self.root) if committed else None
        if meta is None:  # created, but no episode was ever saved
            self.info = read_json(self.root / INFO_PATH)
            check_info(self.info, self.root / INFO_PATH)
            self.tasks, self.episodes, self.episode_stats = [], [], []
        else:
            if meta.version != "v3.0":
                raise DatasetInputError(
                    f"{self.root}: can only append to v3.0 datasets, this one is {meta.version}"
                )
            self.info, self.tasks, self.episodes, self.episode_stats = (
                meta.info,
                meta.tasks,
                meta.episodes,
                meta.episode_stats,
            )
        if features is not None:
            have = comparable_features(
                {k: f for k, f in self.info["features"].items() if k not in DEFAULT_FEATURES}
            )
            want = comparable_features({k: f for k, f in features.items() if k not in DEFAULT_FEATURES})
            if have != want:
                diff = sorted(k for k in have.keys() | want.keys() if have.get(k) != want.get(k))
                raise DatasetInputError(
                    f"features do not match the existing dataset at {self.root} (differs in {diff}): "
                    f"existing {[(k, have.get(k)) for k in diff]} "
                    f"vs requested {[(k, want.get(k)) for k in diff]}"
                )
        if int(self.info["fps"]) != fps:
            raise DatasetInputError(
                f"fps {fps} does not match the existing dataset at {self.root} ({self.info['fps']})"
            )
        for key in self.video_keys:
            codec = self.info["features"][key].get("info", {}).get("video.codec")
            if codec and codec != CODEC_NAMES.get(self.video.vcodec, self.video.vcodec):
                raise DatasetInputError(
                    f"{key} of {self.root} is {codec}; cannot append with {self.video.vcodec}"
                )
        last = self.episodes[-1] if self.episodes else None
        self._data_file = (last["data/chunk_index"], last["data/file_index"]) if last else (0, 0)
        self._meta_file = (
            (last["meta/episodes/chunk_index"], last["meta/episodes/file_index"]) if last else (0, 0)
        )
        self._video_files = {
            k: (last[f"videos/{k}/chunk_index"], last[f"videos/{k}/file_index"]) if last else (0, 0)
            for k in self.video_keys
        }
        self._repair()

    def _repair(self) -> None:
        """Remove whatever a crash left past the last committed episode, and temp files."""
        for tmp in self.root.rglob(".*.tmp"):
            tmp.unlink()
        committed = {self._data_path(*self._data_file)} if self.episodes else set()
        committed |= {self._episodes_path(*self._meta_file)} if self.episodes else set()
        for key, (c, f) in self._video_files.items():
            if self.episodes:
                committed.add(self._video_path(key, c, f))
        for pattern in ("data/*/*.parquet", "meta/episodes/*/*.parquet", "videos/*/*/*.mp4"):
            for path in self.root.glob(pattern):
                if path not in committed and not self._is_earlier_file(path):
                    path.unlink()
        if not self.episodes:
            return
        data_path = self._data_path(*self._data_file)
        table = read_parquet(data_path)
        for key, feature in self.features.items():  # new rows must fit the file they go to
            if feature["dtype"] not in VISUAL_DTYPES:
                check_column(table, key, feature, data_path, self.root / INFO_PATH)
        end = self.episodes[-1]["dataset_to_index"]
        keep = np.asarray(table["index"]) < end
        if not keep.all():
            write_parquet_atomic(table.filter(pa.array(keep)), data_path)
        last = self.episodes[-1]
        for key in self.video_keys:
            truncate_video(self._video_path(key, *self._video_files[key]), last[f"videos/{key}/to_timestamp"])
        meta_rows = [
            ep
            for ep in self.episodes
            if (ep["meta/episodes/chunk_index"], ep["meta/episodes/file_index"]) == self._meta_file
        ]
        if read_parquet(self._episodes_path(*self._meta_file)).num_rows != len(meta_rows):
            self._write_episodes_file()
        self._write_meta()

    def _is_earlier_file(self, path: Path) -> bool:
        """Whether ``path`` is a file before the current one of its kind (so it is complete)."""
        chunk, file = int(path.parent.name.split("-")[1]), int(path.stem.split("-")[1])
        rel = path.relative_to(self.root).parts
        if rel[0] == "data":
            current = self._data_file
        elif rel[0] == "meta":
            current = self._meta_file
        else:
            current = self._video_files.get(rel[1], (-1, -1))
        return bool(self.episodes) and (chunk, file) < current

    # ---- recording -----------------------------------------------------------------------

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return int(self.episodes[-1]["dataset_to_index"]) if self.episodes else 0

    def new_recorder(self) -> EpisodeRecorder:
        """A recorder for one episode of this dataset (may be sent to, or rebuilt in, another process)."""
        return EpisodeRecorder(self.root, self.features, self.fps, self.video)

    def add_frame(self, frame: dict[str, Any], task: str, timestamp: float | None = None) -> None:
        self._check_open()
        if self._recorder is None:
            self._recorder = self.new_recorder()
        self._recorder.add_frame(frame, task, timestamp)

    def discard_episode(self) -> None:
        if self._recorder is not None:
            self._recorder.discard()
            self._recorder = None

    def save_episode(self, data: EpisodeData | None = None, extra: dict[str, Any] | None = None) -> int:
        """Commit an episode (the one being recorded, or a finished one); returns its episode_index.

        ``extra`` adds scalar columns to the episode's row in meta/episodes (e.g. seed, success);
        LeRobot's reader carries them along untouched.
        """
        self._check_open()
        if data is None:
            if self._recorder is None:
                raise ValueError("no frames were added since the last save_episode")
            recorder, self._recorder = self._recorder, None
            data = recorder.finish()
        reserved = [k for k in extra or {} if k in _RESERVED_COLUMNS or "/" in k]
        if reserved:
            raise ValueError(f"extra episode columns {reserved} clash with LeRobot's episode columns")
        return self._commit(data, extra or {})

    def close(self) -> None:
        """Drop an unsaved episode (every saved one is already durable) and release the dataset.

        A dataset this writer created and never saved an episode to is removed: a run that failed
        before its first episode leaves nothing behind, and no settings that bind the next run.
        """
        self.discard_episode()
        if self._lock is None:
            return
        if self._created and not getattr(self, "episodes", None):
            self._remove_dataset_files()
            (self.root / LOCK_NAME).unlink(missing_ok=True)
            if self._remove_root:
                with contextlib.suppress(OSError):  # not empty: someone else put files there
                    self.root.rmdir()
        self._lock.release()
        self._lock = None

    @property
    def closed(self) -> bool:
        return self._lock is None

    def _check_open(self) -> None:
        if self._lock is None:
            raise ValueError(f"the writer of {self.root} is closed")

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- commit ----------------------------------------------------------------------------

    def _commit(self, data: EpisodeData, extra: dict[str, Any]) -> int:
        ep_index, start, n = len(self.episodes), self.num_frames, data.length
        task_indices = np.array([self._task_index(t) for t in data.tasks], dtype=np.int64)
        columns: dict[str, np.ndarray] = dict(data.values)
        columns["timestamp"] = data.timestamps
        columns["frame_index"] = np.arange(n, dtype=np.int64)
        columns["episode_index"] = np.full(n, ep_index, dtype=np.int64)
        columns["index"] = np.arange(start, start + n, dtype=np.int64)
        columns["task_index"] = task_indices
        ep_stats = {k: stats_lib.array_stats(v) for k, v in columns.items()}
        for key, thumbs in data.thumbnails.items():
            ep_stats[key] = stats_lib.image_stats(thumbs)

        row: dict[str, Any] = {
            "episode_index": ep_index,
            "tasks": list(dict.fromkeys(data.tasks)),
            "length": n,
            **extra,
        }
        for key in self.video_keys:  # 1. videos
            path = data.videos[key]
            c, f = self._video_files[key]
            current = self._video_path(key, c, f)
            limit = self.info["video_files_size_in_mb"] * MB
            if current.exists() and current.stat().st_size + path.stat().st_size > limit:
                c, f = self._video_files[key] = next_chunk_file(c, f, self.info["chunks_size"])
                current = self._video_path(key, c, f)
            from_ts = append_video(current, path)
            row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"] = c, f
            row[f"videos/{key}/from_timestamp"] = from_ts
            row[f"videos/{key}/to_timestamp"] = from_ts + n / self.fps

        table = self._data_table(columns)  # 2. data
        c, f = self._data_file
        path = self._data_path(c, f)
        if path.exists() and path.stat().st_size >= self.info["data_files_size_in_mb"] * MB:
            c, f = self._data_file = next_chunk_file(c, f, self.info["chunks_size"])
            path = self._data_path(c, f)
        if path.exists():
            table = pa.concat_tables([read_parquet(path), table])
        write_parquet_atomic(table, path)
        row["data/chunk_index"], row["data/file_index"] = c, f
        row["dataset_from_index"], row["dataset_to_index"] = start, start + n

        if len(self.tasks) > self._tasks_written:  # 3. tasks
            write_parquet_atomic(tasks_table(self.tasks), self.root / TASKS_PATH)
            self._tasks_written = len(self.tasks)

        current = self._episodes_path(*self._meta_file)  # 4. episodes: the commit point
        if current.exists() and current.stat().st_size >= self.info["data_files_size_in_mb"] * MB:
            self._meta_file = next_chunk_file(*self._meta_file, self.info["chunks_size"])
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = self._meta_file
        self.episodes.append(row)
        self.episode_stats.append(ep_stats)
        self._write_episodes_file()
        self._write_meta()  # 5. stats and info
        return ep_index

    def _task_index(self, task: str) -> int:
        if task not in self.tasks:
            self.tasks.append(task)
        return self.tasks.index(task)

    def _data_table(self, columns: dict[str, np.ndarray]) -> pa.Table:
        arrays, fields = [], []
        for key, feature in self.features.items():
            if feature["dtype"] in ("video", "image"):
                continue
            values = columns[key]
            dtype = pa.from_numpy_dtype(np.dtype(feature["dtype"]))
            shape = feature["shape"]
            if key in DEFAULT_FEATURES or shape == [1]:
                arr = pa.array(values.reshape(-1), type=dtype)
            else:
                flat = pa.array(values.reshape(-1), type=dtype)
                arr = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(shape)))
            arrays.append(arr)
            fields.append(pa.field(key, arr.type))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def _write_episodes_file(self) -> None:
        rows = []
        for ep, st in zip(self.episodes, self.episode_stats, strict=True):
            if (ep["meta/episodes/chunk_index"], ep["meta/episodes/file_index"]) != self._meta_file:
                continue
            flat = dict(ep)
            for feature, values in st.items():
                for name, value in values.items():
                    flat[f"stats/{feature}/{name}"] = np.asarray(value).tolist()
            rows.append(flat)
        write_parquet_atomic(pa.Table.from_pylist(rows), self._episodes_path(*self._meta_file))

    def _write_meta(self) -> None:
        write_json_atomic(
            stats_lib.to_jsonable(stats_lib.aggregate(self.episode_stats)), self.root / STATS_PATH
        )
        self.info["total_episodes"] = len(self.episodes)
        self.info["total_frames"] = self.num_frames
        self.info["total_tasks"] = len(self.tasks)
        self.info["splits"] = {"train": f"0:{len(self.episodes)}"}
        write_json_atomic(self.info, self.root / INFO_PATH)

    def _data_path(self, chunk: int, file: int) -> Path:
        return self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)

    def _episodes_path(self, chunk: int, file: int) -> Path:
        return self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)

    def _video_path(self, key: str, chunk: int, file: int) -> Path:
        return self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
