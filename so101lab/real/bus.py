"""A Feetech STS bus over pyserial: ping/scan, read/write, sync read/write, retries, clear errors.

Values are signed ints in register units (ticks, raw register values); sign-magnitude and byte
order are handled here. Every failure names the port, the motor (id and name) and the register.
"""

from __future__ import annotations

import errno
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress

import serial

from so101lab.real.errors import ArmDisconnectedError, BusError, MotorStatusError, MotorTimeoutError, PortError
from so101lab.real.protocol import (
    BROADCAST_ID,
    Instruction,
    Packet,
    PacketParser,
    describe_error,
    instruction,
)
from so101lab.real.registers import Register, decode_value, encode_value, register

DEFAULT_BAUDRATE = 1_000_000
try:  # what a vanished tty raises from tcflush (POSIX only)
    from termios import error as _TermiosError
except ImportError:  # pragma: no cover - Windows
    _TermiosError = OSError
# Errors of the port itself (not of a motor): the device is gone.
_PORT_GONE = (serial.SerialException, OSError, _TermiosError)

PERMISSION_ADVICE = (
    "add yourself to the serial group and log in again (`sudo usermod -aG dialout $USER`), or install "
    'a udev rule such as `SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", MODE="0666"` in '
    "/etc/udev/rules.d/99-so101.rules and run `sudo udevadm control --reload && sudo udevadm trigger`"
)


def open_serial(port: str, baudrate: int = DEFAULT_BAUDRATE) -> serial.Serial:
    """Open a serial port exclusively, turning OS errors into advice a user can act on."""
    try:
        return serial.Serial(port, baudrate, timeout=0, write_timeout=1.0, exclusive=True)
    except serial.SerialException as exc:
        code = exc.errno
        text = str(exc)
        if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            raise PortError(f"serial port {port} does not exist; unplug/replug the arm and run "
                            "`so101lab find-port` to see which port it uses") from exc
        if code in (errno.EACCES, errno.EPERM):
            raise PortError(f"permission denied opening {port}: {PERMISSION_ADVICE}") from exc
        if code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
            raise PortError(f"serial port {port} is busy: another program holds it (another so101lab "
                            f"process, a serial monitor, ModemManager); find it with `fuser {port}`") from exc
        raise PortError(f"could not open serial port {port}: {text}") from exc


class FeetechBus:
    """One serial port with STS3215 motors on it."""

    def __init__(self, port: str, baudrate: int = DEFAULT_BAUDRATE, *, timeout: float = 0.05,
                 retries: int = 2, names: Mapping[int, str] | None = None):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 s, got {timeout}")
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.names = dict(names or {})
        self.serial = open_serial(port, baudrate)
        self.disconnected = False  # set once the port vanished: nothing more can reach the motors
        self._parser = PacketParser()
        self._lock = threading.Lock()
        self.stats = {"retries": 0, "corrupt": 0}

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def baudrate(self) -> int:
        return int(self.serial.baudrate)

    def set_baudrate(self, baudrate: int) -> None:
        self.serial.baudrate = baudrate

    def close(self) -> None:
        if self.serial.is_open:
            with suppress(*_PORT_GONE):  # closing a vanished device may fail too; it is closed either way
                self.serial.close()

    def __enter__(self) -> FeetechBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def motor(self, motor_id: int) -> str:
        name = self.names.get(motor_id)
        return f"motor {motor_id} ({name})" if name else f"motor {motor_id}"

    @contextmanager
    def _port_io(self) -> Iterator[None]:
        """A vanished port (USB pulled, virtual arm stopped) becomes one `ArmDisconnectedError`."""
        if self.disconnected:
            raise ArmDisconnectedError(f"the arm disconnected: {self.port} is gone")
        try:
            yield
        except _PORT_GONE as exc:
            self.disconnected = True
            raise ArmDisconnectedError(
                f"the arm disconnected: {self.port} went away ({exc}); check the USB cable and the "
                "arm's power supply, then start again") from None

    def _send(self, packet: bytes) -> None:
        with self._port_io():
            self.serial.reset_input_buffer()
            self._parser.clear()
            self.serial.write(packet)
            self.serial.flush()

    def _read_some(self, timeout: float) -> bytes:
        """Whatever bytes arrive within ``timeout`` s. Waits with select: setting pyserial's timeout
        rewrites the terminal settings each time, which USB serial drivers turn into USB requests."""
        try:
            fd = self.serial.fileno()
        except (AttributeError, NotImplementedError, OSError):  # no file descriptor (Windows)
            with self._port_io():
                self.serial.timeout = timeout
                return self.serial.read(max(1, self.serial.in_waiting))
        with self._port_io():
            ready, _, _ = select.select([fd], [], [], timeout)
            return self.serial.read(self.serial.in_waiting or 1) if ready else b""

    def _collect(self, ids: list[int], data_len: int, timeout: float | None = None) -> dict[int, Packet]:
        """Read status packets from ``ids`` (each with ``data_len`` params) until all came or time is up."""
        got: dict[int, Packet] = {}
        wanted = set(ids)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while wanted - set(got):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            chunk = self._read_some(remaining)
            before = self._parser.corrupt
            for pkt in self._parser.feed(chunk):
                if pkt.id in wanted and len(pkt.params) == data_len:
                    got[pkt.id] = pkt
                else:
                    self._parser.corrupt += 1
            self.stats["corrupt"] += self._parser.corrupt - before
        return got

    def _transact(self, make_packet: Callable[[list[int]], bytes], ids: list[int], data_len: int, what: str,
                  check_status: bool = True) -> dict[int, Packet]:
        """Send, collect, and on silence or corruption ask again only the motors still missing."""
        got: dict[int, Packet] = {}
        with self._lock:
            for attempt in range(self.retries + 1):
                missing = [i for i in ids if i not in got]
                if not missing:
                    break
                if attempt:
                    self.stats["retries"] += 1
                self._send(make_packet(missing))
                got.update(self._collect(missing, data_len))
            missing = [i for i in ids if i not in got]
            if missing:
                who = ", ".join(self.motor(i) for i in missing)
                raise MotorTimeoutError(
                    f"{who} did not answer {what} on {self.port} at {self.baudrate} baud after "
                    f"{self.retries + 1} tries (check power, cabling, ids and baud rate; "
                    f"`so101lab setup-motors` assigns ids)")
        if check_status:
            for i in ids:
                if got[i].code:
                    raise MotorStatusError(
                        f"{self.motor(i)} reported {describe_error(got[i].code)} while {what} on {self.port}",
                        i, got[i].code)
        return got

    # -- instructions -----------------------------------------------------------------------

    def ping(self, motor_id: int) -> bool:
        """True if the motor answers a ping (one try, no exception on silence)."""
        with self._lock:
            self._send(instruction(motor_id, Instruction.PING))
            return motor_id in self._collect([motor_id], 0)

    def broadcast_ping(self, quiet: float = 0.05) -> dict[int, int]:
        """Ids of every motor that answers a broadcast ping -> their status error bits."""
        found: dict[int, int] = {}
        with self._lock:
            for _ in range(self.retries + 1):  # silence may be a lost packet: ask again
                self._send(instruction(BROADCAST_ID, Instruction.PING))
                deadline = time.monotonic() + quiet
                while (remaining := deadline - time.monotonic()) > 0:
                    for pkt in self._parser.feed(self._read_some(remaining)):
                        if not pkt.params:
                            found[pkt.id] = pkt.code
                            deadline = time.monotonic() + quiet  # more may follow
                if found:
                    break
        return dict(sorted(found.items()))

    def scan(self) -> dict[int, int]:
        """Motors on the bus: id -> model number."""
        return {i: self.read(i, "Model_Number", check_status=False) for i in self.broadcast_ping()}

    def read(self, motor_id: int, reg: str | Register, *, check_status: bool = True) -> int:
        r = register(reg)
        what = f"reading {r.name} (address {r.address})"
        packet = instruction(motor_id, Instruction.READ, bytes((r.address, r.size)))
        got = self._transact(lambda _: packet, [motor_id], r.size, what, check_status)
        return decode_value(r, got[motor_id].params)

    def write(self, motor_id: int, reg: str | Register, value: int, *, check_status: bool = True) -> None:
        r = register(reg)
        data = self._encode(r, value, motor_id)
        what = f"writing {r.name}={value} (address {r.address})"
        packet = instruction(motor_id, Instruction.WRITE, bytes((r.address,)) + data)
        if motor_id == BROADCAST_ID:
            with self._lock:
                self._send(packet)
            return
        self._transact(lambda _: packet, [motor_id], 0, what, check_status)

    def sync_read(self, reg: str | Register, ids: Iterable[int], *,
                  check_status: bool = True) -> dict[int, int]:
        """One SYNC_READ of a register from several motors: id -> value."""
        r = register(reg)
        ids = list(ids)
        what = f"sync-reading {r.name} (address {r.address})"
        def packet(missing: list[int]) -> bytes:
            return instruction(BROADCAST_ID, Instruction.SYNC_READ, bytes((r.address, r.size, *missing)))

        got = self._transact(packet, ids, r.size, what, check_status)
        return {i: decode_value(r, got[i].params) for i in ids}

    def sync_write(self, reg: str | Register, values: Mapping[int, int]) -> None:
        """One SYNC_WRITE of a register to several motors (broadcast: no answer is expected)."""
        r = register(reg)
        params = bytearray((r.address, r.size))
        for motor_id, value in values.items():
            params.append(motor_id)
            params += self._encode(r, value, motor_id)
        with self._lock:
            self._send(instruction(BROADCAST_ID, Instruction.SYNC_WRITE, bytes(params)))

    def _encode(self, r: Register, value: int, motor_id: int) -> bytes:
        if r.read_only:
            raise BusError(f"register {r.name} is read-only; cannot write it to {self.motor(motor_id)}")
        try:
            return encode_value(r, value)
        except ValueError as exc:
            raise ValueError(f"{self.motor(motor_id)}: {exc}") from None
