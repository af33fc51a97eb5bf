"""One-time procedures on a new arm: assigning motor ids/baud rates and calibrating.

Both are interactive on hardware; here they take callables (``ready`` to wait for the user,
``stop`` to end range recording) so the launchers supply keyboard prompts and tests supply a
virtual hand.
"""

from __future__ import annotations

from collections.abc import Callable

from so101lab.contract import JOINT_NAMES
from so101lab.real.arm import IDS, MOTOR_IDS
from so101lab.real.bus import DEFAULT_BAUDRATE, FeetechBus
from so101lab.real.calibration import Calibration, MotorCalibration, validate
from so101lab.real.errors import CalibrationError, MotorsNotFoundError
from so101lab.real.registers import BAUD_RATES, MAX_TICK, STS3215_MODEL_NUMBER

HALF_TURN = MAX_TICK // 2  # 2047: the reading calibration gives the middle pose
FULL_TURN_JOINTS = ("wrist_roll",)  # rotate freely: their range is the whole turn


def find_single_motor(bus: FeetechBus, name: str) -> tuple[int, int]:
    """(baud rate, id) of the only motor on the bus, trying every baud rate."""
    for baud in BAUD_RATES:
        bus.set_baudrate(baud)
        found = bus.broadcast_ping(quiet=0.02)
        if len(found) > 1:
            raise MotorsNotFoundError(f"more than one motor answers at {baud} baud (ids {sorted(found)}): "
                                      f"connect the board to the {name} motor only")
        if found:
            motor_id = next(iter(found))
            model = bus.read(motor_id, "Model_Number", check_status=False)
            if model != STS3215_MODEL_NUMBER:
                raise MotorsNotFoundError(f"the motor found (id {motor_id}, {baud} baud) has model {model}, "
                                          f"not an STS3215 ({STS3215_MODEL_NUMBER})")
            return baud, motor_id
    raise MotorsNotFoundError(f"no motor answered at any baud rate on {bus.port}: connect the {name} motor "
                              "to the board and power the board")


def setup_motor(bus: FeetechBus, name: str, baudrate: int = DEFAULT_BAUDRATE) -> tuple[int, int]:
    """Give the single connected motor its SO-101 id and the bus baud rate; returns (old baud, old id)."""
    if name not in MOTOR_IDS:
        raise ValueError(f"unknown joint {name!r}; expected one of {JOINT_NAMES}")
    if baudrate not in BAUD_RATES:
        raise ValueError(f"baud rate {baudrate} is not one an STS3215 supports: {sorted(BAUD_RATES)}")
    old_baud, old_id = find_single_motor(bus, name)
    target = MOTOR_IDS[name]
    bus.write(old_id, "Torque_Enable", 0, check_status=False)
    bus.write(old_id, "Lock", 0)  # EEPROM writes persist only while unlocked
    if old_id != target:
        bus.write(old_id, "ID", target)
    if old_baud != baudrate:
        bus.write(target, "Baud_Rate", BAUD_RATES[baudrate])
    bus.set_baudrate(baudrate)
    if bus.read(target, "ID") != target:
        raise MotorsNotFoundError(f"the {name} motor did not take id {target}")
    return old_baud, old_id


def calibrate(bus: FeetechBus, ready: Callable[[str], None], stop: Callable[[], bool],
              on_sample: Callable[[dict[int, int]], None] | None = None) -> Calibration:
    """LeRobot's procedure: homing offsets so the middle pose reads 2047, then recorded ranges.

    ``ready(message)`` returns once the user has done what the message asks; ``stop()`` is polled
    between position samples while the user moves every joint through its range.
    """
    bus.sync_write("Torque_Enable", dict.fromkeys(IDS, 0))
    for i in IDS:
        bus.write(i, "Torque_Enable", 0)
        bus.write(i, "Lock", 0)
        bus.write(i, "Operating_Mode", 0)
    ready("Move the arm to the middle of its range of motion (the 'L' pose), then press Enter.")
    for i in IDS:
        bus.write(i, "Homing_Offset", 0)
    actual = bus.sync_read("Present_Position", IDS)
    offsets = {i: actual[i] - HALF_TURN for i in IDS}
    for i in IDS:
        if not -2047 <= offsets[i] <= 2047:
            raise CalibrationError(f"{JOINT_NAMES[i - 1]} reads {actual[i]} ticks, too far from the middle "
                                   "to home; check the motor is mounted as in the assembly guide")
        bus.write(i, "Homing_Offset", offsets[i])
    ready("Move every joint except wrist_roll through its entire range of motion; press Enter when done.")
    lo = bus.sync_read("Present_Position", IDS)
    hi = dict(lo)
    while not stop():
        now = bus.sync_read("Present_Position", IDS)
        for i in IDS:
            lo[i], hi[i] = min(lo[i], now[i]), max(hi[i], now[i])
        if on_sample is not None:
            on_sample(now)
    cal = {}
    for name, i in MOTOR_IDS.items():
        rmin, rmax = (0, MAX_TICK) if name in FULL_TURN_JOINTS else (lo[i], hi[i])
        if rmin == rmax:
            raise CalibrationError(f"{name} did not move while ranges were recorded (stayed at {rmin} "
                                   "ticks); move it through its full range and calibrate again")
        cal[name] = MotorCalibration(id=i, drive_mode=0, homing_offset=offsets[i], range_min=int(rmin),
                                     range_max=int(rmax))
    cal = validate(cal)
    for c in cal.values():
        bus.write(c.id, "Min_Position_Limit", c.range_min)
        bus.write(c.id, "Max_Position_Limit", c.range_max)
    return cal

