"""A pool of Ray actors driven from a child process, so that losing the cluster never takes the
process that writes the output with it.

Ray's driver exits the process at once (exit code 1, no Python exception) when the raylet it is
attached to dies, which is what happens on the head node when the head goes. So the Ray driver
runs in a spawned child; the parent (the dataset writer, eval_info.json) talks to it over a local
pipe and turns the child's death, or the head's port going silent, into a `ClusterError`.

Jobs are ``(key, args)``; each runs as ``actor.run(*args)`` on an idle actor, one at a time per
actor, so a dead actor had exactly one job in progress: that job is run again on a fresh actor
(``("retry", key)`` is reported) and nothing that finished is lost.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from so101lab.distributed.ray_cluster import MAX_TRIES, ClusterError, HeadWatch, check_head

# How long the parent waits for the child's Ray to start before saying the cluster is unreachable.
START_TIMEOUT_S = 120.0


@dataclass
class PoolSpec:
    """What the pool runs: ``workers`` actors of ``actor_class(*init_args)`` with these resources."""

    address: str
    workers: int
    actor_class: type
    init_args: tuple = ()
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)


class RayPool:
    """The parent's side: ``submit(key, *args)``, then ``events()`` yields ``("result", key, value)``
    and ``("retry", key, None)`` as they come."""

    def __init__(self, spec: PoolSpec) -> None:
        from so101lab.distributed.ray_cluster import import_ray

        import_ray()  # a missing extra is one line here, not a traceback in the child
        check_reachable(spec.address)
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._child = ctx.Process(target=_child_main, args=(child_conn, os.getpid(), spec), daemon=True,
                                  name="so101lab-ray-driver")  # fmt: skip
        self._child.start()
        child_conn.close()
        self.address = spec.address
        self._watch: HeadWatch | None = None
        try:
            kind, _, value = self._receive(START_TIMEOUT_S, starting=True)
            if kind == "error":
                raise ClusterError(value)
        except BaseException:
            self.close()
            raise
        self.cluster: dict[str, Any] = value
        self._watch = HeadWatch(value["address"])
        self.outstanding = 0

    def submit(self, key: Any, *args: Any) -> None:
        self._conn.send(("run", key, args))
        self.outstanding += 1

    def next_event(self, timeout_s: float = 1.0) -> tuple[str, Any, Any] | None:
        """The next event, or None if none came within ``timeout_s`` (the cluster is checked either way)."""
        event = self._receive(timeout_s)
        if event is None:
            return None
        kind, key, value = event
        if kind == "failed":  # the job's own code raised: as a local run would
            raise RuntimeError(f"a Ray worker failed on {key!r}:\n{value}")
        if kind == "error":
            raise ClusterError(value)
        if kind == "result":
            self.outstanding -= 1
        return kind, key, value

    def _receive(self, timeout_s: float, starting: bool = False) -> Any:
        check_head()
        if self._conn.poll(timeout_s):
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                pass
        elif self._child.is_alive():
            if starting:
                raise ClusterError(f"the Ray cluster at {self.address!r} did not answer in {START_TIMEOUT_S:.0f} s")
            return None
        self._child.join(5)
        check_head()
        raise ClusterError(f"lost the Ray cluster at {self.address!r}: its driver process exited "
                           f"(code {self._child.exitcode}); the head or this machine's node is gone")

    def close(self) -> None:
        """Stop the actors and the child (it kills them and leaves the cluster)."""
        if self._watch is not None:
            self._watch.stop()
        if self._child.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(("stop", None, None))
            self._child.join(10)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()
        self._conn.close()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_reachable(address: str) -> None:
    """A host:port nothing listens on is one line at once (Ray's own driver retries it for minutes)."""
    if address in ("auto", "local") or "://" in address or ":" not in address:
        return
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise ClusterError(f"nothing answers at --ray {address} ({e}); start the head there with "
                           "`ray start --head --port PORT` (docs/ray.md)") from None


def _child_main(conn: Any, parent_pid: int, spec: PoolSpec) -> None:
    """The Ray driver: joins the cluster, runs jobs on its actors, reports to the parent."""
    from so101lab.shutdown import watch_parent

    watch_parent(parent_pid)  # dies with the parent (its actors then die with it: Ray owns them by driver)
    import ray

    from so101lab.distributed.ray_cluster import connected

    try:
        with connected(spec.address, spec.workers) as cluster:
            conn.send(("ready", None, cluster))
            _drive(ray, conn, spec)
    except ClusterError as e:
        conn.send(("error", None, str(e)))


def _drive(ray: Any, conn: Any, spec: PoolSpec) -> None:
    from so101lab.distributed.ray_cluster import dead_worker_errors

    remote = ray.remote(num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, **spec.options)(spec.actor_class)
    actors = [remote.remote(*spec.init_args) for _ in range(spec.workers)]
    dead = dead_worker_errors()
    queue: deque[tuple[Any, tuple]] = deque()
    running: dict[Any, tuple[int, Any, tuple]] = {}  # ref -> (actor slot, key, args)
    idle = deque(range(spec.workers))
    tries: dict[Any, int] = {}
    try:
        while True:
            while conn.poll(0 if running or queue else 0.5):
                kind, key, args = conn.recv()
                if kind == "stop":
                    return
                queue.append((key, args))
            while idle and queue:
                key, args = queue.popleft()
                slot = idle.popleft()
                running[actors[slot].run.remote(*args)] = (slot, key, args)
            if not running:
                continue
            done, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
            for ref in done:
                slot, key, args = running.pop(ref)
                idle.append(slot)
                try:
                    value = ray.get(ref)
                except dead as e:
                    tries[key] = tries.get(key, 0) + 1
                    if tries[key] >= MAX_TRIES:
                        why = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
                        conn.send(("error", key, f"the worker running {key!r} died {MAX_TRIES} times (last: {why}); "
                                                 "see the nodes' Ray logs"))
                        return
                    queue.appendleft((key, args))  # the earliest job first: the writer waits on it
                    ray.kill(actors[slot], no_restart=True)
                    actors[slot] = remote.remote(*spec.init_args)
                    conn.send(("retry", key, None))
                    continue
                except ray.exceptions.RayTaskError as e:
                    conn.send(("failed", key, str(e)))
                    continue
                conn.send(("result", key, value))
    except (EOFError, OSError, BrokenPipeError):
        return  # the parent went away
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):  # the cluster may be gone
                ray.kill(actor, no_restart=True)
