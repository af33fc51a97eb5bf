"""Keyboard prompts of the hardware launchers: one stdin reader shared by every prompt.

Prompts ("press Enter when ...") and polled stop checks ("press Enter to stop") both read
stdin; one background thread reading it for all of them keeps them from racing each other.
End of input (stdin from /dev/null, a closed pipe, Ctrl-D) answers every prompt, present and
future, so none waits forever without a terminal: a question is answered "no", an Enter-to-stop
check is pressed, and a prompt confirming that the operator did something to the arm ("connect
only this motor", "unplug the cable") stops the command with one line, since nobody did it.
"""

from __future__ import annotations

import queue
import sys
import threading

from so101lab.real.errors import NoOperatorError


class Keyboard:
    """Lines typed on stdin, read by one background thread (the process-wide ``get()``)."""

    _instance: Keyboard | None = None

    def __init__(self) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._eof = threading.Event()
        threading.Thread(target=self._read, name="keyboard", daemon=True).start()

    @classmethod
    def get(cls) -> Keyboard:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _read(self) -> None:
        try:
            for line in sys.stdin or ():
                self._lines.put(line.rstrip("\n"))
        except (OSError, ValueError):  # stdin closed or unreadable: the same as its end
            pass
        self._eof.set()
        self._lines.put("")  # wakes a prompt waiting now; later ones see `_eof`

    @property
    def at_eof(self) -> bool:
        """Input has ended: every prompt is answered with an empty line."""
        return self._eof.is_set() and self._lines.empty()

    def ask(self, message: str) -> str:
        """Print a prompt and wait for a line (discarding lines typed before it); "" at end of input."""
        self.drain()
        print(message, end=" ", flush=True)
        while True:
            if self.at_eof:
                print(flush=True)
                return ""
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if not line and self._eof.is_set():
                print(flush=True)
            return line

    def pressed(self) -> bool:
        """True if Enter was pressed since the last check, or input has ended (non-blocking)."""
        try:
            self._lines.get_nowait()
            return True
        except queue.Empty:
            return self._eof.is_set()

    def drain(self) -> None:
        """Forget lines typed so far (the end of input is kept)."""
        while not self._lines.empty():
            try:
                self._lines.get_nowait()
            except queue.Empty:
                break


def wait_for_enter(message: str) -> None:
    """Wait until the operator presses Enter; `NoOperatorError` if input ended (nobody to do it)."""
    keyboard = Keyboard.get()
    keyboard.ask(message)
    if keyboard.at_eof:
        raise NoOperatorError(f"no operator: input ended at the prompt {message!r}; run the command in a "
                              "terminal to answer it")


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
