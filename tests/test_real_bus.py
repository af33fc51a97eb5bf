"""The Feetech bus against the virtual arm over a real pseudo-terminal."""

import errno
import os
import time

import pytest
import serial

from so101lab.real.bus import FeetechBus
from so101lab.real.emulator import RAD_PER_TICK
from so101lab.real.errors import MotorStatusError, MotorTimeoutError, PortError
from so101lab.real.virtual_arm import Faults, VirtualArm

IDS = list(range(1, 7))


@pytest.fixture
def arm():
    with VirtualArm(seed=1) as arm:
        yield arm


@pytest.fixture
def bus(arm):
    with FeetechBus(arm.port, names=dict(zip(IDS, ("pan", "lift", "elbow", "flex", "roll", "grip"),
                                          strict=True))) as bus:
        yield bus


def test_scan_finds_six_sts3215(bus):
    assert bus.scan() == {i: 777 for i in IDS}
    assert bus.ping(3) and not bus.ping(9)


def test_read_write_and_sync(bus, arm):
    bus.write(2, "P_Coefficient", 16)
    assert bus.read(2, "P_Coefficient") == 16 == arm.motors[1].get("P_Coefficient")
    bus.sync_write("Acceleration", {i: 200 + i for i in IDS})
    assert bus.sync_read("Acceleration", IDS) == {i: 200 + i for i in IDS}
    positions = bus.sync_read("Present_Position", IDS)
    assert all(0 <= v < 4096 for v in positions.values())


def test_homing_offset_shifts_present_position_with_sign_magnitude(bus, arm):
    before = bus.read(1, "Present_Position")
    bus.write(1, "Homing_Offset", -100)  # negative: exercises the bit-11 sign
    assert arm.motors[0].get("Homing_Offset") == -100
    assert bus.read(1, "Homing_Offset") == -100
    assert bus.read(1, "Present_Position") == before + 100  # Present = Actual - Homing_Offset


def test_torque_on_moves_the_joint_to_the_goal(bus, arm):
    start, q0 = bus.read(1, "Present_Position"), arm.joint_positions()[0]
    bus.write(1, "Torque_Enable", 1)
    bus.write(1, "Goal_Position", start + 200)
    deadline = time.monotonic() + 2
    while abs(bus.read(1, "Present_Position") - (start + 200)) > 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert abs(bus.read(1, "Present_Position") - (start + 200)) <= 3
    assert arm.joint_positions()[0] - q0 == pytest.approx(200 * RAD_PER_TICK, abs=0.01)


def test_wrong_baud_rate_times_out_naming_motor_register_and_baud(bus):
    bus.set_baudrate(115_200)
    with pytest.raises(MotorTimeoutError, match=r"motor 2 \(lift\).*Present_Position.*115200 baud"):
        bus.read(2, "Present_Position")


def test_missing_motor_is_named_in_sync_read():
    with VirtualArm(faults=Faults(missing={"elbow_flex"})) as arm, FeetechBus(arm.port, retries=1) as bus:
        assert set(bus.broadcast_ping()) == {1, 2, 4, 5, 6}
        with pytest.raises(MotorTimeoutError, match="motor 3 did not answer sync-reading Present_Position"):
            bus.sync_read("Present_Position", IDS)


@pytest.mark.parametrize("fault", [Faults(drop_rate=0.3), Faults(corrupt_rate=0.3)])
def test_dropped_or_corrupted_replies_are_retried_never_wrong(fault):
    with VirtualArm(faults=fault, seed=3) as arm, FeetechBus(arm.port, retries=8, timeout=0.02) as bus:
        truth = {m.id: m.get("Model_Number") for m in arm.motors}
        for _ in range(30):
            assert bus.sync_read("Model_Number", IDS) == truth
        assert bus.stats["retries"] > 0


def test_persistent_drops_give_a_clear_error_after_bounded_retries():
    with VirtualArm(faults=Faults(drop_rate=1.0)) as arm, \
            FeetechBus(arm.port, retries=2, timeout=0.01) as bus:
        start = time.monotonic()
        with pytest.raises(MotorTimeoutError, match="after 3 tries"):
            bus.read(4, "Present_Position")
        assert time.monotonic() - start < 0.5


def test_overload_bit_raises_status_error_naming_motor():
    with VirtualArm(faults=Faults(overload={"gripper"})) as arm, FeetechBus(arm.port) as bus:
        with pytest.raises(MotorStatusError, match="motor 6 reported OVERLOAD while reading Present_Load"):
            bus.read(6, "Present_Load")
        assert bus.read(6, "Present_Load", check_status=False) == 0  # torque off: no drive


def test_present_load_is_the_servo_models_drive():
    """A servo pushing against its joint limit at full drive reports 1000, not a saturated 1023."""
    with VirtualArm(seed=2) as arm, FeetechBus(arm.port) as bus:
        elbow = arm.motor("elbow_flex")
        beyond = bus.read(3, "Present_Position") + round(0.9 / RAD_PER_TICK)  # the joint stops 0.9 rad short
        bus.write(3, "Torque_Enable", 1)
        bus.write(3, "Goal_Position", beyond)
        time.sleep(1.0)
        load = bus.read(3, "Present_Load")
        effort = arm.physics.state()[2][2]
        assert abs(effort) == pytest.approx(arm.physics.stall_torque, rel=0.01), effort
        assert abs(load) == pytest.approx(1000, abs=10), (load, elbow.get("Present_Position"))


def test_read_only_and_out_of_range_writes_are_refused(bus):
    with pytest.raises(Exception, match="Present_Position is read-only"):
        bus.write(1, "Present_Position", 5)
    with pytest.raises(ValueError, match=r"motor 1 \(pan\).*Homing_Offset"):
        bus.write(1, "Homing_Offset", 5000)


def test_port_errors_are_actionable(arm, monkeypatch):
    with pytest.raises(PortError, match=r"does not exist.*find-port"):
        FeetechBus("/dev/does-not-exist")
    with FeetechBus(arm.port), pytest.raises(PortError, match="busy"):
        FeetechBus(arm.port)

    def denied(*args, **kwargs):
        raise serial.SerialException(errno.EACCES, "could not open port: [Errno 13] Permission denied")

    monkeypatch.setattr(serial, "Serial", denied)
    with pytest.raises(PortError, match=r"dialout.*udev"):
        FeetechBus(arm.port)


def test_emulator_holds_no_client_state_between_connections(arm):
    for _ in range(3):
        with FeetechBus(arm.port) as bus:
            assert bus.read(1, "ID") == 1
    assert os.path.exists(arm.port)
