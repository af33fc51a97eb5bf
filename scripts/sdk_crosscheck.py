"""Drive a Feetech port with the vendor SDK (scservo_sdk) and LeRobot's FeetechMotorsBus; print JSON.

Run with the reference LeRobot venv against a running virtual arm (the project's own tests do this
in tests/test_real_sdk.py):

    so101lab virtual-arm &            # prints the port, e.g. /dev/pts/3
    /root/.cache/lerobot-ref/bin/python scripts/sdk_crosscheck.py /dev/pts/3 [calibration.json]

It only uses the vendor's code, so agreement with the virtual arm's registers checks our
emulator (and thus our bus, tested against the same emulator) against the real protocol stack.
"""

from __future__ import annotations

import json
import sys


def main(port: str, calibration: str | None = None) -> dict:
    import scservo_sdk as scs
    from lerobot.motors import Motor, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    names = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    modes = {n: MotorNormMode.RANGE_0_100 if n == "gripper" else MotorNormMode.DEGREES for n in names}
    motors = {n: Motor(i + 1, "sts3215", modes[n]) for i, n in enumerate(names)}
    out: dict = {}
    if calibration:
        # Load our calibration file exactly as LeRobot's robots do and read normalised positions.
        import draccus
        from lerobot.motors import MotorCalibration

        with open(calibration) as f, draccus.config_type("json"):
            cal = draccus.load(dict[str, MotorCalibration], f)
        bus = FeetechMotorsBus(port, motors, calibration=cal)
        bus.connect()
        out["lerobot_is_calibrated"] = bus.is_calibrated
        out["lerobot_normalised"] = bus.sync_read("Present_Position")
        bus.disconnect(disable_torque=True)
        return out

    ph = scs.PortHandler(port)
    pk = scs.PacketHandler(0)
    assert ph.openPort() and ph.setBaudRate(1_000_000)
    model, comm, err = pk.ping(ph, 1)
    out["sdk_ping"] = [model, comm, err]
    pos, comm, err = pk.read2ByteTxRx(ph, 2, 56)
    out["sdk_read_present_2"] = [pos, comm, err]
    comm, err = pk.write1ByteTxRx(ph, 3, 21, 16)  # P_Coefficient
    out["sdk_write_p_3"] = [comm, err]
    group = scs.GroupSyncRead(ph, pk, 56, 2)
    for i in range(1, 7):
        group.addParam(i)
    out["sdk_sync_read_comm"] = group.txRxPacket()
    out["sdk_sync_read"] = {i: group.getData(i, 56, 2) for i in range(1, 7)}
    ph.closePort()

    bus = FeetechMotorsBus(port, motors)
    bus.connect()  # handshake: broadcast ping, model numbers and firmware versions
    out["lerobot_broadcast_ping"] = bus.broadcast_ping()
    out["lerobot_sync_read"] = bus.sync_read("Present_Position", normalize=False)
    bus.write("Homing_Offset", "shoulder_pan", -321, normalize=False)
    out["lerobot_homing_readback"] = bus.read("Homing_Offset", "shoulder_pan", normalize=False)
    out["lerobot_after_homing"] = bus.read("Present_Position", "shoulder_pan", normalize=False)
    bus.write("Torque_Enable", "elbow_flex", 1)
    bus.sync_write("Goal_Position", {"elbow_flex": 2100}, normalize=False)
    out["lerobot_goal_readback"] = bus.read("Goal_Position", "elbow_flex", normalize=False)
    bus.disconnect(disable_torque=True)
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
