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


def test_a_finished_episode_is_not_stepped_again():
    """eval steps only the batch's running episodes: a finished one keeps its state and last frames."""
    import gymnasium as gym
    import numpy as np

    import so101lab  # noqa: F401  (registers the envs)

    def make():
        return gym.make("so101lab/PickCube-v0", image_size=(48, 64), visual="primitive")

    envs, alone = gym.vector.SyncVectorEnv([make, make]), make()
    obs, _ = envs.reset(seed=[3, 4])
    alone.reset(seed=3)
    action = np.stack([obs["agent_pos"][0] + 5.0, obs["agent_pos"][1] + 5.0]).astype(np.float32)
    qpos = envs.envs[1].unwrapped.data.qpos.copy()
    stepped, *_ = eval_cmd._step_live(envs, action, np.array([True, False]), obs)
    expected, *_ = alone.step(action[0])
    np.testing.assert_array_equal(stepped["agent_pos"][0], expected["agent_pos"])
    np.testing.assert_array_equal(stepped["pixels"]["front"][0], expected["pixels"]["front"])
    np.testing.assert_array_equal(envs.envs[1].unwrapped.data.qpos, qpos)
    np.testing.assert_array_equal(stepped["pixels"]["wrist"][1], obs["pixels"]["wrist"][1])
