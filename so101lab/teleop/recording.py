"""Recording with LeRobot's controls, for a sim env and Real-v0 alike.

Phases: an optional warm-up (the operator drives, nothing is recorded), then per episode the
recording phase (until its time is up, the right arrow ends it early, or a sim task succeeds)
and a reset phase (drive without recording, e.g. to put the scene back; the right arrow ends it).
The left arrow during an episode or its reset phase re-records that episode (same seed); Esc
saves the episode in progress and stops. The state is shown on the terminal and in a viewer.

The dataset keeps every finished episode whatever happens: an episode is saved when its reset
phase ends, or as soon as anything (Ctrl-C, SIGTERM, an error) interrupts that phase. An
episode interrupted while it is being recorded is dropped, as an unfinished one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import numpy as np

from so101lab.contract import CONTROL_DT, FEATURE_ACTION, FEATURE_STATE, OBS_PIXELS, OBS_STATE, image_feature
from so101lab.teleop.inputs import CONTROLS

KEY_HELP = "right arrow: end  left arrow: re-record  Esc: stop"


@dataclass(frozen=True)
class Phases:
    """How long each phase lasts (s) and how many episodes to record."""

    episodes: int
    episode_seconds: float
    warmup_seconds: float = 0.0
    reset_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.episode_seconds <= 0 or self.warmup_seconds < 0 or self.reset_seconds < 0:
            raise ValueError(f"need episodes >= 1, episode seconds > 0, warm-up and reset seconds >= 0; got {self}")


@dataclass
class Events:
    """LeRobot's recording events, set by keys or gamepad buttons."""

    exit_early: bool = False
    rerecord_episode: bool = False
    stop_recording: bool = False

    def apply(self, controls: set[str]) -> None:
        unknown = set(controls) - set(CONTROLS)
        if unknown:
            raise ValueError(f"unknown recording controls {unknown}; known: {CONTROLS}")
        for name in controls:
            setattr(self, name, True)
        # Re-record and stop both end the phase at once, as in LeRobot.
        self.exit_early = self.exit_early or self.rerecord_episode or self.stop_recording


class Operator(Protocol):
    """Who acts while recording: a teleoperated sim arm, a leader arm, a scripted expert."""

    def reset(self) -> None:
        """A new episode started (the env was just reset)."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The action of this tick (6 joint targets, LeRobot units)."""

    def controls(self) -> set[str]:
        """Recording controls pressed since the last call (subset of `CONTROLS`)."""


@dataclass
class Status:
    """What the operator sees: the phase, the episode and the time left, on the terminal (one line
    rewritten in place on a tty, a line per phase otherwise) and as a viewer overlay if given."""

    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    viewer: Any = None  # a mujoco.viewer.Handle
    history: list[str] = field(default_factory=list)  # each phase's headline, in order (tests read it)
    _last: str = ""

    def phase(self, headline: str) -> None:
        self.history.append(headline)
        if not self._tty:
            print(headline, file=self.stream, flush=True)

    def tick(self, headline: str, seconds_left: float) -> None:
        line = f"{headline}  {seconds_left:4.1f} s left  |  {KEY_HELP}"
        if self._tty and line != self._last:
            print(f"\r\x1b[2K{line}", end="", file=self.stream, flush=True)
        self._last = line
        if self.viewer is not None:
            import mujoco

            try:
                self.viewer.set_texts((None, mujoco.mjtGridPos.mjGRID_TOPLEFT, headline,
                                       f"{seconds_left:.1f} s left\n{KEY_HELP}"))
            except Exception:  # a closed viewer must not stop the recording
                self.viewer = None

    def done(self, message: str) -> None:
        if self._tty:
            print(file=self.stream)
        self.phase(message)

    @property
    def _tty(self) -> bool:
        return hasattr(self.stream, "isatty") and self.stream.isatty()


def frame_of(obs: dict[str, Any], action: np.ndarray) -> dict[str, Any]:
    """The dataset frame of one tick: state and images at t, the action sent at t."""
    frame = {FEATURE_STATE: obs[OBS_STATE], FEATURE_ACTION: np.asarray(action, dtype=np.float32)}
    for name, img in obs.get(OBS_PIXELS, {}).items():
        frame[image_feature(name)] = img
    return frame


def record_episodes(env: Any, operator: Operator, writer: Any, phases: Phases, first_seed: int, *,
                    task: str = "", status: Status | None = None, realtime: bool = False,
                    end_on_success: bool = False, extra: Callable[[int, dict], dict] | None = None,
                    on_step: Callable[[], None] | None = None) -> list[int]:
    """Record ``phases.episodes`` episodes (seeds from ``first_seed``) into ``writer``; the saved
    episode indices. ``realtime`` paces a sim at 30 Hz (Real-v0 paces itself); ``on_step`` runs
    after every step (a viewer sync); ``extra(seed, info)`` adds columns to an episode (``info``: the
    env's at the episode's last step)."""
    status = status or Status()
    events = Events()
    saved: list[int] = []
    next_tick = time.perf_counter()

    def run(headline: str, seconds: float, record: bool, obs: dict, info: dict) -> tuple[dict, dict, int]:
        nonlocal next_tick
        status.phase(headline)
        steps = round(seconds / CONTROL_DT)
        frames = 0
        next_tick = time.perf_counter()
        for t in range(steps):
            action = operator.act(obs)
            events.apply(operator.controls())
            if record:
                writer.add_frame(frame_of(obs, action), info.get("task") or task)
                frames += 1
            obs, _, terminated, _, info = env.step(action)
            if on_step is not None:
                on_step()
            status.tick(headline, (steps - t - 1) * CONTROL_DT)
            if realtime:
                next_tick += CONTROL_DT
                time.sleep(max(0.0, next_tick - time.perf_counter()))
            if events.exit_early or (record and end_on_success and terminated):
                break
        return obs, info, frames

    seed = first_seed
    if phases.warmup_seconds > 0:
        obs, info = env.reset(seed=seed)
        operator.reset()
        run("warm-up (not recorded)", phases.warmup_seconds, False, obs, info)
        events.exit_early = events.rerecord_episode = False
    while len(saved) < phases.episodes and not events.stop_recording:
        number = f"episode {len(saved) + 1}/{phases.episodes}"
        obs, info = env.reset(seed=seed)
        operator.reset()
        obs, info, frames = run(f"{number} recording (seed {seed})", phases.episode_seconds, True, obs, info)
        episode_info = info
        last = len(saved) + 1 == phases.episodes
        try:
            if not (events.rerecord_episode or events.stop_recording or last) and phases.reset_seconds > 0:
                events.exit_early = False
                run(f"{number} reset phase (not recorded)", phases.reset_seconds, False, obs, info)
        finally:  # a finished episode is kept, also when the reset phase is interrupted
            if events.rerecord_episode or frames == 0:
                writer.discard_episode()
                status.phase(f"{number} discarded: re-recording it")
            else:
                saved.append(writer.save_episode(extra={"seed": seed, **(extra(seed, episode_info) if extra else {})}))
                status.phase(f"{number} saved as episode {saved[-1]} ({frames} frames)")
                seed += 1
            events.exit_early = events.rerecord_episode = False
    status.done(f"recorded {len(saved)} episodes" + (" (stopped)" if events.stop_recording else ""))
    return saved


class CallableOperator:
    """An operator from an ``act`` function (a leader arm, a scripted expert) whose recording controls
    come from key presses (``keys``: an input source of key names, or None for none)."""

    def __init__(self, act: Callable[[dict], np.ndarray], reset: Callable[[], None] = lambda: None,
                 keys: Any = None):
        self._act, self._reset, self.keys = act, reset, keys

    def reset(self) -> None:
        self._reset()

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return self._act(obs)

    def controls(self) -> set[str]:
        from so101lab.teleop.inputs import CONTROL_KEYS

        events = self.keys.poll() if self.keys is not None else []
        return {CONTROL_KEYS[k] for k in events if k in CONTROL_KEYS}
