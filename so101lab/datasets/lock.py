"""One writer per dataset: an OS-level lock on ``<root>/.lock``, held for the writer's life.

``flock`` is tied to the open file, so the kernel drops it when the holder exits in any way
(SIGKILL included): a crash never leaves a stale lock behind, and no cleanup step is needed.
The holder writes its pid into the file so that a refused writer can say who holds it. Readers
never take the lock (the writer's commit order keeps every listed episode complete).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = ".lock"


class DatasetLockedError(RuntimeError):
    """Another process (or another writer in this one) is writing the dataset."""


class DatasetLock:
    """An exclusive, non-blocking lock on the dataset at ``root`` (created as a directory if absent)."""

    def __init__(self, root: str | Path) -> None:
        self._fd: int | None = None
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatasetLockedError(
                f"{self.root} is being written by another process (pid {self._holder_pid()}); "
                "one writer per dataset: wait for it to finish or use another --root"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _holder_pid(self) -> str:
        # The holder writes its pid just after locking; give it a moment if we raced that write.
        for _ in range(20):
            with contextlib.suppress(OSError):
                pid = self.path.read_text().strip()
                if pid:
                    return pid
            time.sleep(0.025)
        return "unknown"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the pid (so it never names a past holder) and unlock; idempotent."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor of the open file drops the flock
        self._fd = None

    def __del__(self) -> None:
        self.release()
