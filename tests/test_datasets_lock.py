"""One writer per dataset: concurrent writers in real processes, a killed holder, readers alongside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from so101lab import contract
from so101lab.datasets import DatasetLockedError, DatasetWriter, LeRobotDataset, VideoSettings, robot_features
from so101lab.datasets.synthetic import write_synthetic

CAMS = (contract.CameraSpec("front", 48, 64),)
H264 = VideoSettings(vcodec="h264")

# Takes the lock, says so, waits for a line on stdin, then writes 3 episodes of 5 frames.
HOLDER = """
import sys
import numpy as np
from so101lab import contract
from so101lab.datasets import DatasetLockedError, DatasetWriter, VideoSettings, robot_features
from so101lab.datasets.synthetic import synthetic_frame
cams = (contract.CameraSpec("front", 48, 64),)
try:
    writer = DatasetWriter(sys.argv[1], robot_features(cams), video=VideoSettings(vcodec="h264"))
except DatasetLockedError as e:
    print("refused", e, flush=True)
    sys.exit(3)
print("locked", flush=True)
sys.stdin.readline()
rng = np.random.default_rng(0)
for ep in range(3):
    for i in range(5):
        writer.add_frame(synthetic_frame(rng, cams, ep, i), "task " + sys.argv[2])
    writer.save_episode()
writer.close()
print("saved", flush=True)
"""


def start_holder(root: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(root), name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


def test_two_writers_started_at_once_one_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    procs = {name: start_holder(root, name) for name in ("a", "b")}
    first = {name: p.stdout.readline().strip() for name, p in procs.items()}
    winners = [name for name, line in first.items() if line == "locked"]
    assert len(winners) == 1, first
    winner, loser = winners[0], ({"a", "b"} - set(winners)).pop()
    assert procs[loser].wait(timeout=30) == 3
    refusal = first[loser]
    assert f"{root} is being written by another process (pid {procs[winner].pid})" in refusal
    procs[winner].stdin.write("\n")
    procs[winner].stdin.flush()
    assert procs[winner].stdout.readline().strip() == "saved" and procs[winner].wait(timeout=30) == 0
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and len(ds) == 15 and ds.meta.tasks == [f"task {winner}"]
    assert sum(pq.read_metadata(p).num_rows for p in root.glob("data/*/*.parquet")) == 15
    assert not list(root.rglob("*.tmp"))


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_synthetic(root, [(6, "task")], CAMS, video=H264).close()
    proc = start_holder(root, "killed")
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(DatasetLockedError, match=f"pid {proc.pid}"):
        DatasetWriter(root, video=H264)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with DatasetWriter(root, video=H264) as writer:  # the kernel dropped the lock with the process
        assert writer.num_episodes == 1


def test_writers_in_one_process_and_readers(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    writer = write_synthetic(root, [(6, "task")], CAMS, video=H264)
    with pytest.raises(DatasetLockedError, match=f"{root}.*pid {os.getpid()}"):
        DatasetWriter(root, robot_features(CAMS), video=H264)
    assert len(LeRobotDataset(root)) == 6  # readers never need the lock
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.save_episode()
    write_synthetic(root, [(4, "task")], CAMS, video=H264).close()
    assert len(LeRobotDataset(root)) == 10


def test_two_collect_runs_on_one_root(tmp_path: Path) -> None:
    """The issue's case: the second `so101lab collect` is refused at once; the first one's dataset loads."""
    root = tmp_path / "ds"
    cmd = [sys.executable, "-m", "so101lab.experiments.cli", "collect", "--root", str(root), "--episodes", "3",
           "--workers", "1", "--image-size", "48", "64", "--vcodec", "h264"]  # fmt: skip
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lock = root / ".lock"
    deadline = time.monotonic() + 120
    while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
        assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1 and second.stdout == ""
    # One line (warnings other modules print at import may come before it, never a traceback).
    assert "Traceback" not in second.stderr
    assert second.stderr.splitlines()[-1] == (
        f"so101lab collect: {root} is being written by another process (pid {first.pid}); "
        "one writer per dataset: wait for it to finish or use another --root"
    )
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and [ep["seed"] for ep in ds.meta.episodes] == [0, 1, 2]
    assert sum(pq.read_metadata(p).num_rows for p in root.glob("data/*/*.parquet")) == len(ds)
    assert not list(root.rglob("*.tmp"))
