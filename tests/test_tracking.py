"""wandb for real, offline: the run files `train` and `eval` write hold their metrics and videos.

wandb is a dev dependency: without it these tests fail at import instead of passing silently.
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest
import tyro
import wandb
from wandb.proto import wandb_internal_pb2

from so101lab import contract
from so101lab.datasets.synthetic import write_synthetic
from so101lab.experiments import eval as eval_cmd
from so101lab.experiments import train

CHECKPOINT = Path(__file__).parent / "fixtures" / "smolvla_tiny" / "checkpoint"
BLOCK = 32768  # wandb's run file is a LevelDB-style log: 32 KiB blocks of (crc, length, type) records

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _history(run_dir: Path) -> list[dict[str, object]]:
    """The rows `run.log` wrote, read back from the offline run file (values decoded from JSON)."""
    wandb.teardown()  # what the end of the process does: the wandb service writes out the run file
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    data, pos, parts, rows = path.read_bytes(), 7, b"", []
    assert data.startswith(b":W&B")
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a record header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += BLOCK - pos % BLOCK
            continue
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last fragment of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            parts = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows


def test_train_logs_its_metrics_rows_to_wandb(tmp_path):
    root = tmp_path / "ds"
    write_synthetic(root, [(20, "pick up the red cube"), (20, "push")], (contract.CameraSpec("front", 48, 64),))
    out = tmp_path / "run"
    train.main(tyro.cli(train.Args, args=[
        "--dataset", str(root), "--output-dir", str(out), "--policy", "act", "--steps", "3", "--save-every", "3",
        "--batch-size", "4", "--chunk-size", "6", "--n-action-steps", "3", "--act.image-size", "32", "32",
        "--act.dim-model", "32", "--act.n-heads", "2", "--act.dim-feedforward", "64", "--log-every", "1",
        "--device", "cpu", "--wandb", "offline"]))  # fmt: skip
    with (out / train.METRICS_FILE).open() as f:
        expected = {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}
    logged = {row["_step"]: row["train/loss"] for row in _history(out) if "train/loss" in row}
    assert logged == expected and sorted(logged) == [1, 2, 3]


def test_eval_logs_results_and_videos_to_wandb(tmp_path):
    argv = ["--policy-path", str(CHECKPOINT), "--n-episodes", "2", "--batch-size", "2", "--max-steps", "6",
            "--max-videos", "1", "--output-dir", str(tmp_path), "--wandb", "offline"]  # fmt: skip
    info = eval_cmd.main(tyro.cli(eval_cmd.Args, args=argv))
    (row,) = _history(tmp_path)
    assert row["eval/pc_success"] == info["aggregated"]["pc_success"]
    assert row["eval/n_episodes"] == 2
    assert row["eval/video_0/_type"] == "video-file"  # media are logged as flattened nested keys
    (video,) = tmp_path.glob(f"wandb/offline-run-*/files/{row['eval/video_0/path']}")
    assert video.stat().st_size > 1000
