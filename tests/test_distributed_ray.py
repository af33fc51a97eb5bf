"""`--ray`: collection and evaluation on a real multi-node Ray cluster on this machine (127.0.0.1 only).

Each node is its own raylet with one CPU, as separate machines would be; frames and values must be
those of a local run of the same seeds, also when a worker is SIGKILLed mid-episode.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from so101lab.datasets import LeRobotDataset  # noqa: E402
from so101lab.experiments import collect  # noqa: E402

# Small and fast: what is tested is the plumbing, not the look.
COLLECT = dict(env_id="so101lab/PickCube-v0", episodes=3, image_size=(48, 64), visual="primitive", shadows=False,
               vcodec="h264")  # fmt: skip


@contextlib.contextmanager
def loopback_only():
    """Ray binds its ports to the loopback address only when it thinks it runs a one-machine cluster;
    several nodes on one machine are then still allowed through ``ray.cluster_utils``."""
    from ray._private import ray_constants

    before_env, before = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"), ray_constants.ENABLE_RAY_CLUSTER
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the nodes' processes read it
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = before_env


def end_leftovers(temp: str) -> None:
    """SIGKILL what is left of a cluster after its shutdown: Ray's agents of a node whose raylet was
    killed can outlive it. Only processes with a file open in this cluster's own temp dir."""
    import shutil

    for proc in Path("/proc").glob("[0-9]*"):
        if proc.name == str(os.getpid()):
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd).startswith(temp + "/") for fd in (proc / "fd").iterdir()):
                os.kill(int(proc.name), signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    """A head and two worker nodes, one CPU each; this process is the driver."""
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="ray")  # short: Ray's unix socket paths must fit in 107 bytes
    with loopback_only():
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                              "temp_dir": temp})  # fmt: skip
        try:
            for _ in range(2):
                nodes.add_node(num_cpus=1)
            nodes.wait_for_nodes()
            ray.init(address=nodes.address, log_to_driver=False)
            yield nodes
        finally:
            ray.shutdown()
            nodes.shutdown()
            end_leftovers(temp)


@pytest.fixture(scope="module")
def local_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("local") / "ds"
    collect.collect(collect.Args(root=root, workers=2, **COLLECT))
    return root


def assert_same_dataset(a: Path, b: Path) -> None:
    """Same episodes, seeds, tasks, values and decoded frames."""
    da, db = LeRobotDataset(a), LeRobotDataset(b)
    assert [e["seed"] for e in da.meta.episodes] == [e["seed"] for e in db.meta.episodes]
    assert [e["tasks"] for e in da.meta.episodes] == [e["tasks"] for e in db.meta.episodes]
    assert len(da) == len(db)
    for key in ("observation.state", "action"):
        for ep in range(da.num_episodes):
            np.testing.assert_array_equal(da.column(key, ep), db.column(key, ep))
    for i in range(0, len(da), 5):
        for key in da.meta.video_keys:
            np.testing.assert_array_equal(da[i][key].numpy(), db[i][key].numpy(), err_msg=f"frame {i} {key}")


def test_ray_collect_is_the_local_collection(cluster, local_dataset, tmp_path) -> None:
    summary = collect.collect(collect.Args(root=tmp_path / "ds", workers=2, ray=cluster.address, **COLLECT))
    assert summary["ray"]["nodes"] == 3 and summary["ray"]["retried_seeds"] == []
    assert summary["episodes_saved"] == 3
    assert_same_dataset(local_dataset, tmp_path / "ds")


def kill_first_recording_worker(killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first Ray worker seen with a half-encoded episode in its scratch dir."""
    scratch = Path(tempfile.gettempdir()) / "so101lab-ray-collect"
    while not stop.is_set():
        for tmp in scratch.glob("*/videos/*/.*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_size > 0:
                    pid = int(tmp.relative_to(scratch).parts[0])
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
        time.sleep(0.02)


@pytest.mark.slow
def test_a_worker_killed_mid_episode_costs_that_episode_a_retry(cluster, local_dataset, tmp_path) -> None:
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_first_recording_worker, args=(killed, stop), daemon=True)
    killer.start()
    try:
        summary = collect.collect(collect.Args(root=tmp_path / "ds", workers=2, ray=cluster.address, **COLLECT))
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1
    assert len(summary["ray"]["retried_seeds"]) == 1  # the killed one, run again
    assert summary["attempts"] == 3 and summary["episodes_saved"] == 3  # no finished episode lost or redone
    assert_same_dataset(local_dataset, tmp_path / "ds")


@pytest.fixture(scope="module")
def act_checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny ACT for 48x64 cameras: what is compared is where the numbers are computed."""
    import torch

    from so101lab import contract
    from so101lab.policies import ACTConfig, ACTPolicy
    from so101lab.policies.smolvla_config import so101_features

    inputs, outputs = so101_features(("front", "wrist"), (48, 64))
    config = ACTConfig(input_features=inputs, output_features=outputs, image_size=(32, 32), dim_model=32, n_heads=2,
                       dim_feedforward=64, n_encoder_layers=1, chunk_size=6, n_action_steps=3)  # fmt: skip
    stats = {k: {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)} for k in config.image_features}
    for key in (contract.FEATURE_STATE, contract.FEATURE_ACTION):
        stats[key] = {"mean": torch.zeros(6), "std": torch.full((6,), 30.0)}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("act") / "ckpt"
    ACTPolicy(config, stats).save_pretrained(path)
    return path


@pytest.mark.slow
def test_ray_eval_gives_the_local_numbers(cluster, act_checkpoint, tmp_path) -> None:
    from so101lab.experiments import eval as evaluate

    def run(out: Path, **ray) -> dict:
        return evaluate.main(evaluate.Args(policy_path=act_checkpoint, n_episodes=5, batch_size=2, max_steps=12,
                                           max_videos=3, output_dir=out, threads=1, visual="primitive",
                                           shadows=False, **ray))  # fmt: skip

    local = run(tmp_path / "local")
    remote = run(tmp_path / "ray", ray=cluster.address, ray_workers=3)
    assert remote["ray"]["nodes"] == 3 and remote["ray"]["workers"] == 3
    assert remote["per_episode"] == local["per_episode"]
    for key in ("avg_sum_reward", "avg_max_reward", "pc_success", "pc_success_ci95", "n_episodes"):
        assert remote["aggregated"][key] == local["aggregated"][key]
    assert json.loads((tmp_path / "ray" / evaluate.EVAL_INFO).read_text())["per_episode"] == local["per_episode"]
    for name in ("eval_episode_0.mp4", "eval_episode_2.mp4"):
        assert (tmp_path / "ray" / "videos" / name).read_bytes() == (tmp_path / "local" / "videos" / name).read_bytes()


@pytest.mark.slow
def test_a_dead_head_is_one_clear_error_and_the_dataset_loads(tmp_path) -> None:
    """`so101lab collect --ray` against its own two-node cluster whose head is killed after two episodes."""
    from ray.cluster_utils import Cluster

    root = tmp_path / "ds"
    temp = tempfile.mkdtemp(prefix="ray")
    with loopback_only():
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                              "temp_dir": temp})  # fmt: skip
        try:
            nodes.add_node(num_cpus=1)
            nodes.wait_for_nodes()
            address = nodes.address
            cmd = [sys.executable, "-m", "so101lab.experiments.cli", "collect", "--root", str(root), "--episodes", "40",
                   "--workers", "2", "--ray", address, "--image-size", "48", "64", "--visual", "primitive",
                   "--no-shadows", "--vcodec", "h264"]  # fmt: skip
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 120
                while not _saved(root, 2) and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert proc.poll() is None, proc.communicate()
                nodes.remove_node(nodes.head_node, allow_graceful=False)
                killed = time.monotonic()
                _, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        finally:
            nodes.shutdown()
            end_leftovers(temp)
    assert proc.returncode == 1 and time.monotonic() - killed < 30
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"so101lab collect: lost the Ray cluster at '{address}'"), message
    assert message.endswith(f"the episodes saved so far are in {root} and load as they are; rerun the same "
                            "command to continue after them")  # fmt: skip
    ds = LeRobotDataset(root)
    assert ds.num_episodes >= 2 and [e["seed"] for e in ds.meta.episodes] == list(range(ds.num_episodes))
    ds[len(ds) - 1]  # the last committed frame decodes


def _saved(root: Path, episodes: int) -> bool:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((root / "meta" / "info.json").read_text())["total_episodes"] >= episodes
    return False


def test_a_bare_ray_flag_means_the_cluster_this_machine_joined() -> None:
    from so101lab.experiments.cli import bare_ray_flag

    assert bare_ray_flag(["--ray"]) == ["--ray", "auto"]
    assert bare_ray_flag(["--ray", "--workers", "4"]) == ["--ray", "auto", "--workers", "4"]
    assert bare_ray_flag(["--ray", "10.0.0.5:6379"]) == ["--ray", "10.0.0.5:6379"]


def test_no_cluster_and_no_ray_are_one_line_each(tmp_path, monkeypatch) -> None:
    from so101lab.experiments.cli import main as cli_main

    args = ["collect", "--root", str(tmp_path / "ds"), "--episodes", "1", "--image-size", "48", "64", "--ray"]
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*args, "127.0.0.1:1"])
    assert str(exit_info.value.code).startswith("so101lab collect: nothing answers at --ray 127.0.0.1:1 (")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    assert exit_info.value.code == "so101lab collect: --ray needs Ray: pip install 'so101lab[ray]'"
    assert not (tmp_path / "ds").exists()
