"""System identification: log formats, the bench model, replay, the fitter and `so101lab sysid`.

The default suite generates its own small bench and arm logs by simulating a known servo; the
tests against the real STS3215 data set take its path from SO101LAB_SYSID_DATA (default the
shared copy) and skip when it is absent.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import mujoco
import numpy as np
import pytest

from so101lab.contract import JOINT_NAMES, lerobot_to_radians
from so101lab.envs.servo import ServoParams
from so101lab.experiments.cli import main as cli_main
from so101lab.sysid.bench import bench_model, env_timestep
from so101lab.sysid.evaluate import baseline_params, evaluate, split_by_p_gain
from so101lab.sysid.fit import START, fit
from so101lab.sysid.logs import BenchLink, ServoLog, load_log, load_logs, save_arm_log
from so101lab.sysid.simulate import simulate

REAL_DATA = Path(os.environ.get("SO101LAB_SYSID_DATA", "/work/shared/data/sts3215-pendulum"))
TRUTH = ServoParams(kp_per_p=1.4, kv=0.3, force_limit=5.0, damping=0.8, damping_off=0.07, armature=0.02,
                    frictionloss=0.08, friction_load=0.25, latency=0.03, max_velocity=5.0)
LIGHT = BenchLink(np.array([-0.146, 0.0, 0.019]), 0.57, np.array([6.7e-4, 8.6e-4, 1.42e-3, 0, 0, 0]))
HEAVY = BenchLink(np.array([-0.148, 0.002, 0.017]), 1.2, np.array([1.6e-3, 1.8e-3, 3.1e-3, 0, 0, 0]))


def goal_of(kind: str, t: np.ndarray) -> np.ndarray:
    if kind == "step":
        return np.where((t > 0.3) & (t < 1.3), 1.4, 0.0)
    return 0.9 * np.sin(2 * np.pi * 0.8 * t) * np.minimum(t, 1.0)


def write_bench_logs(directory: Path, params: ServoParams = TRUTH) -> list[Path]:
    """Bench-format .npz runs whose `pos` is what `params` does: 2 s at 200 Hz, P 8 and 32,
    a light and a heavy pendulum, a step (with torque off at the end) and a sine."""
    t = np.arange(0, 2.0, 0.005)
    specs = [(kind, p, name, link) for kind in ("step", "sine") for p in (8, 32)
             for name, link in (("b", LIGHT), ("bcd", HEAVY))]
    logs = []
    for kind, p, name, link in specs:
        torque = np.ones_like(t, bool)
        if kind == "step":
            torque[t >= 1.6] = False
        logs.append(ServoLog(f"{kind}_kp{p}_{name}", kind, t, goal_of(kind, t), np.zeros_like(t), torque,
                             float(p), ("servo",), bench=link))
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for log, sim in zip(logs, simulate(logs, params), strict=True):
        path = directory / f"{log.name}.npz"
        np.savez(path, t=log.t, goal=log.goal[:, 0], pos=sim[:, 0], torque_enable=log.torque_enable[:, 0],
                 kp=int(log.p_gain[0]), trajectory=log.trajectory, link_com=log.bench.com,
                 link_mass=log.bench.mass, link_fullinertia=log.bench.fullinertia, mass=0.5, length=0.1)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("bench")
    write_bench_logs(directory)
    return directory


# ---- formats -------------------------------------------------------------------------------

def test_bench_logs_load_with_their_link_and_gain(bench_dir):
    logs = load_logs(bench_dir)
    assert len(logs) == 8 and [log.name for log in logs] == sorted(log.name for log in logs)
    log = next(log for log in logs if log.name == "step_kp32_bcd")
    assert log.kind == "bench" and log.trajectory == "step" and log.p_gain.tolist() == [32.0]
    assert log.bench.mass == pytest.approx(1.2) and log.goal.shape == (400, 1)
    assert not log.torque_enable[-1, 0] and log.torque_enable[0, 0]


def test_arm_log_round_trip(tmp_path):
    t = np.arange(50) / 30
    goal = np.tile(np.linspace(-0.1, 0.1, 6), (50, 1))
    path = save_arm_log(tmp_path / "episode0", t + 12.5, goal, goal + 0.01, p_gain=np.full(6, 16.0),
                        trajectory="pick")
    assert path.name == "episode0.npz"
    log = load_log(path)
    assert log.kind == "arm" and log.joint_names == JOINT_NAMES and log.trajectory == "pick"
    assert log.t[0] == 0.0 and log.t[-1] == pytest.approx(49 / 30)  # times start at zero
    np.testing.assert_allclose(log.pos, goal + 0.01)
    assert log.torque_enable.all()


def test_lerobot_dataset_episodes_are_arm_logs():
    """A dataset recorded through the stack: action = goal, observation.state = present (rad)."""
    from so101lab.datasets.reader import LeRobotDataset

    root = Path(__file__).parent / "fixtures" / "lerobot_dataset"
    logs = load_logs(root)
    dataset = LeRobotDataset(root)
    assert len(logs) == dataset.num_episodes
    np.testing.assert_allclose(logs[1].goal, lerobot_to_radians(dataset.column("action", 1)), rtol=1e-6)
    state = dataset.column("observation.state", 1)
    np.testing.assert_allclose(logs[1].pos, lerobot_to_radians(state), rtol=1e-6)
    assert logs[1].kind == "arm" and logs[1].p_gain.tolist() == [16.0] * 6
    report, sims = evaluate(logs[:1], ServoParams())
    assert sims[0].shape == logs[0].pos.shape and math.isfinite(report["median_rms"])


def test_bad_logs_fail_clearly(tmp_path):
    np.savez(tmp_path / "odd.npz", t=np.arange(3.0), goal=np.zeros(3))
    with pytest.raises(ValueError, match=r"odd\.npz: neither a bench run .* nor an arm log"):
        load_log(tmp_path / "odd.npz")
    np.savez(tmp_path / "short.npz", t=np.arange(3.0), goal=np.zeros((3, 6)), present=np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"short: pos must have shape \(3, 6\)"):
        load_log(tmp_path / "short.npz")
    np.savez(tmp_path / "back.npz", t=np.array([0.0, 1.0, 0.5]), goal=np.zeros((3, 6)),
             present=np.zeros((3, 6)))
    with pytest.raises(ValueError, match="strictly increasing"):
        load_log(tmp_path / "back.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.npz files"):
        load_logs(empty)
    with pytest.raises(FileNotFoundError, match="neither a directory"):
        load_logs(tmp_path / "missing")


# ---- bench model and replay ----------------------------------------------------------------

def test_bench_pendulum_hangs_at_zero_with_gravity_torque_mgr_sin_q():
    model = bench_model([LIGHT, HEAVY])
    assert model.opt.timestep == pytest.approx(env_timestep())
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    data = mujoco.MjData(model)
    data.qpos[:] = [math.pi / 2, 0.5]
    mujoco.mj_forward(model, data)
    for i, (link, q) in enumerate(zip((LIGHT, HEAVY), (math.pi / 2, 0.5), strict=True)):
        # qfrc_bias is the gravity torque the actuator must cancel: m g r sin(q) for a centre of mass
        # at (-r, 0) in the link frame; the small y offset of the heavy link tilts it.
        lever = -link.com[0] * math.sin(q) - link.com[1] * math.cos(q)
        assert data.qfrc_bias[i] == pytest.approx(link.mass * 9.81 * lever, rel=1e-3)


def test_replay_reproduces_a_log_made_by_the_same_servo_and_not_others(bench_dir):
    logs = load_logs(bench_dir)
    report, _ = evaluate(logs, TRUTH)
    assert report["median_rms"] < 1e-9 and report["runs"] == 8
    assert set(report["per_trajectory"]) == {"step", "sine"} and set(report["per_p_gain"]) == {"8", "32"}
    slower = dataclasses.replace(TRUTH, latency=0.06)
    assert evaluate(logs, slower)[0]["median_rms"] > 0.01
    assert evaluate(logs, baseline_params())[0]["median_rms"] > 0.05


def test_split_by_p_gain(bench_dir):
    train, test = split_by_p_gain(load_logs(bench_dir), 32.0)
    assert {log.p_gain[0] for log in train} == {8.0} and {log.p_gain[0] for log in test} == {32.0}
    with pytest.raises(ValueError, match="P = 16 leaves 8 training and 0 test logs"):
        split_by_p_gain(load_logs(bench_dir), 16.0)


def _arm_log(params: ServoParams) -> ServoLog:
    """A 2 s SO-101 log around the ready pose whose `pos` is what `params` does."""
    t = np.arange(60) / 30
    home = lerobot_to_radians(np.array([0.0, -100.0, 60.0, 60.0, 0.0, 30.0]))
    goal = home + 0.3 * np.sin(2 * np.pi * 0.7 * t)[:, None] * np.array([1, 0.5, -0.5, 1, 1, 0.5])
    log = ServoLog("arm", "wave", t, goal, np.tile(home, (60, 1)), np.ones((60, 6), bool), np.full(6, 16.0),
                   JOINT_NAMES)
    log.pos = simulate([log], params)[0]
    return log


def test_arm_logs_replay_on_the_so101_and_fit(tmp_path):
    log = _arm_log(TRUTH)
    path = save_arm_log(tmp_path / "wave.npz", log.t, log.goal, log.pos, trajectory="wave")
    loaded = load_log(path)
    assert evaluate([loaded], TRUTH)[0]["median_rms"] < 1e-9
    assert evaluate([loaded], baseline_params())[0]["median_rms"] > 0.01
    start = dataclasses.replace(TRUTH, kp_per_p=0.8)
    result = fit([loaded], start, ("kp_per_p",), max_evaluations=30)
    assert result.params.kp_per_p == pytest.approx(TRUTH.kp_per_p, rel=0.02)


# ---- the fitter ----------------------------------------------------------------------------

def test_fit_recovers_known_parameters_from_bench_logs(bench_dir):
    logs = load_logs(bench_dir)
    fields = ("kp_per_p", "damping", "damping_off", "friction_load", "latency", "max_velocity")
    start = dataclasses.replace(TRUTH, **{f: getattr(START, f) for f in fields})
    result = fit(logs, start, fields, max_evaluations=120)
    assert result.cost < 1e-3 * result.initial_cost
    for field in fields:
        assert getattr(result.params, field) == pytest.approx(getattr(TRUTH, field), rel=0.05), field


def test_fit_rejects_unknown_fields_and_empty_data(bench_dir):
    with pytest.raises(ValueError, match=r"cannot fit \['stiffness'\]"):
        fit(load_logs(bench_dir), fields=("stiffness",))
    with pytest.raises(ValueError, match="no logs"):
        fit([])


# ---- so101lab sysid ------------------------------------------------------------------------

def test_cli_fit_then_evaluate(bench_dir, tmp_path, capsys):
    out = tmp_path / "servo.json"
    cli_main(["sysid", "fit", "--data", str(bench_dir), "--out", str(out), "--fields", "kp_per_p", "latency",
              "--train-p-gains", "8", "--max-evaluations", "40"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["train"]["runs"] == 4 and summary["held_out"]["runs"] == 4
    assert set(summary["params"]) == {f.name for f in dataclasses.fields(ServoParams)}
    fitted = ServoParams.load(out)
    assert fitted.kp_per_p == pytest.approx(summary["params"]["kp_per_p"])

    plots = tmp_path / "plots"
    cli_main(["sysid", "evaluate", "--data", str(bench_dir), "--params", str(out), "--plots", str(plots)])
    report = json.loads(capsys.readouterr().out)
    assert set(report["per_run"]) == {p.stem for p in bench_dir.glob("*.npz")}
    assert report["median_rms"] == pytest.approx(np.median(list(report["per_run"].values())))
    assert report["baseline"]["median_rms"] > report["median_rms"]
    for name in ("step.png", "sine.png", "errors.png", "report.json"):
        assert (plots / name).stat().st_size > 1000, name


# ---- the real STS3215 bench data -----------------------------------------------------------

needs_data = pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"STS3215 data set not at {REAL_DATA}")


@needs_data
def test_identified_defaults_reproduce_the_real_bench():
    logs = load_logs(REAL_DATA)
    assert len(logs) == 60
    report, _ = evaluate(logs, ServoParams())
    assert report["median_rms"] <= 0.05
    assert evaluate(logs, baseline_params())[0]["median_rms"] >= 0.15  # the textbook servo is far off


@needs_data
@pytest.mark.slow
def test_fit_on_p8_and_p32_generalises_to_p16():
    train, test = split_by_p_gain(load_logs(REAL_DATA), 16.0)
    result = fit(train, START)
    train_rms = evaluate(train, result.params)[0]["median_rms"]
    test_rms = evaluate(test, result.params)[0]["median_rms"]
    assert train_rms <= 0.05
    assert test_rms <= 1.5 * train_rms
