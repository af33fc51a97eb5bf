"""Crash safety: a recording killed with SIGKILL keeps every finished episode, intact and appendable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from so101lab import contract
from so101lab.datasets import LeRobotDataset, VideoSettings
from so101lab.datasets.synthetic import synthetic_frame, write_synthetic

CAMS = (contract.CameraSpec("front", 48, 64), contract.CameraSpec("wrist", 32, 48))
LENGTH = 8

# Records episodes of LENGTH frames forever, reporting progress on stdout, as `collect` would.
RECORDER = f"""
import sys, time
import numpy as np
from so101lab import contract
from so101lab.datasets import DatasetWriter, VideoSettings, robot_features
from so101lab.datasets.synthetic import synthetic_frame
cams = (contract.CameraSpec("front", 48, 64), contract.CameraSpec("wrist", 32, 48))
writer = DatasetWriter(sys.argv[1], robot_features(cams), video=VideoSettings(vcodec=sys.argv[2]))
slow = float(sys.argv[3])
rng = np.random.default_rng(0)
print("ready", flush=True)
for ep in range(1000):
    for i in range({LENGTH}):
        writer.add_frame(synthetic_frame(rng, cams, ep, i), f"task {{ep % 2}}")
        if i == {LENGTH} // 2:
            print("mid", ep, flush=True)
        time.sleep(slow)
    writer.save_episode()
    print("saved", ep, flush=True)
"""


def start_recorder(root: Path, vcodec: str = "h264", slow: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(root), vcodec, str(slow)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill takes ffmpeg down with it
    )


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def expected_frames(episodes: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [synthetic_frame(rng, CAMS, ep, i) for ep in range(episodes) for i in range(LENGTH)]


def check_dataset(root: Path, episodes: int) -> None:
    """The dataset holds exactly ``episodes`` complete episodes with the recorded values."""
    ds = LeRobotDataset(root)
    assert ds.num_episodes == episodes and len(ds) == episodes * LENGTH
    expected = expected_frames(episodes)
    for idx in range(len(ds)):
        item = ds[idx]
        np.testing.assert_array_equal(item["action"].numpy(), expected[idx]["action"])
        assert item["observation.images.wrist"].shape == (3, 32, 48)
        assert item["task"] == f"task {item['episode_index'].item() % 2}"


def test_sigkill_mid_episode_keeps_finished_episodes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = start_recorder(root, slow=0.02)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("mid 3"):
            break
    kill(proc)
    check_dataset(root, 3)  # as the crash left it: no repair step needed to read
    assert list(root.rglob(".*.tmp")), "the episode in progress left temp files (ffmpeg output)"
    write_synthetic(root, [(LENGTH, "task 1")], CAMS, video=VideoSettings(vcodec="h264"), seed=9)
    assert not list(root.rglob(".*.tmp"))
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 4 and len(ds) == 4 * LENGTH
    assert ds[3 * LENGTH]["index"].item() == 3 * LENGTH and ds[3 * LENGTH]["frame_index"].item() == 0


@pytest.mark.parametrize("delay", [0.15, 0.4, 0.7, 1.1])
def test_sigkill_at_any_moment_leaves_a_consistent_dataset(tmp_path: Path, delay: float) -> None:
    """Killed at arbitrary points (often inside save_episode): never corrupt, at most one episode lost."""
    root = tmp_path / "ds"
    proc = start_recorder(root)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    kill(proc)
    saved = sum(1 for line in proc.stdout.read().splitlines() if line.startswith("saved"))
    if list(root.glob("meta/episodes/*/*.parquet")):
        ds = LeRobotDataset(root)
        # save_episode may have committed just before the kill, before "saved" was printed.
        assert saved <= ds.num_episodes <= saved + 1
        check_dataset(root, ds.num_episodes)
    write_synthetic(root, [(LENGTH, "task 0")], CAMS, video=VideoSettings(vcodec="h264"), seed=9)
    ds = LeRobotDataset(root)
    committed = ds.num_episodes - 1
    assert committed >= saved
    # After reopening, the files hold exactly the listed episodes (what LeRobot's reader needs).
    rows = sum(pq.read_metadata(p).num_rows for p in root.glob("data/*/*.parquet"))
    assert rows == len(ds) == (committed + 1) * LENGTH
    assert not list(root.rglob(".*.tmp"))
    assert ds[len(ds) - 1]["episode_index"].item() == committed


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", range(7))
def test_crash_between_commit_steps_is_repaired_on_reopen(tmp_path: Path, monkeypatch, step: int) -> None:
    """Stop save_episode after each of its file commits; reopening must yield 2 or 3 clean episodes."""
    import so101lab.datasets.writer as writer_mod
    from so101lab.datasets.video import probe_frames

    root = tmp_path / "ds"
    writer = write_synthetic(root, [(LENGTH, "task 0"), (LENGTH, "task 1")], CAMS, video=VideoSettings(vcodec="h264"))
    rng = np.random.default_rng(0)
    for _ in range(2 * LENGTH):  # replay the generator so episode 2 matches expected_frames
        synthetic_frame(rng, CAMS, 0, 0)
    for i in range(LENGTH):
        writer.add_frame(synthetic_frame(rng, CAMS, 2, i), "a new task")
    calls = {"n": 0}
    for name in ("append_video", "write_parquet_atomic", "write_json_atomic"):
        real = getattr(writer_mod, name)

        def crashing(*args, _real=real, **kwargs):
            if calls["n"] == step:
                raise Crash
            calls["n"] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(writer_mod, name, crashing)
    with pytest.raises(Crash):
        writer.save_episode()
    monkeypatch.undo()
    writer.close()  # as a crashed process would: its lock goes with it
    reopened = writer_mod.DatasetWriter(root, video=VideoSettings(vcodec="h264"))
    episodes = reopened.num_episodes
    assert episodes == (2 if step <= 4 else 3)  # committed once the episodes parquet is written
    ds = LeRobotDataset(root)
    assert ds.num_episodes == episodes and ds.meta.tasks[:2] == ["task 0", "task 1"]
    rows = sum(pq.read_metadata(p).num_rows for p in root.glob("data/*/*.parquet"))
    assert rows == len(ds) == episodes * LENGTH
    for key in ("observation.images.front", "observation.images.wrist"):
        assert probe_frames(root / f"videos/{key}/chunk-000/file-000.mp4") == episodes * LENGTH
    expected = expected_frames(3)
    for idx in range(len(ds)):
        np.testing.assert_array_equal(ds[idx]["action"].numpy(), expected[idx]["action"])
        ds[idx]["observation.images.front"]
