"""The firmware side of the virtual SO-101: STS3215 register memory and instruction handling.

No I/O and no physics here: `VirtualMotor` is one servo's control table with its write side
effects (torque enable holds the pose, EEPROM persistence under Lock, position limits), and
`VirtualBusFirmware` answers instruction packets the way a chain of motors on one wire does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from so101lab.real.protocol import BROADCAST_ID, Instruction, Packet, StatusError, status
from so101lab.real.registers import (
    BAUD_FROM_CODE,
    CONTROL_TABLE,
    EEPROM_END,
    STS3215_MODEL_NUMBER,
    TICKS_PER_TURN,
    Register,
    decode_value,
    encode_value,
)

RAD_PER_TICK = 2 * math.pi / TICKS_PER_TURN

# Factory values of an STS3215 (those not listed are 0).
FACTORY: dict[str, int] = {
    "Firmware_Major_Version": 3, "Firmware_Minor_Version": 10, "Model_Number": STS3215_MODEL_NUMBER,
    "ID": 1, "Baud_Rate": 0, "Return_Delay_Time": 0, "Response_Status_Level": 1,
    "Min_Position_Limit": 0, "Max_Position_Limit": 4095, "Max_Temperature_Limit": 70,
    "Max_Voltage_Limit": 140, "Min_Voltage_Limit": 40, "Max_Torque_Limit": 1000, "Phase": 12,
    "Unloading_Condition": 44, "LED_Alarm_Condition": 47, "P_Coefficient": 32, "D_Coefficient": 32,
    "Minimum_Startup_Force": 16, "CW_Dead_Zone": 1, "CCW_Dead_Zone": 1, "Protection_Current": 500,
    "Angular_Resolution": 1, "Protective_Torque": 20, "Protection_Time": 200, "Overload_Torque": 80,
    "Torque_Limit": 1000, "Lock": 1, "Present_Voltage": 120, "Present_Temperature": 28,
    "Maximum_Acceleration": 0,
}
_BY_ADDRESS: dict[int, Register] = {r.address: r for r in CONTROL_TABLE.values()}


@dataclass
class VirtualMotor:
    """One STS3215: its memory, and where its encoder reads zero relative to the joint's zero."""

    name: str
    zero_tick: int  # raw encoder reading when the joint is at 0 rad (set by assembly)
    memory: bytearray = field(default_factory=lambda: bytearray(256))
    flash: bytearray = field(default_factory=lambda: bytearray(EEPROM_END))
    error_bits: int = 0  # injected hardware errors reported in every status packet
    connected: bool = True

    def __post_init__(self) -> None:
        for name, value in FACTORY.items():
            self.set(name, value)
        self.flash[:] = self.memory[:EEPROM_END]

    # -- registers --------------------------------------------------------------------------

    def get(self, name: str) -> int:
        r = CONTROL_TABLE[name]
        return decode_value(r, bytes(self.memory[r.address : r.address + r.size]))

    def set(self, name: str, value: int) -> None:
        r = CONTROL_TABLE[name]
        self.memory[r.address : r.address + r.size] = encode_value(r, value)

    @property
    def id(self) -> int:
        return self.memory[CONTROL_TABLE["ID"].address]

    @property
    def baudrate(self) -> int:
        return BAUD_FROM_CODE.get(self.get("Baud_Rate"), -1)

    @property
    def torque_on(self) -> bool:
        return bool(self.get("Torque_Enable")) and not self.error_bits & StatusError.OVERLOAD

    def power_cycle(self) -> None:
        """EEPROM written while Lock was 1 is lost; RAM returns to factory values."""
        self.memory[:EEPROM_END] = self.flash
        for name in ("Torque_Enable", "Acceleration", "Goal_Position", "Goal_Velocity", "Lock"):
            self.set(name, FACTORY.get(name, 0))

    def write(self, address: int, data: bytes) -> None:
        """A host write: read-only bytes are ignored, side effects applied as the firmware does."""
        was_on = self.get("Torque_Enable")
        for offset, byte in enumerate(data):
            addr = address + offset
            reg = _owner(addr)
            if addr > 255 or (reg is not None and reg.read_only):
                continue
            self.memory[addr] = byte
        if not was_on and self.get("Torque_Enable"):
            self.set("Goal_Position", self.get("Present_Position"))  # hold the present pose
        if address < EEPROM_END and self.get("Lock") == 0:
            self.flash[:] = self.memory[:EEPROM_END]

    # -- physics link -----------------------------------------------------------------------

    def update_present(self, q: float, qd: float, effort: float, stall_torque: float, noise_ticks: float = 0.0,
                       rng: np.random.Generator | None = None) -> None:
        """Write the joint state (rad, rad/s, N m) into the Present_* registers.

        Present_Load is the drive as a fraction of full drive in 0.1 %: 1000 at ``stall_torque`` (N m),
        the servo model's own force limit, so the register and the physics cannot disagree.
        """
        actual = self.zero_tick + float(q) / RAD_PER_TICK
        if noise_ticks and rng is not None:
            actual += float(rng.normal(0.0, noise_ticks))
        present = round(actual) - self.get("Homing_Offset")
        self.set("Present_Position", present % TICKS_PER_TURN)
        speed = round(float(qd) / RAD_PER_TICK)
        self.set("Present_Velocity", max(-32767, min(32767, speed)))
        load = round(float(effort) / stall_torque * 1000)
        self.set("Present_Load", max(-1023, min(1023, load)))
        self.set("Present_Current", min(65535, abs(load) * 2))
        self.set("Moving", int(abs(speed) > 10))

    def target(self) -> float:
        """The goal as a joint angle (rad), clipped to the position limits like the firmware."""
        goal = self.get("Goal_Position")
        lo, hi = self.get("Min_Position_Limit"), self.get("Max_Position_Limit")
        if lo or hi:
            goal = min(max(goal, lo), hi)
        return (goal + self.get("Homing_Offset") - self.zero_tick) * RAD_PER_TICK

    def joint_angle(self, present_ticks: int) -> float:
        """Joint angle (rad) that reads ``present_ticks`` under the current homing offset."""
        return (present_ticks + self.get("Homing_Offset") - self.zero_tick) * RAD_PER_TICK


def _owner(address: int) -> Register | None:
    for start in range(address, max(address - 2, -1), -1):
        r = _BY_ADDRESS.get(start)
        if r is not None and start + r.size > address:
            return r
    return None


class VirtualBusFirmware:
    """The motors on one wire answering instruction packets (ids and baud rates can change)."""

    def __init__(self, motors: list[VirtualMotor]):
        self.motors = motors
        self._registered: dict[int, tuple[int, bytes]] = {}  # REG_WRITE awaiting ACTION

    def listening(self, baudrate: int) -> list[VirtualMotor]:
        return [m for m in self.motors if m.connected and m.baudrate == baudrate]

    def handle(self, pkt: Packet, baudrate: int) -> list[tuple[VirtualMotor, bytes]]:
        """Apply one instruction; return the (motor, status packet) replies in wire order."""
        motors = self.listening(baudrate)
        instr, p = pkt.code, pkt.params
        if instr == Instruction.SYNC_WRITE:
            if pkt.id != BROADCAST_ID or len(p) < 2 or p[1] == 0:
                return []
            addr, size = p[0], p[1]
            for i in range(2, len(p) - size + 1, size + 1):
                for m in motors:
                    if m.id == p[i]:
                        m.write(addr, p[i + 1 : i + 1 + size])
            return []
        if instr == Instruction.SYNC_READ:
            if pkt.id != BROADCAST_ID or len(p) < 2 or p[1] == 0:
                return []
            addr, size = p[0], p[1]
            replies = []
            for motor_id in p[2:]:
                for m in motors:
                    if m.id == motor_id:
                        replies.append((m, status(m.id, m.error_bits, bytes(m.memory[addr : addr + size]))))
            return replies
        targets = sorted(motors, key=lambda m: m.id) if pkt.id == BROADCAST_ID else [
            m for m in motors if m.id == pkt.id]
        replies = []
        for m in targets:
            reply_id = m.id  # answers carry the id the packet was addressed to, even after an ID write
            params = b""
            if instr == Instruction.PING:
                pass
            elif instr == Instruction.READ and len(p) == 2 and p[1] and p[0] + p[1] <= 256:
                params = bytes(m.memory[p[0] : p[0] + p[1]])
            elif instr == Instruction.WRITE and len(p) >= 2:
                m.write(p[0], p[1:])
            elif instr == Instruction.REG_WRITE and len(p) >= 2:
                self._registered[id(m)] = (p[0], bytes(p[1:]))
            elif instr == Instruction.ACTION:
                if id(m) in self._registered:
                    m.write(*self._registered.pop(id(m)))
            else:
                continue  # malformed: a real motor stays silent
            if pkt.id != BROADCAST_ID or instr == Instruction.PING:
                replies.append((m, status(reply_id, m.error_bits, params)))
        return replies
