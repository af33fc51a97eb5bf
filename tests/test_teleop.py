"""Teleoperation in sim without a leader arm, and LeRobot's recording controls (scripted input, no device)."""

import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import so101lab  # noqa: F401
from so101lab.contract import OBS_STATE
from so101lab.datasets import DatasetMeta, LeRobotDataset
from so101lab.experiments import record_real
from so101lab.teleop.cartesian import CartesianTeleop
from so101lab.teleop.inputs import GRIPPER_CLOSED, GamepadMapper, KeyboardMapper, ScriptedInput
from so101lab.teleop.recording import Events

SIM = {"cameras": ("front",), "image_size": (48, 64), "visual": "primitive"}


def held(key: str, start: int, ticks: int, every: int = 3) -> dict[int, list[str]]:
    """A key held down: pressed at ``start`` and repeated by the keyboard every ``every`` ticks."""
    return {t: [key] for t in range(start, start + ticks, every)}


def sim_args(root: Path, **kwargs) -> record_real.Args:
    return record_real.Args(root=root, sim="PickCube", display="none", **SIM, **kwargs)


def test_keyboard_moves_the_tool_and_the_gripper():
    env = gym.make("so101lab/PickCube-v0", obs_mode="state", visual="primitive")
    env.reset(seed=0)
    sim = env.unwrapped
    teleop, keys = CartesianTeleop(sim), KeyboardMapper()
    script = ScriptedInput({**held("w", 0, 30), **held("r", 30, 15), 45: ["space"]})
    start = sim.tcp_position
    for _ in range(60):
        obs, *_ = env.step(teleop.act(keys(script.poll())))
    moved = sim.tcp_position - start
    assert moved[0] > 0.06 and moved[2] > 0.02 and abs(moved[1]) < 0.02, moved  # forward and up, not sideways
    assert teleop.gripper == GRIPPER_CLOSED and obs[OBS_STATE][5] < 15
    env.close()


def test_gamepad_sticks_and_trigger():
    env = gym.make("so101lab/PickCube-v0", obs_mode="state", visual="primitive")
    env.reset(seed=0)
    sim = env.unwrapped
    teleop, pad = CartesianTeleop(sim), GamepadMapper()
    start = sim.tcp_position
    script = ScriptedInput({0: [("Absolute", "ABS_X", -32767)], 20: [("Absolute", "ABS_X", 0)],
                            25: [("Absolute", "ABS_RZ", 255), ("Key", "BTN_START", 1)]})
    commands = []
    for _ in range(40):
        commands.append(pad(script.poll()))
        env.step(teleop.act(commands[-1]))
    moved = sim.tcp_position - start
    assert moved[1] > 0.03 and abs(moved[0]) < 0.02, moved  # stick left: the tool goes left (+y)
    assert teleop.gripper == pytest.approx(0.0)
    assert commands[25].controls == {"exit_early"}
    env.close()


def test_events_follow_lerobot():
    events = Events()
    events.apply({"rerecord_episode"})
    assert events.exit_early and events.rerecord_episode and not events.stop_recording
    with pytest.raises(ValueError, match="unknown recording controls"):
        events.apply({"pause"})


@pytest.fixture(scope="module")
def teleop_dataset(tmp_path_factory):
    """Two keyboard-teleoperated episodes in sim, with every recording control used once."""
    root = tmp_path_factory.mktemp("teleop") / "data"
    ticks = 30  # 1 s episodes
    timeline = {
        # warm-up (15 ticks): the arm moves, nothing is recorded
        **held("w", 0, 10),
        # episode 1, first take (ticks 15..): re-recorded at its 10th tick
        **{t + 15: keys for t, keys in held("a", 0, 9).items()}, 24: ["left"],
        # episode 1, second take (ticks 25..54): forward, then close the gripper; runs its full second
        **{t + 25: keys for t, keys in held("w", 0, 20).items()}, 50: ["space"],
        # reset phase (ticks 55..): ended early at its 5th tick
        59: ["right"],
        # episode 2 (ticks 60..): up; Esc at its 12th tick saves it and stops (3 were asked for)
        **{t + 60: keys for t, keys in held("r", 0, 10).items()}, 71: ["escape"],
    }  # fmt: skip
    args = sim_args(root, episodes=3, episode_seconds=ticks / 30, warmup_seconds=0.5, reset_seconds=1.0, seed=7)
    record_real.run(args, ScriptedInput(timeline))
    return root


def test_sim_teleop_records_a_dataset_with_the_controls(teleop_dataset):
    meta = DatasetMeta(teleop_dataset)
    assert meta.total_episodes == 2
    lengths = [ep["length"] for ep in meta.episodes]
    assert lengths == [30, 12]  # the full first episode (second take); the second up to Esc
    assert [ep["seed"] for ep in meta.episodes] == [7, 8]  # the re-recorded take kept its seed
    assert {ep["env_id"] for ep in meta.episodes} == {"so101lab/PickCube-v0"}
    dataset = LeRobotDataset(teleop_dataset)
    first = np.stack([dataset[i]["action"].numpy() for i in range(30)])
    assert first[-1, 5] == GRIPPER_CLOSED and first[0, 5] > 20  # the space bar closed the jaw
    assert np.abs(first[-1, :5] - first[0, :5]).max() > 5  # the arm moved (degrees)
    assert dataset[31]["observation.images.front"].shape == (3, 48, 64) and dataset[31]["task"]


@pytest.mark.compat
def test_lerobot_loads_the_teleoperated_dataset(teleop_dataset, tmp_path, request):
    try:
        python = request.getfixturevalue("lerobot044")
    except pytest.FixtureLookupError:
        python = Path.home() / ".cache" / "lerobot-ref" / "bin" / "python"
        if not python.exists():
            pytest.skip(f"reference LeRobot not found at {python}")
    out = tmp_path / "items.npz"
    script = Path(__file__).parents[1] / "scripts" / "lerobot_dump_items.py"
    proc = subprocess.run([str(python), str(script), str(teleop_dataset), str(out), "--indices", "0", "29", "41"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    items = dict(np.load(out))
    assert int(items["num_episodes"]) == 2 and int(items["len"]) == 42
    ours = LeRobotDataset(teleop_dataset)
    for i in (0, 29, 41):
        np.testing.assert_allclose(items[f"{i}/action"], ours[i]["action"].numpy(), atol=1e-6)
        assert items[f"{i}/observation.images.front"].shape == (3, 48, 64)


def test_real_recording_has_the_same_controls(tmp_path):
    """On the virtual arm: the right arrow ends the first episode early, Esc stops in the second."""
    root = tmp_path / "real"
    args = record_real.Args(root=root, port="virtual:PickCube", teleop="expert", cameras=("front",),
                            image_size=(48, 64), episodes=3, episode_seconds=1.0, seed=2,
                            calibration=tmp_path / "missing.json")
    record_real.run(args, ScriptedInput({9: ["right"], 14: ["escape"]}))
    meta = DatasetMeta(root)
    assert [ep["length"] for ep in meta.episodes] == [10, 5] and [ep["seed"] for ep in meta.episodes] == [2, 3]


def test_record_needs_a_port_or_a_sim(tmp_path):
    from so101lab.datasets import DatasetInputError

    with pytest.raises(DatasetInputError, match=r"--port .* or --sim"):
        record_real.run(record_real.Args(root=tmp_path / "x"))
    with pytest.raises(SystemExit, match="--sim"):
        record_real.run(record_real.Args(root=tmp_path / "x", port="virtual:PickCube", teleop="keyboard"))
    assert not (tmp_path / "x").exists()


class InterruptAt(ScriptedInput):
    """Scripted keys, then Ctrl-C (or a SIGTERM through the CLI) at a given tick."""

    def __init__(self, timeline, at: int):
        super().__init__(timeline)
        self.at = at

    def poll(self) -> list:
        if self.tick == self.at:
            raise KeyboardInterrupt
        return super().poll()


@pytest.mark.parametrize("at, saved", [(40, 1), (20, 0)])
def test_an_interrupted_run_keeps_every_finished_episode(tmp_path, at, saved):
    """Interrupted in the reset phase (tick 40): the finished episode is saved; during an episode
    (tick 20): that unfinished episode is dropped, and a run that saved nothing leaves no dataset."""
    root = tmp_path / "data"
    args = sim_args(root, episodes=2, episode_seconds=1.0, reset_seconds=1.0)
    with pytest.raises(KeyboardInterrupt):
        record_real.run(args, InterruptAt({}, at))
    assert (DatasetMeta(root).total_episodes if root.exists() else 0) == saved
