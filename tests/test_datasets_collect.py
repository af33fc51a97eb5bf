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
    # Two workers: episode k is seed k whichever finished first (issue 21).
    assert [ep["seed"] for ep in ds.meta.episodes] == [0, 1] and all(ep["success"] for ep in ds.meta.episodes)
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


def collect_error(args: list[str]) -> str:
    """The one-line message a refused `so101lab collect` exits with."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["collect", *args])
    message = str(exit_info.value.code)
    assert message.startswith("so101lab collect: ") and "\n" not in message
    return message


def test_collect_resumes_after_the_recorded_seeds(collected, tmp_path: Path) -> None:
    """Rerunning the same command continues the seeds; asking for recorded seeds is refused."""
    root, _ = collected
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    same = ["collect", "--root", str(copy), "--episodes", "2", "--workers", "2", "--image-size", "96", "128"]
    cli_main(same)
    ds = LeRobotDataset(copy)
    assert [ep["seed"] for ep in ds.meta.episodes] == [0, 1, 2, 3]
    assert collect_error([*same[1:], "--seed", "1"]) == (
        f"so101lab collect: {copy} already holds episodes of so101lab/PickCube-v0 with seeds 1..3, which "
        "--seed 1 would record again (this run may use seeds 1..14); leave out --seed to continue at 4, "
        "or pass --allow-duplicate-seeds"
    )
    assert "features do not match" in collect_error([*same[1:3], "--cameras", "front"])
    assert "holds episodes of so101lab/PickCube-v0, not so101lab/StackCubes-v0" in collect_error(
        [*same[1:], "--env-id", "so101lab/StackCubes-v0"]
    )
    assert LeRobotDataset(copy).num_episodes == 4  # refusals change nothing
    cli_main(["collect", "--root", str(copy), "--episodes", "1", "--workers", "1", "--seed", "1",
              "--allow-duplicate-seeds", "--image-size", "96", "128"])  # fmt: skip
    ds = LeRobotDataset(copy)
    assert [ep["seed"] for ep in ds.meta.episodes] == [0, 1, 2, 3, 1]
    np.testing.assert_array_equal(ds.column("action", 4), ds.column("action", 1))  # what a duplicate is


def test_seed_order_releases_results_in_seed_order() -> None:
    from so101lab.experiments.collect import SeedOrder

    order = SeedOrder(5)
    assert order.add({"seed": 7}) == [] and order.add({"seed": 6}) == []
    assert [r["seed"] for r in order.add({"seed": 5})] == [5, 6, 7]
    assert [r["seed"] for r in order.add({"seed": 8})] == [8] and not order.waiting


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-size", "10000", "10000"], "image height 10000 is out of range: each side must be 2..4096"),
        (["--image-size", "0", "0"], "image height 0 is out of range"),
        (["--image-size", "48", "63"], "image width 63 is odd"),
        (["--image-size", "4096", "4096", "--workers", "64"], "64 recording process(es) with 2 camera(s) of 4096x4096"),
        (["--vcodec", "vp9"], "unknown video codec 'vp9'; choose one of libsvtav1, h264"),
        (["--cameras", "front", "nosuchcam"],
         "--cameras/--camera-config/--visual: unknown camera(s) ['nosuchcam']; this scene has ["),
        (["--camera-config", "nowhere.json"], "camera file nowhere.json does not exist"),
        (["--cameras", "front", "front"], "--cameras must name one or more distinct cameras"),
        (["--env-id", "so101lab/PickCubes-v0"], "unknown --env-id 'so101lab/PickCubes-v0'"),
        (["--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--noise-seconds", "0"], "--noise-seconds > 0"),
    ],
)
def test_bad_arguments_fail_in_one_line_before_creating_anything(tmp_path: Path, args, message) -> None:
    root = tmp_path / "ds"
    assert message in collect_error(["--root", str(root), *args])
    assert not root.exists()


def test_a_run_that_saves_nothing_leaves_no_dataset(tmp_path: Path) -> None:
    """One attempt of one step cannot succeed: nothing saved, nothing left (no settings to bind a rerun)."""
    root = tmp_path / "ds"
    with pytest.raises(SystemExit, match="only 0 of 1 episodes"), contextlib.redirect_stdout(io.StringIO()):
        cli_main(["collect", "--root", str(root), "--episodes", "1", "--workers", "1", "--max-attempts", "1",
                  "--max-steps", "1", "--image-size", "48", "64", "--vcodec", "h264"])  # fmt: skip
    assert not root.exists()


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

    def reset(self):
        pass

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
    env_kwargs = {"cameras": ("front",), "image_size": (32, 48), "visual": "primitive"}
    job = collect._Job(root, "so101lab/PickCube-v0", env_kwargs, ("front",), writer.features, "h264", keep_failed, 6)
    result = collect.run_episode(job, seed=0)
    assert result["success"] is False and result["task"].startswith("pick up")
    if not keep_failed:
        assert result["data"] is None and not list(root.rglob("*.tmp"))
        return
    assert result["data"].length == 6
    writer.save_episode(result["data"], extra={"seed": 0, "success": False})
    ds = LeRobotDataset(root)
    assert len(ds) == 6 and ds.meta.episodes[0]["success"] is False


def test_collect_records_a_camera_files_cameras(tmp_path: Path) -> None:
    """`--camera-config`: the dataset holds the file's cameras at the file's sizes, rendered with its intrinsics."""
    from so101lab.camera_file import MountedCamera, look_at, save_camera_file

    pos, quat = look_at((0.5, 0.2, 0.3), (0.18, 0.0, 0.0))
    cams = save_camera_file(tmp_path / "cams.json", [
        MountedCamera.from_fov("side", 64, 48, 45.0, pos=pos, quat=quat),
        MountedCamera.from_fov("wrist", 48, 32, 75.0, mount="gripper", pos=(0.0, -0.032, -0.045)),
    ])
    root = tmp_path / "ds"
    cli_main(["collect", "--root", str(root), "--episodes", "1", "--workers", "1", "--camera-config", str(cams),
              "--visual", "primitive"])  # fmt: skip
    ds = LeRobotDataset(root)
    shapes = {k: tuple(v["shape"]) for k, v in ds.meta.features.items() if k.startswith("observation.images.")}
    assert shapes == {"observation.images.side": (48, 64, 3), "observation.images.wrist": (32, 48, 3)}
    assert ds[0]["observation.images.side"].shape[-2:] == (48, 64)
