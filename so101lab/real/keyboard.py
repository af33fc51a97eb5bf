"""Keyboard prompts of the hardware launchers: one stdin reader shared by every prompt.

Prompts ("press Enter when ...") and polled stop checks ("press Enter to stop") both read
stdin; one background thread reading it for all of them keeps them from racing each other.
"""

from __future__ import annotations

import queue
import sys
import threading


class Keyboard:
    """Lines typed on stdin, read by one background thread (the process-wide ``get()``)."""

    _instance: Keyboard | None = None

    def __init__(self) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, name="keyboard", daemon=True).start()

    @classmethod
    def get(cls) -> Keyboard:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _read(self) -> None:
        for line in sys.stdin:
            self._lines.put(line.rstrip("\n"))
        self._lines.put("")  # EOF counts as Enter, so nothing waits forever

    def ask(self, message: str) -> str:
        """Print a prompt and wait for a line (discarding lines typed before it)."""
        self.drain()
        print(message, end=" ", flush=True)
        return self._lines.get()

    def pressed(self) -> bool:
        """True if Enter was pressed since the last check (non-blocking)."""
        try:
            self._lines.get_nowait()
            return True
        except queue.Empty:
            return False

    def drain(self) -> None:
        while self.pressed():
            pass


def wait_for_enter(message: str) -> None:
    Keyboard.get().ask(message)


def ask_yes_no(question: str) -> bool:
    return Keyboard.get().ask(f"{question} [y/N]").strip().lower() in ("y", "yes")


class EnterPressed:
    """Polled stop condition: true once Enter is pressed after this was created."""

    def __init__(self, message: str = "") -> None:
        self._keyboard = Keyboard.get()
        self._keyboard.drain()
        self._done = False
        if message:
            print(message, flush=True)

    def __call__(self) -> bool:
        self._done = self._done or self._keyboard.pressed()
        return self._done
