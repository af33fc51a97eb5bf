"""`so101lab eval` on a real MuJoCo task with the LeRobot-made tiny SmolVLA checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import pytest
import tyro

from so101lab.experiments import eval as eval_cmd

CHECKPOINT = Path(__file__).parent / "fixtures" / "smolvla_tiny" / "checkpoint"


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_eval_writes_lerobot_metrics_and_videos(tmp_path):
    argv = ["--policy-path", str(CHECKPOINT), "--n-episodes", "3", "--batch-size", "2", "--max-steps", "12",
            "--seed", "7", "--max-videos", "2", "--output-dir", str(tmp_path)]  # fmt: skip
    eval_cmd.main(tyro.cli(eval_cmd.Args, args=argv))
    info = json.loads((tmp_path / eval_cmd.EVAL_INFO).read_text())
    episodes = info["per_episode"]
    assert [e["episode_ix"] for e in episodes] == [0, 1, 2]
    assert [e["seed"] for e in episodes] == [7, 8, 9]
    for e in episodes:
        assert {"sum_reward", "max_reward", "success", "seed", "task"} <= set(e)
        assert e["task"]
    agg = info["aggregated"]
    assert {"avg_sum_reward", "avg_max_reward", "pc_success", "eval_s", "eval_ep_s"} <= set(agg)
    assert agg["pc_success"] == pytest.approx(100 * sum(e["success"] for e in episodes) / 3)
    low, high = agg["pc_success_ci95"]
    assert 0 <= low <= agg["pc_success"] <= high <= 100
    assert len(info["video_paths"]) == 2
    frames = iio.imread(info["video_paths"][0], plugin="pyav")
    assert frames.shape[0] == 12 and frames.shape[-1] == 3


def test_eval_rejects_unknown_camera(tmp_path):
    args = eval_cmd.Args(policy_path=CHECKPOINT, video_camera="top", output_dir=tmp_path)
    with pytest.raises(ValueError, match="video camera 'top'"):
        eval_cmd.main(args)
