"""``so101lab collect --ray``: episodes run in Ray actors across a cluster, one writer commits them.

Each actor keeps an env and its renderer warm and runs one episode at a time (collect's own
``run_episode``), encoding its videos on its machine into a scratch dir; the finished episode
comes back as values, thumbnails and mp4 bytes. The driver commits in seed order with the same
``DatasetWriter`` as a local run, so frames and values are those of ``--workers`` (same encoder,
same settings). A worker that dies mid-episode (killed, OOM, node lost) costs that one episode:
its seed is run again on a fresh actor, and every finished episode is already in the driver.
"""

from __future__ import annotations

import sys
import uuid
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from so101lab.distributed.ray_cluster import MAX_TRIES, ClusterError, connected, dead_worker_errors, wait_one

if TYPE_CHECKING:
    from so101lab.datasets import DatasetWriter
    from so101lab.experiments.collect import Args, _Job


class EpisodeWorker:
    """A Ray actor: one env kept warm, whole episodes recorded into a scratch dir of its machine."""

    def __init__(self) -> None:
        from so101lab.distributed.ray_cluster import scratch_dir

        self.scratch = Path(scratch_dir("collect"))

    def ready(self) -> dict[str, Any]:
        import os

        import so101lab

        return {"pid": os.getpid(), "version": so101lab.__version__}

    def run(self, job: _Job, seed: int) -> dict[str, Any]:
        """collect's episode, with its mp4s read back into bytes (the driver's disk is elsewhere)."""
        from so101lab.experiments.collect import run_episode

        result = run_episode(replace(job, root=self.scratch), seed)
        data = result["data"]
        if data is not None:
            result["mp4"] = {key: Path(path).read_bytes() for key, path in data.videos.items()}
            for path in data.videos.values():
                Path(path).unlink()
            data.videos = {}
        return result


def _materialise(result: dict[str, Any], root: Path) -> None:
    """Write an episode's mp4 bytes as temp files under ``root`` (the writer's repair removes them
    if the driver dies before committing)."""
    from so101lab.datasets.format import temp_path_for

    for key, blob in result.pop("mp4", {}).items():
        path = temp_path_for(root / "videos" / key / f"recording-{uuid.uuid4().hex[:12]}.mp4")
        path.write_bytes(blob)
        result["data"].videos[key] = path


def run_on_ray(args: Args, writer: DatasetWriter, seed: int, max_attempts: int,
               cameras: tuple[str, ...]) -> tuple[int, int, int, dict[str, Any]]:  # fmt: skip
    """collect's ``_run`` on a cluster: (saved, attempts, successes, what the cluster did)."""
    from so101lab.experiments.collect import _Job, env_kwargs

    job = _Job(Path("."), args.env_id, env_kwargs(args), cameras, writer.features, args.vcodec, args.keep_failed,
               args.max_steps, args.noise_deg, args.noise_seconds)  # fmt: skip
    with connected(args.ray, args.workers) as cluster:
        saved, attempts, successes, retried = _schedule(args, writer, job, seed, max_attempts)
    return saved, attempts, successes, {**cluster, "workers": args.workers, "retried_seeds": retried}


def _schedule(args: Args, writer: DatasetWriter, job: _Job, seed: int,
              max_attempts: int) -> tuple[int, int, int, list[int]]:  # fmt: skip
    import ray

    from so101lab.experiments.collect import SeedOrder

    remote = ray.remote(num_cpus=1)(EpisodeWorker)
    actors = [remote.remote() for _ in range(args.workers)]
    _check_versions(ray, actors)
    dead = dead_worker_errors()
    order = SeedOrder(seed)
    saved = attempts = successes = submitted = 0
    retry: deque[int] = deque()
    tries: dict[int, int] = {}
    retried: list[int] = []
    running: dict[Any, tuple[int, int]] = {}  # ref -> (actor slot, seed)
    idle = deque(range(args.workers))
    window = 2 * args.workers  # as --workers: in flight or waiting for an earlier seed
    bar = tqdm(total=args.episodes, desc=f"collect {args.env_id} (ray)", unit="ep", file=sys.stderr)

    def submit() -> None:
        nonlocal submitted
        while idle:
            if retry:
                s = retry.popleft()
            elif (submitted - attempts < window and saved + submitted - attempts < args.episodes
                  and submitted < max_attempts):  # fmt: skip
                s = seed + submitted
                submitted += 1
            else:
                return
            slot = idle.popleft()
            running[actors[slot].run.remote(job, s)] = (slot, s)

    try:
        while saved < args.episodes:
            submit()
            if not running:
                break
            finished = []
            for ref in wait_one(ray, list(running)):
                slot, s = running.pop(ref)
                try:
                    finished.append(ray.get(ref))
                except dead:
                    tries[s] = tries.get(s, 0) + 1
                    if tries[s] >= MAX_TRIES:
                        raise ClusterError(f"the worker running seed {s} died {MAX_TRIES} times; "
                                           "see the Ray logs of the nodes (ray logs)") from None
                    retried.append(s)
                    retry.append(s)
                    ray.kill(actors[slot], no_restart=True)
                    actors[slot] = remote.remote()
                idle.append(slot)
            submit()  # busy workers before the commit, which may take a while
            for result in (r for f in finished for r in order.add(f)):
                attempts += 1
                successes += result["success"]
                if result["data"] is None:
                    continue
                _materialise(result, writer.root)
                writer.save_episode(result["data"], extra={"seed": result["seed"], "success": result["success"],
                                                           "env_id": args.env_id, "noise_deg": args.noise_deg})
                saved += 1
                bar.update(1)
                bar.set_postfix(success=f"{successes}/{attempts}", retries=len(retried))
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor, no_restart=True)
    return saved, attempts, successes, retried


def _check_versions(ray: Any, actors: list[Any]) -> None:
    """Every node must run the driver's so101lab: another version could record other frames."""
    import so101lab

    for info in ray.get([a.ready.remote() for a in actors]):
        if info["version"] != so101lab.__version__:
            raise ClusterError(f"a Ray worker runs so101lab {info['version']}, this process {so101lab.__version__}; "
                               "install the same so101lab on every node")
