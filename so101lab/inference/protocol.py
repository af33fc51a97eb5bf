"""The policy server's wire format: a JSON header and raw little-endian arrays, never pickle.

A frame is ``MAGIC`` (4 bytes), the header length (uint32 LE), the payload length (uint64 LE),
the header (UTF-8 JSON) and the payload: the arrays the header lists under ``"arrays"``
(name, dtype, shape), their bytes back to back. Every header carries the protocol ``"v"``; a
peer speaking another version (or not this protocol at all) is named as incompatible instead of
being misread. Sizes are bounded, so a wrong peer cannot make us allocate gigabytes, and reads
have deadlines, so a silent peer cannot hang the caller.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
MAGIC = b"S1PS"  # so101lab policy server
_PREFIX = struct.Struct("<4sIQ")
MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 30
# Plain numeric dtypes only: an object dtype would need pickle.
ALLOWED_DTYPES = frozenset({"|u1", "|i1", "|b1", "<i4", "<i8", "<f2", "<f4", "<f8"})
DEFAULT_PORT = 50551


class ProtocolError(RuntimeError):
    """The peer sent bytes that are not a valid frame of this protocol."""


class ServerGone(ConnectionError):
    """The server is not there (refused, closed or reset the connection)."""


class ServerLate(TimeoutError):
    """The server did not answer within its deadline."""


class IncompatiblePeer(ProtocolError):
    """The peer speaks another protocol version, another protocol, or serves an unusable policy."""


class RemoteError(RuntimeError):
    """The server failed to handle a request and said why."""


@dataclass
class Message:
    """One frame: ``kind`` plus JSON fields, and named numpy arrays."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _wire_dtype(array: np.ndarray) -> np.ndarray:
    """The array in little-endian, C order, with a dtype from ALLOWED_DTYPES."""
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    array = array.astype(dtype, copy=False)
    if array.dtype.str not in ALLOWED_DTYPES:
        raise TypeError(f"array dtype {array.dtype} cannot go on the wire (allowed: {sorted(ALLOWED_DTYPES)})")
    return array


def encode(message: Message) -> bytes:
    """The frame of ``message``."""
    arrays = {name: _wire_dtype(np.asarray(a)) for name, a in message.arrays.items()}
    header = {"v": PROTOCOL_VERSION, "kind": message.kind, **message.fields,
              "arrays": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in arrays.items()]}
    head = json.dumps(header, separators=(",", ":")).encode()
    payload = b"".join(a.tobytes() for a in arrays.values())
    if len(head) > MAX_HEADER_BYTES or len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"message too large: header {len(head)} B, payload {len(payload)} B")
    return _PREFIX.pack(MAGIC, len(head), len(payload)) + head + payload


def decode(head: bytes, payload: bytes) -> Message:
    """A message from its header and payload bytes (the prefix already checked)."""
    try:
        header = json.loads(head.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"frame header is not JSON: {err}") from err
    if not isinstance(header, dict) or "kind" not in header:
        raise ProtocolError("frame header is not a JSON object with a 'kind'")
    version = header.pop("v", None)
    if version != PROTOCOL_VERSION:
        raise IncompatiblePeer(f"peer speaks policy-server protocol version {version}, this side {PROTOCOL_VERSION}: "
                                 "run the same so101lab version on both machines")
    specs = header.pop("arrays", [])
    kind = header.pop("kind")
    buffer = bytearray(payload)  # writable arrays (torch warns on read-only ones)
    arrays, offset = {}, 0
    for spec in specs:
        dtype = spec.get("dtype")
        if dtype not in ALLOWED_DTYPES:
            raise ProtocolError(f"array {spec.get('name')!r} has dtype {dtype!r}, not one of {sorted(ALLOWED_DTYPES)}")
        shape = tuple(int(n) for n in spec["shape"])
        if any(n < 0 for n in shape):
            raise ProtocolError(f"array {spec['name']!r} has a negative dimension {shape}")
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if offset + size > len(payload):
            raise ProtocolError(f"array {spec['name']!r} runs past the payload ({offset + size} > {len(payload)} B)")
        arrays[spec["name"]] = np.frombuffer(buffer, dtype=dtype, count=size // np.dtype(dtype).itemsize,
                                             offset=offset).reshape(shape)
        offset += size
    if offset != len(payload):
        raise ProtocolError(f"payload has {len(payload) - offset} B beyond its arrays")
    return Message(kind, header, arrays)


def _recv_exact(sock: socket.socket, n: int, deadline: float | None, peer: str) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerLate(f"{peer} sent no complete reply in time")
            sock.settimeout(left)
        else:
            sock.settimeout(None)
        try:
            chunk = sock.recv(min(n - got, 1 << 20))
        except TimeoutError as err:
            raise ServerLate(f"{peer} sent no complete reply in time") from err
        except OSError as err:
            raise ServerGone(f"{peer}: connection lost ({err})") from err
        if not chunk:
            raise ServerGone(f"{peer} closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket, timeout: float | None = None, peer: str = "peer") -> Message:
    """Read one frame; ``ServerLate`` past ``timeout`` s, ``ServerGone`` on a closed socket."""
    deadline = None if timeout is None else time.monotonic() + timeout
    magic, head_len, payload_len = _PREFIX.unpack(_recv_exact(sock, _PREFIX.size, deadline, peer))
    if magic != MAGIC:
        raise IncompatiblePeer(f"{peer} is not a so101lab policy server/client (got {magic!r}, expected {MAGIC!r})")
    if head_len > MAX_HEADER_BYTES or payload_len > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{peer} announced an oversized frame (header {head_len} B, payload {payload_len} B)")
    head = _recv_exact(sock, head_len, deadline, peer)
    return decode(head, _recv_exact(sock, payload_len, deadline, peer))


def send_message(sock: socket.socket, message: Message, peer: str = "peer", timeout: float | None = 10.0) -> None:
    """Write one frame; ``ServerGone`` if the peer went away."""
    sock.settimeout(timeout)
    try:
        sock.sendall(encode(message))
    except TimeoutError as err:
        raise ServerLate(f"{peer} did not take our request within {timeout} s") from err
    except OSError as err:
        raise ServerGone(f"{peer}: connection lost while sending ({err})") from err


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (or just ``port``, on localhost) -> (host, port)."""
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"policy server address must be host:port, got {address!r}") from None
    return host or "127.0.0.1", number
