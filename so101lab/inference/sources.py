"""Opening a chunk source for a launcher: a local predictor, a running server, or one spawned for the run.

``open_policy_source`` is what ``so101lab eval`` and ``so101lab deploy`` call: it yields the
policy's description (chunk size, cameras, image shapes) and a factory of control loops, and
closes the client and stops a spawned server afterwards.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from so101lab.inference.client import AsyncPolicyClient, PolicyClient
from so101lab.inference.predictor import Guidance, Predictor
from so101lab.inference.process import spawned_server
from so101lab.inference.runner import ControlLoop, Execution, PredictFn, RealtimeSource, SimulatedLatency


def local_predict(predictor: Predictor) -> PredictFn:
    """In-process inference, timed by the wall clock."""

    def predict(obs: dict, tasks: list[str], step: int, guidance: Guidance | None) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        chunk = predictor.predict(obs, tasks, guidance)
        return chunk, time.perf_counter() - start

    return predict


def remote_predict(client: PolicyClient) -> PredictFn:
    """Blocking inference on a server, timed by the round trip (network included)."""

    def predict(obs: dict, tasks: list[str], step: int, guidance: Guidance | None) -> tuple[np.ndarray, float]:
        reply = client.predict(obs, tasks, step, guidance=guidance)
        return reply.actions, reply.round_trip_s

    return predict


@dataclass
class ServerOptions:
    """Where the policy runs when it runs out of process."""

    policy_path: Path
    device: str = "auto"
    dtype: str = "float32"
    vlm_dir: Path | None = None
    threads: int | None = None
    num_steps: int | None = None
    int8: bool = False
    address: str | None = None
    """A running server (host:port); None spawns one on localhost for the run."""
    timeout_s: float = 30.0
    """A chunk later than this stops the run (ServerLate)."""

    def spawn_args(self) -> list[str]:
        args = ["--policy-path", str(self.policy_path), "--device", self.device, "--dtype", self.dtype,
                "--max-clients", "1"]
        if self.vlm_dir is not None:
            args += ["--vlm-dir", str(self.vlm_dir)]
        if self.threads is not None:
            args += ["--threads", str(self.threads)]
        if self.num_steps is not None:
            args += ["--num-steps", str(self.num_steps)]
        if self.int8:
            args += ["--int8"]
        return args


@contextlib.contextmanager
def connected(options: ServerOptions) -> Iterator[PolicyClient]:
    """A client of the running server, or of one spawned here (stopped on exit)."""
    with contextlib.ExitStack() as stack:
        address = options.address or stack.enter_context(spawned_server(options.spawn_args()))
        client = PolicyClient(address, timeout=options.timeout_s)
        stack.callback(client.close)
        yield client


@dataclass
class LoopFactory:
    """Control loops on simulated time (sim evaluation), a fresh one per episode batch; ``info`` describes
    the policy (chunk size, cameras, image shapes)."""

    predict: PredictFn
    info: dict
    execution: Execution
    latency_ms: float | None
    """Declared latency; None: each chunk's measured time."""

    def __call__(self) -> ControlLoop:
        return ControlLoop(SimulatedLatency(self.predict, self.latency_ms), self.execution,
                           self.info["chunk_size"], self.info["n_action_steps"])


@contextlib.contextmanager
def realtime_loop(options: ServerOptions, execution: Execution, min_latency_ms: float = 0.0
                  ) -> Iterator[tuple[dict, ControlLoop]]:
    """A wall-clock control loop on a policy server (the robot): the policy's info and the loop."""
    with connected(options) as client:
        threaded = AsyncPolicyClient(client)
        try:
            source = RealtimeSource(threaded, min_latency_ms)
            yield client.info, ControlLoop(source, execution, client.info["chunk_size"],
                                           client.info["n_action_steps"])
        finally:
            threaded.close()
