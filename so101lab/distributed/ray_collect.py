"""``so101lab collect --ray``: episodes run in Ray actors across a cluster, one writer commits them.

Each actor keeps an env and its renderer warm and runs one episode at a time (collect's own
``run_episode``), encoding its videos on its machine into a scratch dir; the finished episode
comes back as values, thumbnails and mp4 bytes. This process commits in seed order with the same
``DatasetWriter`` as a local run, so frames and values are those of ``--workers`` (same encoder,
same settings). A worker that dies mid-episode (killed, out of memory, node lost) costs that one
episode: its seed runs again on a fresh actor, and every finished episode is already here.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from so101lab.distributed.ray_pool import PoolSpec, RayPool

if TYPE_CHECKING:
    from so101lab.datasets import DatasetWriter
    from so101lab.experiments.collect import Args, _Job


class EpisodeWorker:
    """A Ray actor: one env kept warm, whole episodes recorded into a scratch dir of its machine."""

    def __init__(self, version: str) -> None:
        import so101lab
        from so101lab.distributed.ray_cluster import scratch_dir

        if version != so101lab.__version__:  # another version could record other frames
            raise RuntimeError(f"this node runs so101lab {so101lab.__version__}, the driver {version}; "
                               "install the same so101lab on every node")
        self.scratch = Path(scratch_dir("collect"))

    def run(self, job: _Job, seed: int) -> dict[str, Any]:
        """collect's episode, with its mp4s read back into bytes (the writer's disk is elsewhere)."""
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
    if this process dies before committing)."""
    from so101lab.datasets.format import temp_path_for

    for key, blob in result.pop("mp4", {}).items():
        path = temp_path_for(root / "videos" / key / f"recording-{uuid.uuid4().hex[:12]}.mp4")
        path.write_bytes(blob)
        result["data"].videos[key] = path


def run_on_ray(args: Args, writer: DatasetWriter, seed: int, max_attempts: int,
               cameras: tuple[str, ...]) -> tuple[int, int, int, dict[str, Any]]:  # fmt: skip
    """collect's ``_run`` on a cluster: (saved, attempts, successes, what the cluster did)."""
    import so101lab
    from so101lab.experiments.collect import SeedOrder, _Job, env_kwargs

    job = _Job(Path("."), args.env_id, env_kwargs(args), cameras, writer.features, args.vcodec, args.keep_failed,
               args.max_steps, args.noise_deg, args.noise_seconds)  # fmt: skip
    order = SeedOrder(seed)
    saved = attempts = successes = submitted = 0
    retried: list[int] = []
    window = 2 * args.workers  # as --workers: in flight or waiting for an earlier seed
    spec = PoolSpec(args.ray, args.workers, EpisodeWorker, (so101lab.__version__,))
    with RayPool(spec) as pool:
        bar = tqdm(total=args.episodes, desc=f"collect {args.env_id} (ray)", unit="ep", file=sys.stderr)
        try:
            while saved < args.episodes:
                while (submitted - attempts < window and saved + submitted - attempts < args.episodes
                       and submitted < max_attempts):  # fmt: skip
                    pool.submit(seed + submitted, job, seed + submitted)
                    submitted += 1
                if not pool.outstanding:
                    break
                event = pool.next_event()
                if event is None:
                    continue
                kind, key, result = event
                if kind == "retry":
                    retried.append(key)
                    bar.set_postfix(success=f"{successes}/{attempts}", retries=len(retried))
                    continue
                for due in order.add(result):
                    attempts += 1
                    successes += due["success"]
                    if due["data"] is None:
                        continue
                    _materialise(due, writer.root)
                    writer.save_episode(due["data"], extra={"seed": due["seed"], "success": due["success"],
                                                            "env_id": args.env_id, "noise_deg": args.noise_deg})
                    saved += 1
                    bar.update(1)
                    bar.set_postfix(success=f"{successes}/{attempts}", retries=len(retried))
        finally:
            bar.close()
    return saved, attempts, successes, {**pool.cluster, "workers": args.workers, "retried_seeds": retried}
