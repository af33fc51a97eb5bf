"""How a so101lab process ends: termination signals as Ctrl-C, and workers that die with their parent.

A launcher stopped by SIGTERM (``kill``, systemd, a CI timeout) or SIGHUP (the terminal closed)
must unwind exactly as on Ctrl-C, so every ``finally`` that turns torque off or closes a dataset
runs. Worker processes must not outlive a launcher killed outright (SIGKILL runs no cleanup):
each one watches its parent and exits when it is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt (so the same
    handlers clean up); ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    # Once: a second signal while torque goes off must not interrupt that cleanup.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise Terminated(signum)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP raise `Terminated` (a KeyboardInterrupt) in the main thread from now on."""
    if threading.current_thread() is not threading.main_thread():
        return
    for s in STOP_SIGNALS:
        signal.signal(s, _raise_terminated)


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """`stop_on_signals` for a block, restoring the previous handlers after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    stop_on_signals()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def exit_code(exc: KeyboardInterrupt) -> int:
    """The shell's code for a process ended by this interrupt: 128 + the signal number."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)


def watch_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Exit this process as soon as ``parent_pid`` is no longer its parent (the parent died).

    For workers (e.g. a ProcessPoolExecutor ``initializer``): on Linux the kernel sends SIGKILL
    when the parent dies (``PR_SET_PDEATHSIG``); everywhere, a daemon thread also polls the
    parent pid, which changes when the parent dies and the worker is re-parented.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
