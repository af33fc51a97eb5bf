"""The STS3215 control table: register addresses, sizes, sign-magnitude fields, value encoding.

One table serves both ends of the wire (the bus client and the virtual arm), so an address or a
sign bit can never disagree between them.
"""

from __future__ import annotations

from dataclasses import dataclass

TICKS_PER_TURN = 4096
MAX_TICK = TICKS_PER_TURN - 1
STS3215_MODEL_NUMBER = 777
EEPROM_END = 40  # addresses below this are EEPROM (persist only while Lock is 0)

# Baud rate (bit/s) -> value of the Baud_Rate register.
BAUD_RATES: dict[int, int] = {
    1_000_000: 0, 500_000: 1, 250_000: 2, 128_000: 3, 115_200: 4, 57_600: 5, 38_400: 6, 19_200: 7,
}
BAUD_FROM_CODE: dict[int, int] = {code: baud for baud, code in BAUD_RATES.items()}


@dataclass(frozen=True)
class Register:
    """One control-table entry; ``sign_bit`` is set for sign-magnitude fields."""

    name: str
    address: int
    size: int
    sign_bit: int | None = None
    read_only: bool = False

    @property
    def eeprom(self) -> bool:
        return self.address < EEPROM_END

    @property
    def min_value(self) -> int:
        return -((1 << self.sign_bit) - 1) if self.sign_bit is not None else 0

    @property
    def max_value(self) -> int:
        return (1 << self.sign_bit) - 1 if self.sign_bit is not None else (1 << (8 * self.size)) - 1


def _table(*regs: Register) -> dict[str, Register]:
    return {r.name: r for r in regs}


CONTROL_TABLE: dict[str, Register] = _table(
    Register("Firmware_Major_Version", 0, 1, read_only=True),
    Register("Firmware_Minor_Version", 1, 1, read_only=True),
    Register("Model_Number", 3, 2, read_only=True),
    Register("ID", 5, 1),
    Register("Baud_Rate", 6, 1),
    Register("Return_Delay_Time", 7, 1),
    Register("Response_Status_Level", 8, 1),
    Register("Min_Position_Limit", 9, 2),
    Register("Max_Position_Limit", 11, 2),
    Register("Max_Temperature_Limit", 13, 1),
    Register("Max_Voltage_Limit", 14, 1),
    Register("Min_Voltage_Limit", 15, 1),
    Register("Max_Torque_Limit", 16, 2),
    Register("Phase", 18, 1),
    Register("Unloading_Condition", 19, 1),
    Register("LED_Alarm_Condition", 20, 1),
    Register("P_Coefficient", 21, 1),
    Register("D_Coefficient", 22, 1),
    Register("I_Coefficient", 23, 1),
    Register("Minimum_Startup_Force", 24, 2),
    Register("CW_Dead_Zone", 26, 1),
    Register("CCW_Dead_Zone", 27, 1),
    Register("Protection_Current", 28, 2),
    Register("Angular_Resolution", 30, 1),
    Register("Homing_Offset", 31, 2, sign_bit=11),
    Register("Operating_Mode", 33, 1),
    Register("Protective_Torque", 34, 1),
    Register("Protection_Time", 35, 1),
    Register("Overload_Torque", 36, 1),
    Register("Torque_Enable", 40, 1),
    Register("Acceleration", 41, 1),
    Register("Goal_Position", 42, 2, sign_bit=15),
    Register("Goal_Time", 44, 2),
    Register("Goal_Velocity", 46, 2, sign_bit=15),
    Register("Torque_Limit", 48, 2),
    Register("Lock", 55, 1),
    Register("Present_Position", 56, 2, sign_bit=15, read_only=True),
    Register("Present_Velocity", 58, 2, sign_bit=15, read_only=True),
    Register("Present_Load", 60, 2, sign_bit=10, read_only=True),
    Register("Present_Voltage", 62, 1, read_only=True),
    Register("Present_Temperature", 63, 1, read_only=True),
    Register("Status", 65, 1, read_only=True),
    Register("Moving", 66, 1, read_only=True),
    Register("Present_Current", 69, 2, read_only=True),
    Register("Maximum_Acceleration", 85, 1),
)


def register(name: str | Register) -> Register:
    """Look a register up by name, with the known names in the error."""
    if isinstance(name, Register):
        return name
    try:
        return CONTROL_TABLE[name]
    except KeyError:
        raise KeyError(f"unknown STS3215 register {name!r}; known: {', '.join(CONTROL_TABLE)}") from None


def encode_value(reg: Register, value: int) -> bytes:
    """Signed int -> the register's little-endian bytes (sign-magnitude where the register uses it)."""
    value = int(value)
    if not reg.min_value <= value <= reg.max_value:
        raise ValueError(
            f"{value} is out of range for register {reg.name} ({reg.min_value}..{reg.max_value})")
    raw = value
    if reg.sign_bit is not None and value < 0:
        raw = (1 << reg.sign_bit) | -value
    return raw.to_bytes(reg.size, "little")


def decode_value(reg: Register, data: bytes) -> int:
    """The register's little-endian bytes -> signed int."""
    if len(data) != reg.size:
        raise ValueError(f"register {reg.name} takes {reg.size} bytes, got {len(data)}")
    raw = int.from_bytes(data, "little")
    if reg.sign_bit is None:
        return raw
    magnitude = raw & ((1 << reg.sign_bit) - 1)
    return -magnitude if raw & (1 << reg.sign_bit) else magnitude
