"""Motor setup, calibration and the follower/leader arm against the virtual arm (real pty)."""

import json

import numpy as np
import pytest

from so101lab.contract import JOINT_NAMES, JOINT_RANGES_RAD, radians_to_lerobot
from so101lab.real.arm import MOTOR_IDS, SO101Arm
from so101lab.real.bus import FeetechBus
from so101lab.real.calibration import (
    MotorCalibration,
    load_calibration,
    save_calibration,
    ticks_to_units,
    units_to_ticks,
)
from so101lab.real.errors import CalibrationError, MotorsNotFoundError, MotorStatusError
from so101lab.real.setup import calibrate, setup_motor
from so101lab.real.virtual_arm import VirtualArm

IDS = list(range(1, 7))
LOW = np.array([JOINT_RANGES_RAD[n][0] for n in JOINT_NAMES])
HIGH = np.array([JOINT_RANGES_RAD[n][1] for n in JOINT_NAMES])


def calibrate_by_hand(arm: VirtualArm, bus: FeetechBus, steps: int = 24):
    """Run the calibration with a scripted hand: mid pose, then a sweep over every joint's range."""
    poses = iter(np.concatenate([np.linspace(0, LOW, steps // 2), np.linspace(LOW, HIGH, steps)]))

    def ready(message):
        if "middle" in message:
            arm.move_by_hand(dict(zip(JOINT_NAMES, np.zeros(6), strict=True)))

    def stop():
        pose = next(poses, None)
        if pose is None:
            return True
        arm.move_by_hand(dict(zip(JOINT_NAMES, pose, strict=True)))
        return False

    return calibrate(bus, ready, stop)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A virtual arm, calibrated once, and its calibration file."""
    with VirtualArm(seed=7) as arm:
        with FeetechBus(arm.port) as bus:
            cal = calibrate_by_hand(arm, bus)
        path = save_calibration(cal, tmp_path_factory.mktemp("cal") / "follower.json")
        yield arm, path


def test_setup_motors_one_at_a_time_from_factory_state():
    with VirtualArm(factory=True) as arm, FeetechBus(arm.port) as bus:
        arm.motor("wrist_flex").set("Baud_Rate", 4)  # a motor left at 115200 baud
        arm.connect_all()
        assert bus.broadcast_ping() == {1: 0}  # five factory motors answer as one id
        arm.connect_only("gripper")
        setup_motor(bus, "gripper")
        arm.connect_only("gripper", "wrist_roll")
        with pytest.raises(MotorsNotFoundError, match=r"more than one.*\[1, 6\].*wrist_roll motor only"):
            setup_motor(bus, "wrist_roll")
        for name in reversed(JOINT_NAMES):
            arm.connect_only(name)
            setup_motor(bus, name)
        arm.connect_all()
        for m in arm.motors:
            m.power_cycle()  # ids and baud were written unlocked: they survive a power cycle
        bus.set_baudrate(1_000_000)
        assert bus.broadcast_ping() == {i: 0 for i in IDS}
        assert [m.id for m in arm.motors] == IDS
        arm.connect_only()
        with pytest.raises(MotorsNotFoundError, match="no motor answered at any baud rate"):
            setup_motor(bus, "gripper")


def test_calibration_file_has_lerobots_format_and_homing_semantics(calibrated):
    arm, path = calibrated
    raw = json.loads(path.read_text())
    assert list(raw) == list(JOINT_NAMES)
    for i, name in enumerate(JOINT_NAMES):
        assert list(raw[name]) == ["id", "drive_mode", "homing_offset", "range_min", "range_max"]
        assert raw[name]["id"] == i + 1 and raw[name]["drive_mode"] == 0
        # Homing puts the mid pose at 2047: offset = actual - 2047 with actual = the encoder zero.
        assert raw[name]["homing_offset"] == arm.motors[i].zero_tick - 2047
    assert raw["wrist_roll"]["range_min"] == 0 and raw["wrist_roll"]["range_max"] == 4095
    span = raw["shoulder_pan"]["range_max"] - raw["shoulder_pan"]["range_min"]
    assert span == pytest.approx((HIGH[0] - LOW[0]) * 4096 / (2 * np.pi), abs=2)
    assert load_calibration(path) == {n: MotorCalibration(**raw[n]) for n in JOINT_NAMES}
    shortcut = arm.calibration()  # what VirtualArm predicts the procedure records
    for name in JOINT_NAMES:
        assert shortcut[name].homing_offset == raw[name]["homing_offset"]
        assert abs(shortcut[name].range_min - raw[name]["range_min"]) <= 1
        assert abs(shortcut[name].range_max - raw[name]["range_max"]) <= 1


def test_follower_reads_sim_units_and_is_configured(calibrated):
    arm, path = calibrated
    q = np.array([0.3, -0.5, 0.8, -0.2, 1.0, 0.5])
    arm.move_by_hand(dict(zip(JOINT_NAMES, q, strict=True)))
    with SO101Arm(arm.port, path) as follower:
        np.testing.assert_allclose(follower.read(), radians_to_lerobot(q), atol=0.3)
        assert arm.torque_enabled().all()
        grip = arm.motor("gripper")
        assert (grip.get("Max_Torque_Limit"), grip.get("Protection_Current"), grip.get("Overload_Torque")) \
            == (500, 250, 25)
        assert [arm.motor(n).get("P_Coefficient") for n in JOINT_NAMES] == [16] * 6
        assert arm.motor("elbow_flex").get("D_Coefficient") == 32
    assert not arm.torque_enabled().any()


def test_goals_are_capped_relative_and_clipped_to_calibrated_limits(calibrated):
    arm, path = calibrated
    arm.move_by_hand(dict(zip(JOINT_NAMES, np.zeros(6), strict=True)))
    with SO101Arm(arm.port, path, max_relative_target=5.0) as follower:
        present = follower.read()
        sent = follower.send(present + np.array([20, -20, 3, 0, 0, 0]))
        np.testing.assert_allclose(sent - present, [5, -5, 3, 0, 0, 0], atol=0.2)
        follower.max_relative_target = None
        sent = follower.send(np.array([500, -500, 0, 0, 0, 150]))
        follower.read()  # the broadcast write has no answer: a read after it orders the check
        cal = follower.calibration
        assert arm.motor("shoulder_pan").get("Goal_Position") == cal["shoulder_pan"].range_max
        assert arm.motor("shoulder_lift").get("Goal_Position") == cal["shoulder_lift"].range_min
        assert sent[5] == pytest.approx(100.0)
        with pytest.raises(ValueError, match="finite"):
            follower.send(np.array([0, 0, np.nan, 0, 0, 0]))


def test_leader_is_read_only_with_torque_off(calibrated):
    arm, path = calibrated
    with SO101Arm(arm.port, path, role="leader") as leader:
        assert not arm.torque_enabled().any()
        leader.read()
        with pytest.raises(Exception, match="read-only"):
            leader.send(np.zeros(6))


def test_torque_is_off_after_an_exception_inside_the_session(calibrated):
    arm, path = calibrated
    with pytest.raises(RuntimeError, match="boom"), SO101Arm(arm.port, path) as follower:
        follower.send(follower.read())
        assert arm.torque_enabled().all()
        raise RuntimeError("boom")
    assert not arm.torque_enabled().any()


def test_torque_is_off_after_an_overload_error(calibrated):
    arm, path = calibrated
    with pytest.raises(MotorStatusError, match=r"motor 3 \(elbow_flex\) reported OVERLOAD"), \
            SO101Arm(arm.port, path) as follower:
        arm.faults.overload = {"elbow_flex"}
        try:
            follower.read()
        finally:
            arm.faults.overload = set()
    assert not any(m.get("Torque_Enable") for m in arm.motors)


def test_connect_errors_name_missing_motors_and_wrong_baud(calibrated, tmp_path):
    arm, path = calibrated
    arm.motor("wrist_flex").connected = False
    try:
        with pytest.raises(MotorsNotFoundError, match=r"wrist_flex \(id 4\).*answered: \[1, 2, 3, 5, 6\]"):
            SO101Arm(arm.port, path).connect()
    finally:
        arm.connect_all()
    with pytest.raises(MotorsNotFoundError, match=r"answer at 1000000 baud.*setup-motors"):
        SO101Arm(arm.port, path, baudrate=115_200).connect()
    assert not arm.torque_enabled().any()


def test_calibration_file_errors_are_specific(tmp_path):
    with pytest.raises(CalibrationError, match=r"does not exist.*so101lab calibrate"):
        load_calibration(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        load_calibration(tmp_path / "bad.json")
    entry = {"id": 1, "drive_mode": 0, "homing_offset": 0, "range_min": 10, "range_max": 20}
    (tmp_path / "short.json").write_text(json.dumps({"shoulder_pan": entry}))
    with pytest.raises(CalibrationError, match=r"joints missing.*shoulder_lift"):
        load_calibration(tmp_path / "short.json")
    full = {n: dict(entry, id=i + 1) for i, n in enumerate(JOINT_NAMES)}
    full["elbow_flex"]["range_max"] = 5
    (tmp_path / "range.json").write_text(json.dumps(full))
    with pytest.raises(CalibrationError, match="elbow_flex has range_min 10 and range_max 5"):
        load_calibration(tmp_path / "range.json")


def test_units_round_trip_through_ticks():
    cal = {n: MotorCalibration(i + 1, 0, 0, 1000, 3000) for i, n in enumerate(JOINT_NAMES)}
    units = np.array([10.0, -30.0, 0.0, 45.0, -90.0, 25.0])
    np.testing.assert_allclose(ticks_to_units(cal, units_to_ticks(cal, units)), units, atol=0.1)
    assert ticks_to_units(cal, np.full(6, 2000))[0] == 0.0  # middle of the range is 0 degrees
    assert MOTOR_IDS["gripper"] == 6
