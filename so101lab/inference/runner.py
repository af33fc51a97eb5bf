"""The control loop of chunked policies: one action per 30 Hz tick from a timed queue of chunks.

``ControlLoop.act(obs, tasks)`` is called once per control step (sim or real) and returns the
action for that step at once. Chunks come from a ``ChunkSource``:

- ``RealtimeSource``: a policy server reached through a threaded client; the loop never waits
  for it (the robot), chunks land whenever the network delivers them.
- ``SimulatedLatency``: any predictor called at once, its chunk released ``latency`` later in
  simulated control steps (a declared latency in ms, or the measured wall-clock inference time):
  the sim keeps running while the policy "thinks", deterministically.

Two execution modes:

- ``sync``: ask only when the queue is empty; the chunk runs from its first action when it
  lands (the robot holds still meanwhile); with zero latency this is the classic chunked loop.
- ``async``: ask when the queue falls to ``threshold`` x the chunk; a chunk's action i is for
  control step (observation step + i), so actions already overtaken by time are dropped and
  overlapping steps are merged by ``aggregate`` (latest, average, or LeRobot's weighted 0.3/0.7).

An empty queue never blocks: the arm holds its last goal (its present position before the first
chunk) and the step is counted, as a stall once a chunk has been executed, else as a start-up
hold.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from so101lab.contract import CONTROL_HZ, OBS_PIXELS, OBS_STATE
from so101lab.inference.predictor import Guidance

Mode = Literal["sync", "async"]
Aggregate = Literal["latest", "average", "weighted"]
AGGREGATES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "latest": lambda old, new: new,
    "average": lambda old, new: 0.5 * old + 0.5 * new,
    "weighted": lambda old, new: 0.3 * old + 0.7 * new,  # LeRobot async inference's weighted_average
}


@dataclass
class Arrival:
    """A chunk [B, T, D] computed from the observation of control step ``step``."""

    step: int
    actions: np.ndarray
    latency_s: float


class ChunkSource(Protocol):
    """Where chunks come from: ``submit`` an observation, ``poll`` what has landed by control step ``step``."""

    @property
    def busy(self) -> bool: ...

    def submit(self, obs: dict, tasks: list[str], step: int, guidance: Guidance | None = None) -> bool: ...

    def poll(self, step: int) -> list[Arrival]: ...


PredictFn = Callable[[dict, list[str], int, Guidance | None], tuple[np.ndarray, float]]


class SimulatedLatency:
    """Computes a chunk at once and releases it ``latency`` later in control steps (sim time).

    ``latency_ms=None`` uses each call's measured wall-clock time (what this machine would cost a
    real arm). ``predict(obs, tasks, step, guidance) -> (chunk, seconds)`` is a local predictor or a
    blocking server client.
    """

    def __init__(self, predict: PredictFn, latency_ms: float | None, fps: float = CONTROL_HZ) -> None:
        if latency_ms is not None and latency_ms < 0:
            raise ValueError(f"latency must be >= 0 ms, got {latency_ms}")
        self.predict, self.latency_ms, self.fps = predict, latency_ms, fps
        self._pending: tuple[int, Arrival] | None = None

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def delay_steps(self, latency_s: float) -> int:
        """Control steps that pass before a chunk computed in ``latency_s`` can be used."""
        return math.ceil(latency_s * self.fps - 1e-9)

    def submit(self, obs: dict, tasks: list[str], step: int, guidance: Guidance | None = None) -> bool:
        if self.busy:
            return False
        actions, measured = self.predict(obs, tasks, step, guidance)
        latency = measured if self.latency_ms is None else self.latency_ms / 1000.0
        self._pending = (step + self.delay_steps(latency), Arrival(step, actions, latency))
        return True

    def poll(self, step: int) -> list[Arrival]:
        if self._pending is not None and self._pending[0] <= step:
            arrival = self._pending[1]
            self._pending = None
            return [arrival]
        return []


class RealtimeSource:
    """A policy server through ``AsyncPolicyClient``: chunks land in wall-clock time, never awaited."""

    def __init__(self, client: Any, min_latency_ms: float = 0.0) -> None:
        self.client = client  # an AsyncPolicyClient
        self.min_latency_s = min_latency_ms / 1000.0

    @property
    def busy(self) -> bool:
        return self.client.busy

    def submit(self, obs: dict, tasks: list[str], step: int, guidance: Guidance | None = None) -> bool:
        return self.client.submit(obs, tasks, step, min_latency_s=self.min_latency_s, guidance=guidance)

    def poll(self, step: int) -> list[Arrival]:
        return [Arrival(r.step, r.actions, r.round_trip_s) for r in self.client.poll()]

    def warm_up(self, obs: dict, tasks: list[str], timeout_s: float = 60.0) -> float:
        """One request, awaited, before the control loop starts: a model's first call pays one-off costs
        (kernel selection, allocations) that would otherwise land on the first chunk. Returns its seconds."""
        start = time.perf_counter()
        if not self.client.submit(obs, tasks, -1):
            raise RuntimeError("warm_up needs an idle client")
        while not (replies := self.client.poll()):
            if time.perf_counter() - start > timeout_s:
                raise TimeoutError(f"the policy server's warm-up chunk took more than {timeout_s} s")
            time.sleep(0.005)
        return replies[0].round_trip_s


@dataclass
class Execution:
    """How chunks are executed (see the module doc)."""

    mode: Mode = "async"
    threshold: float = 0.5
    """async: request the next chunk when queued actions <= threshold x actions_per_chunk."""
    aggregate: Aggregate = "weighted"
    """async: how overlapping actions of two chunks are merged."""
    actions_per_chunk: int | None = None
    """Actions of each chunk used (default: the chunk in async mode, n_action_steps in sync mode)."""
    rtc: bool = False
    """async, SmolVLA: real-time chunking (guide a new chunk's start toward the queued actions)."""

    def __post_init__(self) -> None:
        if self.mode not in ("sync", "async"):
            raise ValueError(f"mode must be sync or async, got {self.mode!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold is a fraction of the chunk in 0..1, got {self.threshold}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {sorted(AGGREGATES)}, got {self.aggregate!r}")
        if self.rtc and self.mode != "async":
            raise ValueError("real-time chunking needs async execution (it guides a chunk computed while one runs)")


@dataclass
class LoopStats:
    """Counts of one episode (or since the last reset)."""

    steps: int = 0
    stalls: int = 0
    """Steps with an empty queue after the first chunk: the arm held still waiting for the policy."""
    startup_holds: int = 0
    """Steps before the first chunk landed."""
    chunks: int = 0
    latencies_s: list[float] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    """Executed actions [B, D] per step (for jerk)."""
    boundaries: list[int] = field(default_factory=list)
    """Steps at which a landed chunk first took effect."""
    jumps: list[float] = field(default_factory=list)
    """Per landing that replaced a planned action: max |new - planned| (units) at the landing step."""

    def summary(self) -> dict[str, float]:
        jerk = boundary_jerk(np.stack(self.actions), self.boundaries) if len(self.actions) >= 4 else {}
        lat = self.latencies_s or [0.0]
        return {"steps": self.steps, "stalls": self.stalls, "startup_holds": self.startup_holds,
                "chunks": self.chunks, "latency_s_mean": float(np.mean(lat)), "latency_s_max": float(np.max(lat)),
                "boundary_jump_mean": float(np.mean(self.jumps)) if self.jumps else 0.0, **jerk}


def boundary_jerk(actions: np.ndarray, boundaries: list[int], fps: float = CONTROL_HZ) -> dict[str, float]:
    """Mean |third difference| of executed actions (units/s^3) at chunk boundaries and over all steps.

    A boundary's jerk is the largest (over joints and envs) |d3 a/dt3| of the differences whose
    4-step stencil spans the first step of the new chunk.
    """
    d3 = np.abs(np.diff(actions, n=3, axis=0)) * fps**3  # d3[k] spans steps k..k+3
    per_step = d3.reshape(d3.shape[0], -1).max(axis=1)
    # Stencils spanning the step pair (b - 1, b): k in b-3 .. b-1.
    at = [per_step[max(0, b - 3): min(len(d3), b)].max() for b in boundaries if b > 0 and b - 3 < len(d3)]
    return {"jerk_mean": float(per_step.mean()), "jerk_boundary_mean": float(np.mean(at)) if at else 0.0}


def batched(obs: dict) -> dict:
    """One env's observation with a leading batch dimension of 1."""
    return {OBS_STATE: np.asarray(obs[OBS_STATE])[None],
            OBS_PIXELS: {k: np.asarray(v)[None] for k, v in obs.get(OBS_PIXELS, {}).items()}}


class ControlLoop:
    """Turns a chunk source into one action per control step, never waiting for it."""

    def __init__(self, source: ChunkSource, execution: Execution, chunk_size: int, n_action_steps: int) -> None:
        self.source, self.execution = source, execution
        default = chunk_size if execution.mode == "async" else n_action_steps
        self.actions_per_chunk = execution.actions_per_chunk or default
        if not 1 <= self.actions_per_chunk <= chunk_size:
            raise ValueError(f"actions_per_chunk must be in 1..{chunk_size} (the chunk size)")
        self.merge = AGGREGATES[execution.aggregate]
        self.reset()

    def reset(self) -> None:
        """Start an episode: forget the plan and the counts (a chunk in flight is dropped when it lands)."""
        self.plan: dict[int, np.ndarray] = {}
        self.step = 0
        self.last: np.ndarray | None = None
        self.stats = LoopStats()
        self._stale_until_idle = self.source.busy
        self._last_latency_steps = 0

    def queued(self) -> int:
        return sum(1 for s in self.plan if s >= self.step)

    def _receive(self) -> None:
        for arrival in self.source.poll(self.step):
            if self._stale_until_idle:  # requested in the previous episode
                self._stale_until_idle = False
                continue
            self._land(arrival)

    def _land(self, arrival: Arrival) -> None:
        self.stats.chunks += 1
        self.stats.latencies_s.append(arrival.latency_s)
        self._last_latency_steps = self.step - arrival.step
        chunk = arrival.actions[:, : self.actions_per_chunk]
        first = arrival.step if self.execution.mode == "async" else self.step
        self.stats.boundaries.append(max(first, self.step))
        if self.step in self.plan and first <= self.step < first + chunk.shape[1]:
            self.stats.jumps.append(float(np.abs(chunk[:, self.step - first] - self.plan[self.step]).max()))
        for i in range(chunk.shape[1]):
            s = first + i
            if s < self.step:
                continue  # overtaken by time while the policy computed
            self.plan[s] = self.merge(self.plan[s], chunk[:, i]) if s in self.plan else chunk[:, i]

    def _wants_chunk(self) -> bool:
        if self.source.busy:
            return False
        if self.execution.mode == "sync":
            return self.queued() == 0
        return self.queued() <= self.execution.threshold * self.actions_per_chunk

    def _guidance(self) -> Guidance | None:
        if not self.execution.rtc:
            return None
        planned = []
        for s in range(self.step, self.step + self.actions_per_chunk):
            if s not in self.plan:
                break
            planned.append(self.plan[s])
        if not planned:
            return None
        return Guidance(np.stack(planned, axis=1), min(self._last_latency_steps, len(planned)))

    def act(self, obs: dict, tasks: list[str]) -> np.ndarray:
        """The action [B, D] for this control step, from a batched observation; returns at once."""
        self._receive()
        if self._wants_chunk():
            self.source.submit(obs, tasks, self.step, self._guidance())
            self._receive()  # a zero-latency source answers at once
        action = self.plan.pop(self.step, None)
        for s in [s for s in self.plan if s < self.step]:
            del self.plan[s]
        if action is None:
            if self.stats.chunks:
                self.stats.stalls += 1
            else:
                self.stats.startup_holds += 1
            action = self.last if self.last is not None else np.asarray(obs[OBS_STATE], dtype=np.float32)
        self.last = np.asarray(action, dtype=np.float32)
        self.stats.actions.append(self.last)
        self.stats.steps += 1
        self.step += 1
        return self.last


def run_realtime_episode(env: Any, loop: ControlLoop, obs: dict, task: str, steps: int,
                         stop: Callable[[], bool] = lambda: False) -> tuple[dict, dict, int]:
    """Drive a single env (Real-v0: its ``step`` waits for the 30 Hz tick) for up to ``steps`` steps.

    Returns the last observation, the last info and the steps done. The loop's own work per tick
    is a queue pop and a non-blocking poll, so the policy's compute time never delays a tick.
    """
    info: dict = {}
    done = 0
    start = time.perf_counter()
    while done < steps:
        action = loop.act(batched(obs), [task])[0]
        obs, _, terminated, _, info = env.step(action)
        done += 1
        if terminated or stop():
            break
    info = {**info, "wall_s": time.perf_counter() - start}
    return obs, info, done
