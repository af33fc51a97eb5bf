"""Property-based fault injection: every fault gives the true value (after retries) or a clear error."""

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from so101lab.real.bus import FeetechBus
from so101lab.real.emulator import VirtualBusFirmware, VirtualMotor
from so101lab.real.errors import BusError
from so101lab.real.protocol import Packet, PacketParser
from so101lab.real.virtual_arm import Faults, VirtualArm

IDS = list(range(1, 7))


@pytest.fixture(scope="module")
def arm():
    with VirtualArm(seed=11) as arm:
        yield arm


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drop=st.floats(0, 0.6), corrupt=st.floats(0, 0.6), retries=st.integers(0, 4),
       register=st.sampled_from(["Model_Number", "Homing_Offset", "Max_Position_Limit", "P_Coefficient"]))
def test_faulty_replies_never_give_a_silently_wrong_value(arm, drop, corrupt, retries, register):
    arm.faults = Faults(drop_rate=drop, corrupt_rate=corrupt)
    try:
        truth = {m.id: m.get(register) for m in arm.motors}
        with FeetechBus(arm.port, retries=retries, timeout=0.01) as bus:
            for _ in range(3):
                try:
                    assert bus.sync_read(register, IDS) == truth
                except BusError as exc:  # a clear error naming a motor and the register
                    assert "motor" in str(exc) and register in str(exc)
                try:
                    assert bus.read(3, register) == truth[3]
                except BusError as exc:
                    assert "motor 3" in str(exc) and register in str(exc)
    finally:
        arm.faults = Faults()


def test_encoder_noise_stays_within_its_spread(arm):
    arm.faults = Faults(noise_ticks=2.0)
    try:
        with FeetechBus(arm.port) as bus:
            reads = [bus.read(1, "Present_Position") for _ in range(60)]
    finally:
        arm.faults = Faults()
    assert len(set(reads)) > 1 and max(reads) - min(reads) <= 20


@settings(max_examples=300)
@given(st.lists(st.builds(Packet, st.integers(0, 0xFE), st.integers(0, 255), st.binary(max_size=24)),
                max_size=6))
def test_emulated_firmware_survives_any_instruction(packets):
    motors = [VirtualMotor(f"m{i}", 2048) for i in range(3)]
    for i, m in enumerate(motors):
        m.set("ID", i + 1)
    firmware = VirtualBusFirmware(motors)
    for pkt in packets:
        for _, reply in firmware.handle(pkt, 1_000_000):
            assert PacketParser().feed(reply)  # every answer is a well-formed status packet
    for m in motors:
        assert 0 <= m.get("Present_Position") <= 4095


def test_garbage_on_the_wire_does_not_stop_the_emulator(arm):
    fd = os.open(arm.port, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, os.urandom(2000) + b"\xff\xff\xff\x01")
        time.sleep(0.05)
    finally:
        os.close(fd)
    with FeetechBus(arm.port) as bus:
        assert bus.scan() == {i: 777 for i in IDS}
