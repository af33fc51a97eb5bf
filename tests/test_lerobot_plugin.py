"""LeRobot 0.6.1 evaluates policies in so101lab's tasks through the env plugin (plugins/lerobot_env_so101lab),
and records and replays on the virtual arm through the robot plugin (plugins/lerobot_robot_so101lab).

Everything runs in the reference LeRobot 0.6.1 venv (marker `compat`; .ci/run installs so101lab and the
plugin there): LeRobot's own `lerobot-train` makes tiny ACT, Diffusion and SmolVLA checkpoints from a
small so101lab-written dataset (a few steps each, no downloads), then `lerobot-eval --env.type=so101lab`
evaluates them on every task. The checkpoints are untrained, so success is whatever it is (0 %); that
the success path works is shown with so101lab's scripted expert driven through LeRobot's env factory.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from so101lab import contract
from so101lab.datasets.synthetic import write_synthetic

pytestmark = pytest.mark.compat

REPO = Path(__file__).resolve().parents[1]
TASKS = ("PickCube-v0", "PickPlace-v0", "StackCubes-v0", "SortCubes-v0")
HW = (48, 64)
# Tiny models: a few seconds per step on 2 CPU cores. Backbones start random (a null weights name) and
# the SmolVLM is the repository's tiny config + tokenizer: nothing is downloaded.
POLICY_ARGS = {
    "act": ["--policy.pretrained_backbone_weights=null", "--policy.dim_model=32", "--policy.n_heads=2",
            "--policy.dim_feedforward=64", "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1",
            "--policy.latent_dim=8", "--policy.use_vae=false", "--policy.chunk_size=10",
            "--policy.n_action_steps=10"],
    "diffusion": ["--policy.pretrained_backbone_weights=null", "--policy.crop_shape=null",
                  "--policy.down_dims=[16,32]", "--policy.diffusion_step_embed_dim=16", "--policy.horizon=8",
                  "--policy.n_action_steps=4", "--policy.num_inference_steps=2",
                  "--policy.spatial_softmax_num_keypoints=8"],
    "smolvla": [f"--policy.vlm_model_name={REPO / 'tests/fixtures/smolvla_tiny/vlm'}", "--policy.num_vlm_layers=4",
                "--policy.resize_imgs_with_padding=[64,64]", "--policy.chunk_size=10", "--policy.n_action_steps=10"],
}  # fmt: skip
# Which checkpoint each task is evaluated with: SmolVLA (language-conditioned) on all four.
EVALS = [("smolvla", task) for task in TASKS] + [("act", "PickCube-v0"), ("diffusion", "StackCubes-v0")]
RESULTS = Path(os.environ.get("SO101LAB_LEROBOT_EVAL_OUT", "")) if os.environ.get("SO101LAB_LEROBOT_EVAL_OUT") else None


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def lerobot_bin(lerobot061: Path) -> Path:
    """The 0.6.1 venv's bin/, with so101lab and the plugin importable there (else skip; fail under CI)."""
    probe = subprocess.run([str(lerobot061), "-c", "import so101lab, lerobot_env_so101lab"], capture_output=True)
    if probe.returncode:
        message = f"so101lab and lerobot_env_so101lab are not installed in {lerobot061} (docs/lerobot.md)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return lerobot061.parent


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lerobot_plugin")
    cams = tuple(contract.CameraSpec(c, *HW) for c in ("front", "wrist"))
    write_synthetic(root / "dataset", [(20, "pick up the red cube"), (20, "put the red cube in the bin"),
                                       (20, "stack the red cube on the blue cube")], cams)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def checkpoints(lerobot_bin: Path, work: Path) -> dict[str, Path]:
    """LeRobot's own lerobot-train makes each policy's checkpoint (2 steps of batch 2)."""
    out = {}
    for policy, extra in POLICY_ARGS.items():
        _run([str(lerobot_bin / "lerobot-train"), "--dataset.repo_id=local/so101lab_tiny",
              f"--dataset.root={work / 'dataset'}", "--dataset.video_backend=pyav", f"--policy.type={policy}",
              "--policy.device=cpu", "--policy.push_to_hub=false", *extra, "--steps=2", "--batch_size=2",
              "--num_workers=0", "--save_freq=2", "--log_freq=1", "--wandb.enable=false",
              f"--output_dir={work / policy}"], cwd=work)  # fmt: skip
        out[policy] = work / policy / "checkpoints" / "last" / "pretrained_model"
        assert json.loads((out[policy] / "config.json").read_text())["type"] == policy
    return out


@pytest.mark.parametrize(("policy", "task"), EVALS)
def test_lerobot_eval_runs_a_lerobot_checkpoint_in_an_so101lab_task(lerobot_bin, checkpoints, work, policy, task):
    out = work / f"eval_{policy}_{task}"
    _run([str(lerobot_bin / "lerobot-eval"), f"--policy.path={checkpoints[policy]}", "--policy.device=cpu",
                 "--env.type=so101lab", f"--env.task={task}", f"--env.observation_height={HW[0]}",
                 f"--env.observation_width={HW[1]}", "--env.visual=primitive", "--env.shadows=false",
                 "--env.episode_length=30", "--eval.n_episodes=2", "--eval.batch_size=2",
                 "--eval.use_async_envs=false", f"--output_dir={out}"], cwd=work)  # fmt: skip
    info = json.loads((out / "eval_info.json").read_text())
    overall = info["overall"]
    assert overall["n_episodes"] == 2 and 0.0 <= overall["pc_success"] <= 100.0
    assert len(info["per_task"][0]["metrics"]["successes"]) == 2
    videos = sorted((out / "videos").rglob("eval_episode_*.mp4"))
    assert len(videos) == 2 and all(v.stat().st_size > 0 for v in videos)
    line = (f"lerobot-eval {policy} {task}: pc_success {overall['pc_success']:.1f}, n_episodes "
            f"{overall['n_episodes']}, eval_s {overall['eval_s']:.1f}, avg_sum_reward {overall['avg_sum_reward']}")
    print(line)
    if RESULTS is not None:  # CI keeps each eval_info.json for its log
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{policy}_{task}.json").write_text(json.dumps(info, indent=2))
        with (RESULTS / "summary.txt").open("a") as f:
            f.write(line + "\n")


@pytest.mark.parametrize("task", TASKS)
def test_lerobot_env_factory_builds_the_task_and_counts_the_experts_success(lerobot_bin, task, tmp_path):
    proc = _run([str(lerobot_bin / "python"), str(REPO / "scripts/lerobot_env_check.py"), "--task", task],
                cwd=tmp_path)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["policy_features"] == {
        "action": ["ACTION", [6]],
        "observation.state": ["STATE", [6]],
        "observation.images.front": ["VISUAL", [3, *HW]],
        "observation.images.wrist": ["VISUAL", [3, *HW]],
    }
    assert report["observation"] == {
        "observation.images.front": [1, 3, *HW],
        "observation.images.wrist": [1, 3, *HW],
        "observation.state": [1, 6],
    }
    assert report["task"][0] and report["task"][0] != task  # the instruction, e.g. "pick up the green cube"
    assert report["expert_success"] is True, report


# ---- the robot plugin (plugins/lerobot_robot_so101lab): LeRobot's own commands on the virtual arm ----


@contextlib.contextmanager
def virtual_arm(socket: Path, *extra: str):
    """`so101lab virtual-arm --task PickCube` in a subprocess: yields its pseudo-terminal."""
    proc = subprocess.Popen([sys.executable, "-m", "so101lab.experiments.cli", "virtual-arm", "--task", "PickCube",
                             "--socket", str(socket), *extra], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        port = None
        for line in proc.stdout:
            if line.startswith("port: "):
                port = line.split()[1]
            if line.startswith("virtual SO-101 running"):
                break
        assert port is not None and socket.exists(), "the virtual arm did not start"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def robot_bin(lerobot_bin: Path) -> Path:
    probe = subprocess.run([str(lerobot_bin / "python"), "-c", "import lerobot_robot_so101lab"], capture_output=True)
    if probe.returncode:
        message = f"lerobot_robot_so101lab is not installed beside LeRobot in {lerobot_bin} (docs/lerobot.md)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return lerobot_bin


def test_lerobot_records_and_replays_on_the_virtual_arm_with_its_cameras(robot_bin, tmp_path):
    """The robot `so101lab_virtual` (LeRobot's SO-101 follower + the scene's cameras, calibration, reset and
    success): a direct check, then `lerobot-record` teleoperated from a second virtual arm as the
    `so101_leader`, and `lerobot-replay` of the recorded episode."""
    from so101lab.datasets import LeRobotDataset

    follower, leader = tmp_path / "follower.sock", tmp_path / "leader.sock"
    with virtual_arm(follower), virtual_arm(leader, "--calibration-out", str(tmp_path / "lcal" / "l.json")) as lport:
        proc = _run([str(robot_bin / "python"), str(REPO / "scripts/lerobot_robot_check.py"), str(follower),
                     str(tmp_path / "cal")], cwd=tmp_path)  # fmt: skip
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report["task"].startswith("pick up the") and report["is_success"] is False
        assert report["observation"]["front"] == [*HW, 3] and report["observation"]["wrist"] == [*HW, 3]
        assert report["sent"] == [f"{j}.pos" for j in sorted(contract.JOINT_NAMES)]
        robot = ["--robot.type=so101lab_virtual", f"--robot.world={follower}", "--robot.id=f",
                 f"--robot.calibration_dir={tmp_path / 'cal'}", f"--robot.camera_height={HW[0]}",
                 f"--robot.camera_width={HW[1]}"]  # fmt: skip
        # The leader's calibration file exists; LeRobot asks once whether to write it to its motors (Enter).
        record = [str(robot_bin / "lerobot-record"), *robot, "--teleop.type=so101_leader", f"--teleop.port={lport}",
                  "--teleop.id=l", f"--teleop.calibration_dir={tmp_path / 'lcal'}", "--dataset.repo_id=local/rec",
                  f"--dataset.root={tmp_path / 'rec'}", "--dataset.single_task=pick up the cube",
                  "--dataset.num_episodes=1", "--dataset.episode_time_s=2", "--dataset.reset_time_s=0",
                  "--dataset.push_to_hub=false", "--display_data=false", "--play_sounds=false"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        done = subprocess.run(record, cwd=tmp_path, input="\n\n\n", capture_output=True, text=True, timeout=300,
                              env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        ds = LeRobotDataset(tmp_path / "rec")
        assert ds.meta.video_keys == ["observation.images.front", "observation.images.wrist"]
        assert len(ds) > 0 and ds[0]["observation.images.front"].shape == (3, *HW)
        assert ds.meta.tasks == ["pick up the cube"]
        replay = [str(robot_bin / "lerobot-replay"), *robot, "--dataset.repo_id=local/rec",
                  f"--dataset.root={tmp_path / 'rec'}", "--dataset.episode=0", "--play_sounds=false"]  # fmt: skip
        _run(replay, cwd=tmp_path)
