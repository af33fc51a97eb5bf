"""Talking to a policy server: a blocking client, and a threaded one a 30 Hz loop can use without waiting.

Every network call has a deadline. A server that is not there or hangs up raises ``ServerGone``,
one that does not answer in time ``ServerLate``, one speaking another protocol version
``IncompatiblePeer``; each message names the address and what to do.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from so101lab.inference.predictor import Guidance
from so101lab.inference.protocol import (
    PROTOCOL_VERSION,
    IncompatiblePeer,
    Message,
    RemoteError,
    ServerGone,
    ServerLate,
    parse_address,
    recv_message,
    send_message,
)
from so101lab.inference.server import observation_arrays


@dataclass
class Reply:
    """A chunk from the server: actions [B, T, D] for the observation of control step ``step``."""

    actions: np.ndarray
    step: int
    compute_s: float
    round_trip_s: float


class PolicyClient:
    """One connection to a policy server; ``predict`` blocks until the chunk comes (or its deadline)."""

    def __init__(self, address: str, *, connect_timeout: float = 5.0, timeout: float = 30.0) -> None:
        self.address = address
        self.timeout = timeout
        host, port = parse_address(address)
        self._peer = f"policy server at {host}:{port}"
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        except TimeoutError as err:
            raise ServerLate(f"{self._peer} did not accept a connection within {connect_timeout} s") from err
        except OSError as err:
            raise ServerGone(f"no {self._peer} ({err.strerror or err}); start one with "
                             "`so101lab policy-server --policy-path CHECKPOINT`") from err
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._ids = itertools.count()
        reply = self._call(Message("hello", {"protocol": PROTOCOL_VERSION}), timeout=connect_timeout)
        if reply.kind != "hello" or reply.fields.get("protocol") != PROTOCOL_VERSION:
            raise IncompatiblePeer(f"{self._peer} answered hello with {reply.kind!r} "
                                   f"protocol {reply.fields.get('protocol')}, expected {PROTOCOL_VERSION}")
        self.info: dict[str, Any] = reply.fields["policy"]

    def _call(self, message: Message, timeout: float | None = None) -> Message:
        send_message(self.sock, message, self._peer)
        reply = recv_message(self.sock, self.timeout if timeout is None else timeout, self._peer)
        if reply.kind == "error":
            text = f"{self._peer}: {reply.fields.get('message')}"
            raise IncompatiblePeer(text) if reply.fields.get("code") == "incompatible" else RemoteError(text)
        return reply

    def predict(self, obs: dict, tasks: list[str], step: int = 0, *, min_latency_s: float = 0.0,
                guidance: Guidance | None = None) -> Reply:
        """The chunk for a batched observation (``agent_pos`` [B, S], ``pixels`` {cam: [B, H, W, 3]})."""
        arrays = observation_arrays(obs, step)
        fields: dict[str, Any] = {"id": next(self._ids), "step": step, "tasks": list(tasks),
                                  "min_latency_s": min_latency_s}
        if guidance is not None:
            arrays["guidance"] = np.asarray(guidance.actions, dtype=np.float32)
            fields["delay"] = guidance.delay
        start = time.perf_counter()
        reply = self._call(Message("infer", fields, arrays))
        if reply.kind != "chunk" or reply.fields.get("id") != fields["id"]:
            raise IncompatiblePeer(f"{self._peer} answered request {fields['id']} with {reply.kind!r} "
                                   f"id {reply.fields.get('id')}")
        return Reply(np.array(reply.arrays["actions"], dtype=np.float32), int(reply.fields["step"]),
                     float(reply.fields["compute_s"]), time.perf_counter() - start)

    def reset(self) -> None:
        self._call(Message("reset"))

    def close(self) -> None:
        """Say goodbye (best effort) and disconnect; safe to call twice."""
        if self.sock.fileno() == -1:
            return
        with contextlib.suppress(ServerGone, ServerLate):
            send_message(self.sock, Message("bye"), self._peer, timeout=1.0)
        self.sock.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncPolicyClient:
    """A background thread does the network; ``submit`` and ``poll`` return at once.

    At most one request is in flight (a new observation is sent only after the previous chunk
    came back). A failure in the thread (server gone, late, incompatible) is raised by the next
    ``poll``, in the control loop's thread, where the caller can stop the robot.
    """

    def __init__(self, client: PolicyClient) -> None:
        self.client = client
        self._requests: queue.Queue = queue.Queue(maxsize=1)
        self._replies: deque[Reply] = deque()
        self._error: BaseException | None = None
        self._busy = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="policy-client", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy

    def submit(self, obs: dict, tasks: list[str], step: int, **options: Any) -> bool:
        """Send an observation unless one is in flight; False if it was not sent."""
        if self._busy or self._error is not None:
            return False
        self._busy = True
        self._requests.put_nowait((obs, list(tasks), step, options))
        return True

    def poll(self) -> list[Reply]:
        """Chunks that arrived since the last poll; raises the thread's error if it failed."""
        if self._error is not None:
            raise self._error
        out = []
        while self._replies:
            out.append(self._replies.popleft())
        return out

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._requests.get(timeout=0.05)
            except queue.Empty:
                continue
            obs, tasks, step, options = item
            try:
                self._replies.append(self.client.predict(obs, tasks, step, **options))
            except BaseException as err:  # handed to the control thread
                self._error = err
                return
            finally:
                self._busy = False

    def close(self) -> None:
        """Stop the thread (it finishes a request in flight, bounded by the client's timeout) and disconnect."""
        self._stop.set()
        self._thread.join(timeout=self.client.timeout + 1.0)
        self.client.close()
