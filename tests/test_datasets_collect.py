"""`so101lab collect`: real sim episodes from worker processes into a LeRobot dataset."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import so101lab  # noqa: F401  (registers the envs)
from so101lab.datasets import LeRobotDataset
from so101lab.experiments.cli import main as cli_main


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("collect") / "pick"
    args = ["collect", "--root", str(root), "--episodes", "2", "--workers", "2", "--image-size", "96", "128"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_main(args)
    return root, json.loads(out.getvalue())


def test_collect_writes_expert_episodes(collected) -> None:
    root, summary = collected
    assert summary["episodes_saved"] == 2 and summary["attempts"] >= 2
    assert 0 < summary["success_rate"] <= 1
    ds = LeRobotDataset(root, delta_timestamps={"action": [i / 30 for i in range(50)]})
    assert ds.num_episodes == 2 and len(ds) == summary["frames_total"]
    assert ds.meta.video_keys == ["observation.images.front", "observation.images.wrist"]
    seeds = sorted(ep["seed"] for ep in ds.meta.episodes)
    assert seeds == [0, 1] and all(ep["success"] for ep in ds.meta.episodes)
    item = ds[0]
    assert item["observation.images.front"].shape == (3, 96, 128)
    assert item["action"].shape == (50, 6)
    assert item["task"] == ds.meta.episodes[0]["tasks"][0] and item["task"].startswith("pick up")


def test_collected_episode_is_what_the_env_did(collected) -> None:
    """Re-running the env with the episode's seed and recorded actions reproduces its states and task."""
    root, _ = collected
    ds = LeRobotDataset(root)
    ep = ds.meta.episodes[0]
    env = gym.make("so101lab/PickCube-v0", obs_mode="state")
    obs, info = env.reset(seed=ep["seed"])
    assert info["task"] == ep["tasks"][0]
    states, actions = ds.column("observation.state", 0), ds.column("action", 0)
    np.testing.assert_allclose(states[0], obs["agent_pos"], atol=1e-5)
    for t in range(len(actions) - 1):
        obs, *_ = env.step(actions[t])
        np.testing.assert_allclose(states[t + 1], obs["agent_pos"], atol=1e-3, err_msg=f"step {t}")
    *_, info = env.step(actions[-1])
    assert info["is_success"]
    env.close()


def test_collect_appends_on_rerun(collected, tmp_path: Path) -> None:
    root, _ = collected
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    cli_main(["collect", "--root", str(copy), "--episodes", "1", "--workers", "1", "--seed", "7",
              "--image-size", "96", "128"])  # fmt: skip
    ds = LeRobotDataset(copy)
    assert ds.num_episodes == 3 and ds.meta.episodes[2]["seed"] == 7
    with pytest.raises(ValueError, match="features do not match"):
        cli_main(["collect", "--root", str(copy), "--episodes", "1", "--cameras", "front"])


def test_execution_noise_perturbs_the_arm_but_records_the_expert(tmp_path: Path) -> None:
    """DART-style collection: states come from the noisy execution, actions are the expert's own."""
    from so101lab.envs.experts import ExecutionNoise

    root = tmp_path / "noisy"
    cli_main(["collect", "--root", str(root), "--episodes", "1", "--workers", "1", "--seed", "3",
              "--image-size", "48", "64", "--noise-deg", "2"])  # fmt: skip
    ds = LeRobotDataset(root)
    ep = ds.meta.episodes[0]
    assert ep["noise_deg"] == 2.0 and ep["success"]
    states, actions = ds.column("observation.state", 0), ds.column("action", 0)
    env = gym.make("so101lab/PickCube-v0", obs_mode="state")
    for noise, agrees in ((ExecutionNoise(2.0, 0.4, ep["seed"]), True), (None, False)):
        env.reset(seed=ep["seed"])
        gaps = []
        for t in range(len(actions) - 1):
            obs, *_ = env.step(actions[t] if noise is None else noise(actions[t]))
            gaps.append(np.abs(states[t + 1] - obs["agent_pos"]).max())
        assert (max(gaps) < 1e-3) == agrees, max(gaps)
    env.close()
    noise = ExecutionNoise(2.0, 0.4, seed=0)
    executed = np.array([noise(np.full(6, 10.0, dtype=np.float32)) for _ in range(3000)])
    assert np.all(executed[:, 5] == 10.0)  # the gripper is never perturbed
    assert 1.6 < executed[:, :5].std() < 2.4


class _IdleExpert:
    """Holds the start pose: never succeeds."""

    def act(self, obs):
        return obs["agent_pos"]


@pytest.mark.parametrize("keep_failed", [False, True])
def test_failed_episodes_are_dropped_or_kept(tmp_path: Path, monkeypatch, keep_failed: bool) -> None:
    import so101lab.envs
    from so101lab.contract import CameraSpec
    from so101lab.datasets import DatasetWriter, robot_features
    from so101lab.experiments import collect

    monkeypatch.setattr(so101lab.envs, "make_expert", lambda env: _IdleExpert())
    root = tmp_path / "ds"
    writer = DatasetWriter(root, robot_features((CameraSpec("front", 32, 48),)))
    job = collect._Job(root, "so101lab/PickCube-v0", ("front",), (32, 48), writer.features, "h264", keep_failed, 6)
    result = collect.run_episode(job, seed=0)
    assert result["success"] is False and result["task"].startswith("pick up")
    if not keep_failed:
        assert result["data"] is None and not list(root.rglob("*.tmp"))
        return
    assert result["data"].length == 6
    writer.save_episode(result["data"], extra={"seed": 0, "success": False})
    ds = LeRobotDataset(root)
    assert len(ds) == 6 and ds.meta.episodes[0]["success"] is False
