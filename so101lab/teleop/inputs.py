"""Teleoperation input: key presses and gamepad events -> one `TeleopCommand` per 30 Hz tick.

Devices report events, not state: a terminal or a MuJoCo viewer sees a key when it is pressed and
again at the keyboard's auto-repeat, never when released. A key press therefore commands motion
for `KEY_HOLD` seconds; holding the key keeps renewing it. Gamepads report axis positions, kept as
state. Scripted sources feed the same mappers in tests, so no device is needed.

Keys (as LeRobot's recorder for the controls): w/s forward/back, a/d left/right, r/f up/down, q/e
yaw, i/k pitch, space toggles the gripper; right arrow ends the episode (or reset phase), left
arrow re-records it, Esc stops recording.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from so101lab.contract import CONTROL_DT
from so101lab.errors import UsageError

GRIPPER_OPEN = 35.0  # LeRobot gripper units (the scripted expert's open jaw)
GRIPPER_CLOSED = 0.0
KEY_HOLD = 0.25  # s a key press keeps commanding motion (bridges the keyboard's auto-repeat delay)
CONTROLS = ("exit_early", "rerecord_episode", "stop_recording")  # LeRobot's event names

# key name -> (axis of [x, y, z, yaw, pitch], sign)
MOTION_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
    "q": (3, 1), "e": (3, -1), "i": (4, 1), "k": (4, -1),
}  # fmt: skip
CONTROL_KEYS: dict[str, str] = {"right": "exit_early", "left": "rerecord_episode", "escape": "stop_recording"}


@dataclass
class TeleopCommand:
    """What the operator asks for during one control tick."""

    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))  # tool, m/s, world frame
    yaw_rate: float = 0.0  # rad/s about the world's vertical
    pitch_rate: float = 0.0  # rad/s about the tool's own y axis
    gripper: float | None = None  # a new gripper target (LeRobot units), or None to keep it
    controls: set[str] = field(default_factory=set)  # of CONTROLS


class InputSource(Protocol):
    """Events since the last call: key names (str) or gamepad events ((type, code, value) tuples)."""

    def poll(self) -> list: ...


class ScriptedInput:
    """Events at given ticks (``{tick: [event, ...]}``), one `poll` per tick: tests drive teleop with it."""

    def __init__(self, timeline: dict[int, Sequence]):
        self.timeline = {int(k): list(v) for k, v in timeline.items()}
        self.tick = 0

    def poll(self) -> list:
        events = self.timeline.get(self.tick, [])
        self.tick += 1
        return events


class KeyQueue:
    """Key names pushed from another thread (a viewer's key callback, a terminal reader)."""

    def __init__(self) -> None:
        self._keys: queue.Queue[str] = queue.Queue()

    def push(self, key: str) -> None:
        self._keys.put(key)

    def poll(self) -> list[str]:
        keys = []
        with contextlib.suppress(queue.Empty):
            while True:
                keys.append(self._keys.get_nowait())
        return keys


# GLFW key codes (what mujoco.viewer's key_callback receives) -> key names.
_GLFW = {32: "space", 256: "escape", 262: "right", 263: "left", 264: "down", 265: "up"}


def glfw_key_name(code: int) -> str | None:
    """A MuJoCo viewer key code as a key name ("w", "space", "right"...), None if unmapped."""
    if 65 <= code <= 90:
        return chr(code).lower()
    return _GLFW.get(code)


_ESCAPES = {"\x1b[C": "right", "\x1b[D": "left", "\x1b[A": "up", "\x1b[B": "down"}


@contextlib.contextmanager
def terminal_keys(keys: KeyQueue) -> Iterator[bool]:
    """Read single key presses from the terminal (no Enter) into ``keys`` for the block; yields False
    (and reads nothing) when stdin is not a terminal. The terminal's mode is restored on every exit."""
    if not sys.stdin or not sys.stdin.isatty():
        yield False
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            data = os.read(fd, 16).decode(errors="ignore")
            if not data:
                return
            if data in _ESCAPES:
                keys.push(_ESCAPES[data])
            elif data == "\x1b":
                keys.push("escape")
            else:
                for ch in data:
                    keys.push("space" if ch == " " else ch.lower())

    tty.setcbreak(fd)  # keys arrive one by one, unechoed; Ctrl-C stays a signal
    thread = threading.Thread(target=read, name="terminal-keys", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join(timeout=1.0)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class KeyboardMapper:
    """Key presses -> commands: motion for `KEY_HOLD` s per press, the gripper toggled by space."""

    def __init__(self, speed: float = 0.10, angular_speed: float = 1.2, gripper_open: float = GRIPPER_OPEN):
        self.speed, self.angular_speed, self.gripper_open = speed, angular_speed, gripper_open
        self._until = np.zeros(5)  # per axis: time until which it moves, and in which direction
        self._sign = np.zeros(5)
        self._now = 0.0
        self.gripper_closed = False

    def __call__(self, keys: Iterable[str]) -> TeleopCommand:
        command = TeleopCommand()
        for key in keys:
            if key in MOTION_KEYS:
                axis, sign = MOTION_KEYS[key]
                self._until[axis], self._sign[axis] = self._now + KEY_HOLD, sign
            elif key == "space":
                self.gripper_closed = not self.gripper_closed
                command.gripper = GRIPPER_CLOSED if self.gripper_closed else self.gripper_open
            elif key in CONTROL_KEYS:
                command.controls.add(CONTROL_KEYS[key])
        rates = np.where(self._until > self._now, self._sign, 0.0)
        command.velocity = rates[:3] * self.speed
        command.yaw_rate, command.pitch_rate = rates[3] * self.angular_speed, rates[4] * self.angular_speed
        self._now += CONTROL_DT
        return command


# Gamepad events as the `inputs` library reports them: (ev_type, code, state).
GAMEPAD_AXES: dict[str, tuple[int, float]] = {  # code -> (axis of [x, y, z, yaw, pitch], sign)
    "ABS_Y": (0, -1), "ABS_X": (1, -1), "ABS_RY": (2, -1), "ABS_RX": (3, -1), "ABS_HAT0Y": (4, -1),
}  # fmt: skip
GAMEPAD_BUTTONS: dict[str, str] = {"BTN_START": "exit_early", "BTN_SELECT": "rerecord_episode",
                                   "BTN_MODE": "stop_recording"}
STICK_MAX = 32768.0  # signed 16-bit sticks
TRIGGER_MAX = 255.0  # 8-bit triggers (ABS_Z left, ABS_RZ right)
DEADZONE = 0.12


class GamepadMapper:
    """Gamepad events -> commands: left stick x/y, right stick z/yaw, d-pad pitch; the right trigger
    closes the gripper as far as it is pulled; Start ends the episode, Select re-records, Mode stops."""

    def __init__(self, speed: float = 0.12, angular_speed: float = 1.5, gripper_open: float = GRIPPER_OPEN):
        self.speed, self.angular_speed, self.gripper_open = speed, angular_speed, gripper_open
        self.axes = np.zeros(5)

    def __call__(self, events: Iterable[tuple[str, str, int]]) -> TeleopCommand:
        command = TeleopCommand()
        for ev_type, code, state in events:
            if code in GAMEPAD_AXES:
                axis, sign = GAMEPAD_AXES[code]
                value = state if code.startswith("ABS_HAT") else state / STICK_MAX
                self.axes[axis] = sign * (0.0 if abs(value) < DEADZONE else float(np.clip(value, -1, 1)))
            elif code == "ABS_RZ":
                command.gripper = self.gripper_open * (1.0 - float(np.clip(state / TRIGGER_MAX, 0, 1)))
            elif ev_type == "Key" and code in GAMEPAD_BUTTONS and state:
                command.controls.add(GAMEPAD_BUTTONS[code])
        command.velocity = self.axes[:3] * self.speed
        command.yaw_rate, command.pitch_rate = self.axes[3:] * self.angular_speed
        return command


class GamepadEvents:
    """The first gamepad's events, read in a background thread through the `inputs` library (imported
    only here: ``pip install inputs``)."""

    def __init__(self, read: Callable[[], list] | None = None):
        if read is None:
            try:
                import inputs
            except ImportError:
                raise UsageError("--teleop gamepad needs the `inputs` package: "
                                 "pip install 'so101lab[teleop]'") from None
            if not inputs.devices.gamepads:
                raise UsageError("no gamepad found: plug one in (USB or paired Bluetooth) and retry")
            read = inputs.get_gamepad
        self._read = read
        self._events: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, name="gamepad", daemon=True).start()

    def _pump(self) -> None:
        with contextlib.suppress(Exception):  # unplugged: no more events (the arm holds still)
            while True:
                for event in self._read():
                    self._events.put((event.ev_type, event.code, event.state))

    def poll(self) -> list[tuple[str, str, int]]:
        events = []
        with contextlib.suppress(queue.Empty):
            while True:
                events.append(self._events.get_nowait())
        return events
