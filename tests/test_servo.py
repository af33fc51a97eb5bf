"""The servo model: parameter files, and what `Servos` does to a real MuJoCo pendulum."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import math

import mujoco
import numpy as np
import pytest

from so101lab.envs import firmware
from so101lab.envs.servo import ServoParams, Servos
from so101lab.sysid.bench import bench_model, env_timestep, joint_name
from so101lab.sysid.logs import BenchLink

DT = env_timestep()
# A 0.5 kg pendulum with its centre of mass 0.1 m from the axis: gravity torque 0.49 sin(q) N m.
LINK = BenchLink(np.array([-0.1, 0.0, 0.0]), 0.5, np.array([1e-4, 1e-4, 1e-4, 0, 0, 0]))
PLAIN = ServoParams(kp_per_p=1.0, kv=0.0, force_limit=3.0, damping=0.5, damping_off=0.05, armature=0.01,
                    frictionloss=0.0, friction_load=0.0, latency=0.0, max_velocity=math.inf)


def make(params: ServoParams = PLAIN, n: int = 1, **kwargs) -> tuple[mujoco.MjModel, mujoco.MjData, Servos]:
    model = bench_model([LINK] * n)
    data = mujoco.MjData(model)
    servos = Servos(model, tuple(joint_name(i) for i in range(n)), params, DT, **kwargs)
    mujoco.mj_forward(model, data)
    servos.reset(data)
    return model, data, servos


def run(model, data, servos, seconds: float) -> np.ndarray:
    """Step the servo firmware and physics; the joint angles after every step."""
    out = []
    for _ in range(round(seconds / DT)):
        servos.substep(data)
        mujoco.mj_step(model, data)
        out.append(data.qpos[servos.qpos_adr].copy())
    return np.array(out)


# ---- ServoParams ---------------------------------------------------------------------------

def test_params_round_trip_json_with_unlimited_velocity(tmp_path):
    params = dataclasses.replace(PLAIN, latency=0.03)
    params.save(tmp_path / "servo.json")
    raw = json.loads((tmp_path / "servo.json").read_text())
    assert raw["max_velocity"] is None  # plain JSON, no Infinity
    assert ServoParams.load(tmp_path / "servo.json") == params
    limited = dataclasses.replace(params, max_velocity=4.5)
    limited.save(tmp_path / "limited.json")
    assert ServoParams.load(tmp_path / "limited.json").max_velocity == 4.5


def test_params_files_missing_fields_take_defaults_unknown_fields_fail(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"p_gain": 32.0, "damping": 1.0}))
    old = ServoParams.load(tmp_path / "old.json")
    assert old.p_gain == 32.0 and old.damping == 1.0 and old.armature == ServoParams().armature
    (tmp_path / "bad.json").write_text(json.dumps({"p_gain": 16.0, "stiffness": 3.0}))
    with pytest.raises(ValueError, match=r"bad\.json: unknown servo parameters \['stiffness'\]"):
        ServoParams.load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        ServoParams.load(tmp_path / "list.json")


@pytest.mark.parametrize(("field", "value"), [("damping", -0.1), ("armature", float("nan")),
                                             ("latency", float("inf")), ("p_gain", 0.0), ("kp_per_p", "1")])
def test_params_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ServoParams(**{field: value})


def test_kp_scales_with_firmware_p():
    assert ServoParams(p_gain=32.0).kp == pytest.approx(2 * ServoParams(p_gain=16.0).kp)


def test_defaults_are_identified_not_textbook():
    """The defaults are the bench fit (docs/sysid.md), far softer than the textbook 998 N m/rad."""
    p = ServoParams()
    assert 5.0 < p.kp < 100.0
    assert 0.0 < p.latency < 0.1 and math.isfinite(p.max_velocity)
    assert p.damping_off < p.damping  # no back-EMF braking with torque off


# ---- Servos on a real MuJoCo pendulum ----------------------------------------------------

def test_writes_mujoco_elements_and_per_joint_p_gain():
    model, _, servos = make(n=2, p_gain=np.array([8.0, 32.0]), torque_limit=np.array([1.0, 0.5]))
    np.testing.assert_allclose(model.actuator_gainprm[servos.actuator_ids, 0], [8.0, 32.0])
    np.testing.assert_allclose(model.actuator_biasprm[servos.actuator_ids, 1], [-8.0, -32.0])
    np.testing.assert_allclose(model.actuator_forcerange[servos.actuator_ids], [[-3, 3], [-1.5, 1.5]])
    np.testing.assert_allclose(model.dof_damping[servos.dof_adr], 0.5)
    np.testing.assert_allclose(model.dof_armature[servos.dof_adr], 0.01)


def test_bad_per_joint_arrays_and_commands_are_rejected():
    model = bench_model([LINK])
    with pytest.raises(ValueError, match="p_gain must be 1 positive"):
        Servos(model, (joint_name(0),), PLAIN, DT, p_gain=np.array([8.0, 16.0]))
    with pytest.raises(ValueError, match="torque_limit must be 1 positive"):
        Servos(model, (joint_name(0),), PLAIN, DT, torque_limit=np.array([0.0]))
    model, data, servos = make()
    with pytest.raises(ValueError, match="targets must be 1 finite"):
        servos.command(data, np.array([np.nan]))


def test_sag_under_gravity_is_torque_over_kp_and_shrinks_with_p():
    sags = []
    for p_gain in (8.0, 32.0):
        model, data, servos = make(dataclasses.replace(PLAIN, p_gain=p_gain))
        servos.command(data, np.array([math.pi / 2]))
        q = run(model, data, servos, 3.0)[-1, 0]
        sag = math.pi / 2 - q
        assert sag == pytest.approx(0.5 * 9.81 * 0.1 * math.sin(q) / p_gain, rel=0.02)
        sags.append(sag)
    assert sags[1] < sags[0] / 3


def test_force_limit_caps_the_drive():
    model, data, servos = make(dataclasses.replace(PLAIN, p_gain=100.0, force_limit=0.8))
    servos.command(data, np.array([2.0]))
    peak = 0.0
    for _ in range(200):
        servos.substep(data)
        mujoco.mj_step(model, data)
        peak = max(peak, abs(data.actuator_force[0]))
    assert peak == pytest.approx(0.8)


def test_latency_delays_motion_and_is_continuous_in_the_latency():
    finals = []
    for latency in (0.05, 0.05 + DT / 2, 0.05 + DT):
        model, data, servos = make(dataclasses.replace(PLAIN, latency=latency))
        servos.command(data, np.array([0.1]))  # small enough that the drive does not saturate
        q = run(model, data, servos, 0.2)[:, 0]
        assert np.all(np.abs(q[: int(0.05 / DT) - 1]) < 1e-6)  # nothing before the command arrives
        assert q[-1] > 0.05
        finals.append(q[int(0.1 / DT)])
    assert finals[0] > finals[1] > finals[2]  # half a step of latency gives an in-between response


def test_slew_limits_goal_speed():
    model, data, servos = make(dataclasses.replace(PLAIN, max_velocity=2.0))
    servos.command(data, np.array([1.0]))
    ctrl = []
    for _ in range(round(0.3 / DT)):
        servos.substep(data)
        ctrl.append(data.ctrl[0])
        mujoco.mj_step(model, data)
    assert np.max(np.diff(ctrl)) == pytest.approx(2.0 * DT)
    assert ctrl[-1] == pytest.approx(0.6, abs=3 * DT)


def test_torque_off_swings_free_and_torque_on_holds_present_pose():
    model, data, servos = make()
    data.qpos[servos.qpos_adr] = 1.0
    mujoco.mj_forward(model, data)
    servos.reset(data)
    assert run(model, data, servos, 0.5)[-1, 0] == pytest.approx(1.0, abs=0.1)  # held (minus sag)
    servos.set_torque(data, False)
    assert model.actuator_gainprm[0, 0] == 0 and model.dof_damping[servos.dof_adr[0]] == 0.05
    q = run(model, data, servos, 1.0)[:, 0]
    assert q.min() < -0.3  # swung through the bottom: no drive, little damping
    servos.set_torque(data, True)
    present = data.qpos[servos.qpos_adr[0]]
    servos.substep(data)
    assert data.ctrl[0] == pytest.approx(present)  # holds where it is, no jump to an old goal
    assert model.dof_damping[servos.dof_adr[0]] == 0.5


def test_load_dependent_friction_follows_the_drive_torque():
    params = dataclasses.replace(PLAIN, frictionloss=0.02, friction_load=0.3)
    model, data, servos = make(params)
    servos.command(data, np.array([1.2]))
    run(model, data, servos, 1.0)
    servos.substep(data)
    expected = 0.02 + 0.3 * abs(data.actuator_force[0])
    assert abs(data.actuator_force[0]) > 0.3
    assert model.dof_frictionloss[servos.dof_adr[0]] == pytest.approx(expected)


def test_gear_friction_holds_a_load_the_drive_lets_go_of():
    """Hysteresis: lowering the goal a little does not lower the loaded pendulum."""
    results = {}
    for load in (0.0, 0.8):
        model, data, servos = make(dataclasses.replace(PLAIN, frictionloss=0.02, friction_load=load,
                                                       p_gain=8.0))
        servos.command(data, np.array([1.2]))
        held = run(model, data, servos, 2.0)[-1, 0]
        servos.command(data, np.array([1.18]))
        results[load] = held - run(model, data, servos, 2.0)[-1, 0]
    assert results[0.0] > 0.015
    assert results[0.8] < results[0.0] / 3


def test_compiled_firmware_steps_exactly_as_the_python_reference():
    """`step` (the C firmware) gives the trajectory of `substep` + `mj_step` per physics step, on the
    SO-101 with the identified servo: small moves, slews over several steps, a torque-off stretch."""
    from so101lab.contract import JOINT_NAMES, lerobot_to_radians
    from so101lab.envs.base import HOME_POSE
    from so101lab.envs.scene import ASSETS

    model = mujoco.MjModel.from_xml_path(str(ASSETS / "pick_cube.xml"))
    n_substeps = round((1 / 30) / model.opt.timestep)
    rng = np.random.default_rng(0)
    targets = HOME_POSE + np.cumsum(rng.normal(0, 2, (60, 6)), axis=0)
    targets[20] += 40.0  # jumps the slew limit spreads over several control steps
    targets[40] -= 40.0
    runs = []
    for reference in (False, True):
        data = mujoco.MjData(model)
        servos = Servos(model, JOINT_NAMES, ServoParams(), model.opt.timestep)
        if not servos.compiled:
            pytest.skip("the C firmware was not built (no compiler at install time)")
        data.qpos[servos.qpos_adr] = lerobot_to_radians(HOME_POSE)
        mujoco.mj_forward(model, data)
        servos.reset(data)
        qpos = []
        for i, target in enumerate(lerobot_to_radians(targets)):
            servos.set_torque(data, not 30 <= i < 35)
            servos.command(data, target, sent_at=data.time + (DT / 3 if i % 7 == 0 else 0.0))
            if reference:
                for _ in range(n_substeps):
                    servos.substep(data)
                    mujoco.mj_step(model, data)
            else:
                servos.step(data, n_substeps)
            qpos.append(np.concatenate([data.qpos, data.ctrl, model.dof_frictionloss]))
        runs.append(np.array(qpos))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.ptp(runs[0][:, servos.qpos_adr], axis=0).min() > 0.1  # every joint really moved


def test_compiled_firmware_checks_its_struct_layout_at_load():
    """The ctypes mirrors are compared with the C structs' sizeof/offsetof, so a one-sided edit fails."""
    if firmware._LIBRARIES is None:
        pytest.skip("the C firmware was not built (no compiler at install time)")
    lib = firmware._LIBRARIES[0]
    assert firmware.layout_mismatch(lib) is None

    class OneSided(ctypes.Structure):  # a field added in Python only
        _fields_ = [*firmware._Firmware._fields_[:9], ("added", ctypes.c_int32), *firmware._Firmware._fields_[9:]]

    assert "C struct layout" in firmware.layout_mismatch(lib, (OneSided, firmware._Control))


def test_without_mujocos_private_struct_address_the_python_firmware_runs(monkeypatch):
    monkeypatch.delattr(mujoco.MjModel, "_address")  # private API a future mujoco may drop
    _, data, servos = make()
    assert not servos.compiled
    servos.command(data, np.array([0.3]))
    servos.step(data, round(0.5 / DT))
    assert data.qpos[servos.qpos_adr][0] == pytest.approx(0.3, abs=0.05)


def test_commands_in_flight_are_bounded():
    _, data, servos = make(capacity=3)
    for _ in range(3):
        servos.command(data, np.array([0.1]))
    with pytest.raises(RuntimeError, match="3 servo commands are in flight"):
        servos.command(data, np.array([0.2]))
