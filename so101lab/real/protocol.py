"""Feetech STS packets: encoding, checksums, status error bits and a stream parser.

The parser is fed whatever bytes arrive (noise, halves of packets, corrupted checksums) and only
ever returns whole packets whose checksum holds; every call consumes or keeps a bounded number of
bytes, so no input can make it crash or loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC  # highest assignable motor id (252)
MIN_PACKET = 6  # FF FF ID LEN CODE CHK


class Instruction(enum.IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


class StatusError(enum.IntFlag):
    """Error bits of a status packet, as the STS firmware sets them."""

    VOLTAGE = 0x01
    ANGLE = 0x02
    OVERHEAT = 0x04
    OVERCURRENT = 0x08
    OVERLOAD = 0x20


def describe_error(bits: int) -> str:
    """Human names of the set error bits, e.g. ``"OVERLOAD|OVERHEAT"``; unknown bits in hex."""
    names = [e.name for e in StatusError if bits & e.value]
    unknown = bits & ~sum(e.value for e in StatusError)
    if unknown:
        names.append(f"0x{unknown:02x}")
    return "|".join(n for n in names if n) or "none"


def checksum(body: bytes) -> int:
    """~(ID + LEN + CODE + params) & 0xFF, over the packet without its header and checksum."""
    return ~sum(body) & 0xFF


@dataclass(frozen=True)
class Packet:
    """An instruction (``code`` = instruction) or a status packet (``code`` = error bits)."""

    id: int
    code: int
    params: bytes = b""

    def encode(self) -> bytes:
        if not 0 <= self.id <= 0xFE:
            raise ValueError(f"packet id {self.id} is outside 0..254")
        if len(self.params) > 253:
            raise ValueError(f"packet carries {len(self.params)} parameter bytes, at most 253 fit")
        body = bytes((self.id, len(self.params) + 2, self.code)) + bytes(self.params)
        return HEADER + body + bytes((checksum(body),))


def instruction(motor_id: int, instr: Instruction, params: bytes = b"") -> bytes:
    return Packet(motor_id, int(instr), bytes(params)).encode()


def status(motor_id: int, error: int = 0, params: bytes = b"") -> bytes:
    return Packet(motor_id, error, bytes(params)).encode()


@dataclass
class PacketParser:
    """Incremental parser: `feed` bytes, get back the whole, checksum-valid packets in order."""

    buffer: bytearray = field(default_factory=bytearray)
    corrupt: int = 0  # packets dropped for a bad checksum or length

    def feed(self, data: bytes) -> list[Packet]:
        self.buffer += data
        packets: list[Packet] = []
        buf = self.buffer
        while True:
            start = buf.find(HEADER)
            if start < 0:
                # Keep a trailing 0xFF: it may be the first half of the next header.
                del buf[: len(buf) - 1 if buf.endswith(b"\xff") else len(buf)]
                return packets
            del buf[:start]
            if len(buf) < 4:
                return packets
            motor_id, length = buf[2], buf[3]
            if motor_id == 0xFF or length < 2:
                # FF FF FF ...: the header starts one byte later; LEN < 2 is no packet at all.
                if motor_id != 0xFF:
                    self.corrupt += 1
                del buf[:1]
                continue
            end = 4 + length
            if len(buf) < end:
                return packets
            body = bytes(buf[2 : end - 1])
            if checksum(body) != buf[end - 1]:
                self.corrupt += 1
                del buf[:1]
                continue
            packets.append(Packet(motor_id, body[2], body[3:]))
            del buf[:end]

    def clear(self) -> None:
        self.buffer.clear()
