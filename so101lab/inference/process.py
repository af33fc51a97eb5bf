"""Starting a policy server as a child process and finding where it listens."""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

READY_PREFIX = "policy server listening on "


@contextlib.contextmanager
def spawned_server(server_args: Sequence[str], ready_timeout: float = 120.0) -> Iterator[str]:
    """Run ``so101lab policy-server <server_args>`` on a free localhost port; yields its ``host:port``.

    The child is stopped (terminate, then kill) when the block ends, whatever happens in it.
    """
    cmd = [sys.executable, "-m", "so101lab.inference.server", "--host", "127.0.0.1", "--port", "0",
           *server_args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield _wait_ready(proc, ready_timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_ready(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                line = proc.stdout.readline()
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX):].strip()
                if not line and proc.poll() is not None:
                    break
            elif proc.poll() is not None:
                break
    if proc.poll() is not None:
        raise RuntimeError(f"policy server exited with code {proc.returncode}: {proc.stderr.read()[-2000:]}")
    raise TimeoutError(f"policy server did not report ready within {timeout} s")
