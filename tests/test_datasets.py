"""Writer and reader of LeRobot v3.0 datasets: round trip, delta_timestamps, resume, errors."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from so101lab import contract
from so101lab.datasets import (
    DatasetFileError,
    DatasetInputError,
    DatasetWriter,
    LeRobotDataset,
    VideoSettings,
    robot_features,
)
from so101lab.datasets.synthetic import synthetic_frame, synthetic_image, write_synthetic
from so101lab.datasets.video import VideoEncoder

CAMS = (contract.CameraSpec("front", 48, 64), contract.CameraSpec("wrist", 32, 48))
EPISODES = [(12, "pick up the cube"), (7, "stack the cubes"), (9, "pick up the cube")]
H264 = VideoSettings(vcodec="h264")
FRAME_TOL = 8.0  # mean abs error (0..255) of a lossy-coded frame; tiny frames code worst


def expected_values(episodes, cameras=CAMS, seed=0, first_episode=0):
    """The frames `write_synthetic` writes, regenerated with the same seed."""
    rng = np.random.default_rng(seed)
    frames = []
    for ep, (length, task) in enumerate(episodes, start=first_episode):
        for i in range(length):
            frames.append((synthetic_frame(rng, cameras, ep, i), task, ep, i))
    return frames


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ds") / "pick"
    write_synthetic(root, EPISODES, CAMS)
    return root


def test_round_trip_values_frames_and_meta(written: Path) -> None:
    ds = LeRobotDataset(written)
    expected = expected_values(EPISODES)
    assert len(ds) == len(expected) == 28 and ds.num_episodes == 3
    assert ds.meta.tasks == ["pick up the cube", "stack the cubes"]
    for idx, (frame, task, ep, i) in enumerate(expected):
        item = ds[idx]
        assert item["task"] == task
        assert item["episode_index"].item() == ep and item["frame_index"].item() == i
        assert item["index"].item() == idx
        assert item["timestamp"].dtype == torch.float32 and item["timestamp"].item() == pytest.approx(i / 30)
        np.testing.assert_array_equal(item["observation.state"].numpy(), frame["observation.state"])
        np.testing.assert_array_equal(item["action"].numpy(), frame["action"])
        for cam in CAMS:
            key = contract.image_feature(cam.name)
            img = item[key]
            assert img.dtype == torch.float32 and img.shape == (3, cam.height, cam.width)
            assert img.min() >= 0.0 and img.max() <= 1.0
            diff = np.abs(img.permute(1, 2, 0).numpy() * 255 - frame[key].astype(np.float32))
            assert diff.mean() < FRAME_TOL, f"{key} frame {idx} differs by {diff.mean()}"
    info = json.loads((written / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 28, 2)
    assert info["splits"] == {"train": "0:3"}
    assert info["features"]["observation.state"]["names"] == contract.MOTOR_FEATURE_NAMES
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "av1"
    assert [e["length"] for e in ds.meta.episodes] == [12, 7, 9]
    assert ds.meta.episodes[1]["videos/observation.images.front/from_timestamp"] == pytest.approx(12 / 30)


def test_frames_come_from_the_right_time(written: Path) -> None:
    """Every decoded frame is closer to its own source image than to its neighbours'."""
    ds = LeRobotDataset(written)
    cam = CAMS[0]
    for idx in (0, 5, 11, 12, 18, 27):
        item = ds[idx]
        ep, i = item["episode_index"].item(), item["frame_index"].item()
        got = item["observation.images.front"].permute(1, 2, 0).numpy() * 255
        errs = {
            j: np.abs(got - synthetic_image(cam.height, cam.width, ep, j, 0)).mean()
            for j in range(i - 2, i + 3)
        }
        assert min(errs, key=errs.get) == i


def test_stats_per_episode_and_dataset(written: Path) -> None:
    ds = LeRobotDataset(written)
    expected = expected_values(EPISODES)
    actions = np.stack([f["action"] for f, *_ in expected])
    st = ds.meta.stats["action"]
    np.testing.assert_allclose(st["mean"], actions.mean(0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(st["std"], actions.std(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(st["min"], actions.min(0), rtol=1e-6)
    np.testing.assert_allclose(st["max"], actions.max(0), rtol=1e-6)
    assert st["count"].tolist() == [28]
    for q in ("q01", "q10", "q50", "q90", "q99"):
        assert st[q].shape == (6,)
    assert np.all(st["q01"] <= st["q50"]) and np.all(st["q50"] <= st["q99"])
    img = ds.meta.stats["observation.images.front"]
    assert img["mean"].shape == (3, 1, 1) and np.all((img["min"] >= 0) & (img["max"] <= 1))
    ep0 = ds.meta.episode_stats[0]["action"]
    np.testing.assert_allclose(ep0["q50"], np.median(actions[:12], axis=0), rtol=1e-5)
    assert set(ds.meta.stats) >= {"observation.state", "action", "timestamp", "index", "task_index"}


def test_delta_timestamps_clamp_and_pad(written: Path) -> None:
    delta = {
        "action": [i / 30 for i in range(5)],
        "observation.state": [-2 / 30, 0.0],
        "observation.images.front": [-1 / 30, 0.0],
    }
    ds = LeRobotDataset(written, delta_timestamps=delta)
    plain = LeRobotDataset(written)
    item = ds[10]  # episode 0 has rows 0..11: action rows 10, 11, 11, 11, 11
    assert item["action"].shape == (5, 6)
    assert item["action_is_pad"].tolist() == [False, False, True, True, True]
    torch.testing.assert_close(item["action"][2], plain[11]["action"])
    torch.testing.assert_close(item["action"][4], plain[11]["action"])
    item = ds[12]  # first frame of episode 1: the past is padded with the first frame
    assert item["observation.state_is_pad"].tolist() == [True, False]
    torch.testing.assert_close(item["observation.state"][0], plain[12]["observation.state"])
    assert item["observation.images.front"].shape == (2, 3, 48, 64)
    assert item["observation.images.front_is_pad"].tolist() == [True, False]
    torch.testing.assert_close(item["observation.images.front"][0], plain[12]["observation.images.front"])
    item = ds[14]
    torch.testing.assert_close(item["observation.images.front"][0], plain[13]["observation.images.front"])
    assert item["task"] == "stack the cubes"


def test_bad_delta_timestamps_are_refused(written: Path) -> None:
    with pytest.raises(ValueError, match="multiples of 1/30"):
        LeRobotDataset(written, delta_timestamps={"action": [0.0, 0.02]})
    with pytest.raises(ValueError, match="not features"):
        LeRobotDataset(written, delta_timestamps={"actions": [0.0]})


def test_episode_subset_and_dataloader_workers(written: Path) -> None:
    ds = LeRobotDataset(written, episodes=[2, 0], delta_timestamps={"action": [0.0, 1 / 30]})
    assert len(ds) == 21
    assert ds[0]["episode_index"].item() == 2 and ds[9]["episode_index"].item() == 0
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == 21
    first = batches[0]
    for j in range(4):
        direct = ds[j]
        torch.testing.assert_close(first["observation.images.front"][j], direct["observation.images.front"])
        torch.testing.assert_close(first["action"][j], direct["action"])
    assert first["task"][0] == "pick up the cube"
    with pytest.raises(ValueError, match=r"episodes \[7\]"):
        LeRobotDataset(written, episodes=[7])


def test_resume_appends_and_keeps_tasks(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_synthetic(root, EPISODES[:2], CAMS, video=H264)
    write_synthetic(root, [(5, "sort the cubes"), (4, "stack the cubes")], CAMS, video=H264, seed=1)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 4 and len(ds) == 28
    assert ds.meta.tasks == ["pick up the cube", "stack the cubes", "sort the cubes"]
    assert [ds[i]["index"].item() for i in range(len(ds))] == list(range(28))
    assert ds[19]["task"] == "sort the cubes" and ds[19]["frame_index"].item() == 0
    assert ds[27]["task_index"].item() == 1
    resumed = expected_values([(5, "sort the cubes")], seed=1, first_episode=2)
    np.testing.assert_array_equal(ds[19]["action"].numpy(), resumed[0][0]["action"])
    ep3 = ds.meta.episodes[3]
    assert ep3["videos/observation.images.wrist/from_timestamp"] == pytest.approx(24 / 30)
    info = json.loads((root / "meta/info.json").read_text())
    assert (
        info["total_episodes"] == 4
        and info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    )


def test_resume_with_other_features_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_synthetic(root, EPISODES[:1], CAMS, video=H264)
    other = robot_features((contract.CameraSpec("front", 48, 64),))
    with pytest.raises(ValueError, match=r"features do not match.*observation\.images\.wrist"):
        DatasetWriter(root, other, video=H264)
    bigger = robot_features((contract.CameraSpec("front", 96, 128), CAMS[1]))
    with pytest.raises(ValueError, match=r"observation\.images\.front"):
        DatasetWriter(root, bigger, video=H264)
    with pytest.raises(ValueError, match="fps 15"):
        DatasetWriter(root, robot_features(CAMS), fps=15, video=H264)
    with pytest.raises(ValueError, match="cannot append with libsvtav1"):
        DatasetWriter(root, robot_features(CAMS))


def test_files_roll_over_at_size_limit(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_synthetic(
        root, EPISODES, CAMS, video=H264, data_files_size_in_mb=0.001, video_files_size_in_mb=0.001
    )
    assert (root / "videos/observation.images.front/chunk-000/file-002.mp4").exists()
    assert (root / "data/chunk-000/file-002.parquet").exists()
    ds = LeRobotDataset(root)
    assert ds.meta.episodes[2]["videos/observation.images.front/from_timestamp"] == 0.0
    expected = expected_values(EPISODES)
    for idx in (0, 11, 12, 27):
        np.testing.assert_array_equal(ds[idx]["action"].numpy(), expected[idx][0]["action"])
        diff = np.abs(ds[idx]["observation.images.wrist"].permute(1, 2, 0).numpy() * 255
                      - expected[idx][0]["observation.images.wrist"])  # fmt: skip
        assert diff.mean() < FRAME_TOL


def test_discarded_episode_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    writer = write_synthetic(root, EPISODES[:1], CAMS, video=H264)
    rng = np.random.default_rng(5)
    for i in range(6):
        writer.add_frame(synthetic_frame(rng, CAMS, 1, i), "failed attempt")
    writer.discard_episode()
    assert not list(root.rglob("*.tmp"))
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 1 and ds.meta.tasks == ["pick up the cube"]


def test_bad_frames_are_refused(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path / "ds", robot_features(CAMS), video=H264)
    frame = synthetic_frame(np.random.default_rng(0), CAMS, 0, 0)
    with pytest.raises(ValueError, match=r"missing \['action'\]"):
        writer.add_frame({k: v for k, v in frame.items() if k != "action"}, "t")
    with pytest.raises(ValueError, match=r"action: expected shape \(6,\)"):
        writer.add_frame({**frame, "action": np.zeros(5)}, "t")
    with pytest.raises(ValueError, match=r"observation\.images\.front: expected uint8"):
        writer.add_frame(
            {**frame, "observation.images.front": frame["observation.images.front"] / 255.0}, "t"
        )
    with pytest.raises(ValueError, match="finite"):
        writer.add_frame({**frame, "action": np.full(6, np.nan)}, "t")
    with pytest.raises(ValueError, match="task"):
        writer.add_frame(frame, "")
    with pytest.raises(ValueError, match="without frames"):
        writer.save_episode()
    with pytest.raises(ValueError, match="pass features"):
        DatasetWriter(tmp_path / "nothing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        DatasetWriter(tmp_path / "junk", robot_features(CAMS))


# ---- corrupt and missing files ----------------------------------------------------------------


@pytest.fixture
def copy(written: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(written, dst)
    return dst


@pytest.mark.parametrize(
    "rel",
    [
        "meta/info.json",
        "meta/tasks.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "data/chunk-000/file-000.parquet",
        "meta/stats.json",
    ],
)
@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_corrupt_or_missing_file_is_named(copy: Path, rel: str, damage: str) -> None:
    path = copy / rel
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    if rel == "meta/stats.json" and damage == "delete":
        assert LeRobotDataset(copy).meta.stats["action"]["count"].tolist() == [28]  # rebuilt from episodes
        return
    with pytest.raises(DatasetFileError) as err:
        LeRobotDataset(copy)
    named = path.parent.parent if rel.startswith("meta/episodes") and damage == "delete" else path
    assert err.value.path == named and str(named) in str(err.value)


@pytest.mark.parametrize("damage", ["truncate", "delete", "garbage"])
def test_corrupt_or_missing_video_is_named(copy: Path, damage: str) -> None:
    path = copy / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    data = path.read_bytes()
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 3])
    else:
        path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(DatasetFileError, match=r"observation\.images\.wrist.*file-000\.mp4"):
        ds = LeRobotDataset(copy)  # a missing file is found here, a damaged one when decoded
        for idx in range(len(ds)):
            ds[idx]


def test_data_rows_missing_for_an_episode_is_named(copy: Path) -> None:
    path = copy / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 20), path)
    with pytest.raises(DatasetFileError, match=r"file-000\.parquet.*episode 2"):
        LeRobotDataset(copy)


def test_unsupported_version_is_named(copy: Path) -> None:
    info_path = copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["codebase_version"] = "v1.6"
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetFileError, match=r"info\.json.*v1\.6"):
        LeRobotDataset(copy)


# ---- v2.1 ------------------------------------------------------------------------------------


def test_reads_v21_layout(tmp_path: Path) -> None:
    """A v2.1 dataset (one parquet + one mp4 per episode, JSON-lines meta) reads like v3.0."""
    root, cam, fps = tmp_path / "v21", CAMS[0], 30
    key = contract.image_feature(cam.name)
    episodes = [(6, "pick up the cube"), (4, "stack the cubes")]
    expected = expected_values(episodes, cameras=(cam,))
    features = robot_features((cam,))
    features.update({k: {"dtype": d, "shape": [1], "names": None} for k, d in [
        ("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
        ("index", "int64"), ("task_index", "int64")]})  # fmt: skip
    info = {
        "codebase_version": "v2.1", "robot_type": "so101_follower", "fps": fps, "chunks_size": 1000,
        "total_episodes": 2, "total_frames": 10, "total_tasks": 2, "total_chunks": 1, "total_videos": 2,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": features,
    }  # fmt: skip
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/tasks.jsonl").write_text(
        "\n".join(
            json.dumps({"task_index": i, "task": t})
            for i, t in enumerate(["pick up the cube", "stack the cubes"])
        )
    )
    lines, start, FLOATS = [], 0, pa.list_(pa.float32())
    for ep, (length, task) in enumerate(episodes):
        rows = expected[start : start + length]
        lines.append(json.dumps({"episode_index": ep, "tasks": [task], "length": length}))
        table = pa.table({
            "observation.state": pa.array([r[0]["observation.state"].tolist() for r in rows], FLOATS),
            "action": pa.array([r[0]["action"].tolist() for r in rows], FLOATS),
            "timestamp": pa.array([i / fps for i in range(length)], pa.float32()),
            "frame_index": pa.array(range(length), pa.int64()),
            "episode_index": pa.array([ep] * length, pa.int64()),
            "index": pa.array(range(start, start + length), pa.int64()),
            "task_index": pa.array([ep] * length, pa.int64()),
        })  # fmt: skip
        (root / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / f"data/chunk-000/episode_{ep:06d}.parquet")
        video = root / f"videos/chunk-000/{key}/episode_{ep:06d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        enc = VideoEncoder(video, cam.height, cam.width, fps, vcodec="h264")
        for r in rows:
            enc.write(r[0][key])
        enc.close()
        start += length
    (root / "meta/episodes.jsonl").write_text("\n".join(lines))
    ds = LeRobotDataset(root, delta_timestamps={"action": [0.0, 1 / 30, 2 / 30]})
    assert (
        len(ds) == 10
        and ds.meta.version == "v2.1"
        and ds.meta.tasks == ["pick up the cube", "stack the cubes"]
    )
    item = ds[8]
    assert item["task"] == "stack the cubes" and item["action_is_pad"].tolist() == [False, False, True]
    np.testing.assert_array_equal(item["action"][1].numpy(), expected[9][0]["action"])
    diff = np.abs(item[key].permute(1, 2, 0).numpy() * 255 - expected[8][0][key])
    assert diff.mean() < FRAME_TOL
    assert ds.meta.stats == {} or "action" in ds.meta.stats


def test_string_feature_and_empty_selection(copy: Path) -> None:
    """Datasets from elsewhere may carry string columns; they come back as str."""
    path = copy / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    table = table.append_column("note", pa.array([f"frame {i}" for i in range(table.num_rows)]))
    pq.write_table(table, path)
    info_path = copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["features"]["note"] = {"dtype": "string", "shape": [1], "names": None}
    info_path.write_text(json.dumps(info))
    ds = LeRobotDataset(copy, delta_timestamps={"note": [0.0, 1 / 30]})
    assert ds[3]["note"] == ["frame 3", "frame 4"]
    assert LeRobotDataset(copy)[5]["note"] == "frame 5"
    with pytest.raises(ValueError, match="no episodes selected"):
        LeRobotDataset(copy, episodes=[])


def test_files_move_to_a_new_chunk_folder(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    writer = DatasetWriter(
        root, robot_features(CAMS), video=H264, data_files_size_in_mb=0.001, video_files_size_in_mb=0.001
    )
    writer.info["chunks_size"] = 2  # files per chunk folder (1000 by default)
    rng = np.random.default_rng(0)
    for ep, (length, task) in enumerate(EPISODES):
        for i in range(length):
            writer.add_frame(synthetic_frame(rng, CAMS, ep, i), task)
        writer.save_episode()
    assert (root / "data/chunk-001/file-000.parquet").exists()
    assert (root / "videos/observation.images.wrist/chunk-001/file-000.mp4").exists()
    ds = LeRobotDataset(root)
    assert ds.meta.episodes[2]["data/chunk_index"] == 1
    expected = expected_values(EPISODES)
    np.testing.assert_array_equal(ds[27]["action"].numpy(), expected[27][0]["action"])
    assert ds[27]["observation.images.wrist"].shape == (3, 32, 48)


# ---- meta/info.json read strictly --------------------------------------------------------------


def _set(*path_and_value):
    """An edit of info.json: set the entry at ``path`` (keys) to ``value``, or delete it (``...``)."""
    *path, value = path_and_value

    def edit(info: dict) -> None:
        for key in path[:-1]:
            info = info[key]
        if value is ...:
            del info[path[-1]]
        else:
            info[path[-1]] = value

    return edit


FRONT = "observation.images.front"


@pytest.mark.parametrize(
    ("edit", "field", "problem"),
    [
        (_set("features", "action", "dtype", "int64"), "features.action.dtype",
         r"'int64', but .*file-000\.parquet holds float"),
        (_set("fps", 15), "fps", r"15 differs from features\.observation\.images\.front\.info\.video\.fps \(30\)"),
        (_set("fps", 0), "fps", "0 is not a positive number of frames per second"),
        (_set("fps", "thirty"), "fps", "'thirty' is not a positive number"),
        (_set("fps", 29.97), "fps", "29.97 is not a whole number"),
        (_set("fps", ...), "fps", "missing"),
        (_set("features", "action", "shape", [7]), "features.action.shape",
         r"\[7\] \(7 values\), but .* holds \[6\] per frame"),
        (_set("features", "action", "dtype", "double"), "features.action.dtype", r"'double', but .* holds float"),
        (_set("features", "action", "dtype", "real"), "features.action", "dtype 'real' is not a numeric dtype"),
        (_set("features", "action", "shape", 6), "features.action", "shape 6 is not a list of positive integers"),
        (_set("features", "velocity", {"dtype": "float32", "shape": [6]}), "features.velocity", "no such column in"),
        (_set("features", FRONT, "shape", [96, 128, 3]), f"features.{FRONT}.shape",
         r"differs from info\.video\.height \(48\)"),
        (_set("features", "timestamp", ...), "features", r"has no \['timestamp'\]"),
    ],
)  # fmt: skip
def test_hand_edited_info_is_an_error_naming_file_and_field(copy: Path, edit, field: str, problem: str) -> None:
    info_path = copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    edit(info)
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetFileError) as err:
        LeRobotDataset(copy)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{info_path}: {field}: "), message
    assert re.search(problem, message), message
    with pytest.raises(DatasetFileError, match=re.escape(f"{info_path}: {field}: ")):
        DatasetWriter(copy)  # nor is it appended to


def test_fps_is_checked_against_the_timestamps(tmp_path: Path) -> None:
    """Without a video's fps to compare with, the data's timestamps tell a hand-edited fps."""
    root = tmp_path / "state_only"
    write_synthetic(root, [(8, "a"), (5, "b")], cameras=(), video=H264).close()
    assert len(LeRobotDataset(root)) == 13
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["fps"] = 15
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetFileError) as err:
        LeRobotDataset(root)
    assert str(err.value) == f"{info_path}: fps: 15, but the data's timestamps are 0.03333 s apart (30 frames/s)"


# ---- bad writer inputs, and datasets that hold no episode ------------------------------------------


@pytest.mark.parametrize(
    ("cams", "video", "message"),
    [
        ((contract.CameraSpec("front", 0, 0),), H264, "shape [0, 0, 3] is not a list of positive integers"),
        ((contract.CameraSpec("front", 10000, 10000),), H264, "image height 10000 is out of range"),
        ((contract.CameraSpec("front", 48, 63),), H264, "image width 63 is odd"),
        (CAMS, VideoSettings(vcodec="vp9"), "unknown video codec 'vp9'"),
    ],
)
def test_bad_writer_inputs_create_nothing(tmp_path: Path, cams, video, message: str) -> None:
    root = tmp_path / "ds"
    with pytest.raises(DatasetInputError, match=re.escape(message)):
        DatasetWriter(root, robot_features(cams), video=video)
    assert not root.exists()


def test_a_dataset_without_episodes_is_removed_or_replaced(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    DatasetWriter(root, robot_features(CAMS), video=H264).close()
    assert not root.exists()  # nothing saved, nothing left
    root.mkdir()
    DatasetWriter(root, robot_features(CAMS), video=H264).close()
    assert root.is_dir() and not list(root.iterdir())  # a directory that was there stays
    # A run killed before its first episode leaves an empty dataset with its (here: other) settings ...
    killed = subprocess.run([sys.executable, "-c", KILLED_BEFORE_FIRST_EPISODE, str(root)], check=False)
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((root / "meta/info.json").read_text())["features"][FRONT]["shape"] == [96, 128, 3]
    # ... which the corrected rerun replaces instead of refusing.
    write_synthetic(root, EPISODES[:1], CAMS, video=H264).close()
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 1 and ds.features[FRONT]["shape"] == [48, 64, 3]


KILLED_BEFORE_FIRST_EPISODE = """
import os, signal, sys
from so101lab import contract
from so101lab.datasets import DatasetWriter, VideoSettings, robot_features
cams = (contract.CameraSpec("front", 96, 128),)
writer = DatasetWriter(sys.argv[1], robot_features(cams), video=VideoSettings(vcodec="h264"))
os.kill(os.getpid(), signal.SIGKILL)
"""
