"""Joining a Ray cluster for ``--ray``, and noticing when its head is gone.

Ray is imported here, inside functions, so that ``so101lab`` without the ``ray`` extra never pays
for it. The driver (the process that holds the dataset writer or writes eval_info.json) is the only
one that touches the output; workers send results back through Ray's own object transfer (which
pickles between Ray's processes; so101lab opens no port of its own).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

# Enough for a transient hiccup, short enough that a dead head is reported within seconds.
HEAD_CHECK_S = 1.0
HEAD_MISSES = 3
# A seed whose worker died this many times is not a worker's bad luck: stop and say so.
MAX_TRIES = 3


class ClusterError(RuntimeError):
    """The Ray cluster cannot be used (Ray missing, unreachable, head lost, workers keep dying)."""


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise ClusterError("--ray needs Ray: pip install 'so101lab[ray]'") from None
    return ray


def dead_worker_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the worker (or its node) died, not that the episode's code raised."""
    from ray import exceptions as rex

    return (rex.RayActorError, rex.WorkerCrashedError, rex.ObjectLostError, rex.NodeDiedError)


@contextlib.contextmanager
def connected(address: str, local_cpus: int) -> Iterator[dict[str, Any]]:
    """Join the cluster at ``address`` (``auto``: the one this machine joined with ``ray start``;
    ``local``: a Ray started for this run with ``local_cpus`` CPUs; else ``host:port``) for the
    block; yields what it is (address, nodes, CPUs, GPUs)."""
    ray = import_ray()
    joined = not ray.is_initialized()  # else a caller (a test, a notebook) joined one: use it, leave it
    if joined:
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if address == "local":
                ray.init(num_cpus=local_cpus, include_dashboard=False, **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ClusterError(f"could not join the Ray cluster at {address!r} ({str(e).splitlines()[0]}); "
                               "start one with `ray start --head` (docs/ray.md)") from None
    try:
        yield describe(ray)
    finally:
        if joined:
            ray.shutdown()


def describe(ray: Any) -> dict[str, Any]:
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    resources = ray.cluster_resources()
    return {"address": ray.get_runtime_context().gcs_address, "nodes": len(nodes),
            "cpus": resources.get("CPU", 0.0), "gpus": resources.get("GPU", 0.0)}


class HeadWatch:
    """Polls the head's GCS port from a thread: Ray's own driver retries a dead head for a minute
    or more without raising, while a run should stop at once and say why."""

    def __init__(self, gcs_address: str) -> None:
        host, port = gcs_address.rsplit(":", 1)
        self.address, self._host, self._port = gcs_address, host, int(port)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="so101lab-ray-head", daemon=True)
        self._thread.start()
        _WATCHES.append(self)

    def _poll(self) -> None:
        misses = 0
        while not self._stop.wait(HEAD_CHECK_S):
            try:
                socket.create_connection((self._host, self._port), timeout=HEAD_CHECK_S).close()
                misses = 0
            except OSError:
                misses += 1
                if misses >= HEAD_MISSES:
                    self.lost = True
                    return

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(ValueError):
            _WATCHES.remove(self)


_WATCHES: list[HeadWatch] = []


def check_head() -> None:
    """Raise `ClusterError` if the head of the cluster this process joined stopped answering."""
    for watch in _WATCHES:
        if watch.lost:
            raise ClusterError(f"lost the Ray head at {watch.address} (its port stopped answering for "
                               f"{HEAD_CHECK_S * HEAD_MISSES:.0f} s)")


def scratch_dir(kind: str) -> str:
    """A per-process temp dir on the worker's machine; dirs of dead processes (SIGKILLed workers)
    are removed first, so a killed worker's partial files do not pile up."""
    import shutil
    import tempfile
    from pathlib import Path

    base = Path(tempfile.gettempdir()) / f"so101lab-ray-{kind}"
    base.mkdir(parents=True, exist_ok=True)
    for old in base.iterdir():
        if old.name.isdigit() and not _alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = base / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir()
    return str(mine)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
