"""``so101lab eval --ray``: the batches of an evaluation run on Ray actors across a cluster.

The batches are eval's own (``plan_batches``: same seeds, same batch composition), each run by
eval's ``run_batch`` in an actor that loaded the policy once (with a GPU if it asks for one);
results come back in batch order to eval's ``report``, so eval_info.json holds the numbers of a
local run with the same arguments (only the timings differ). Videos are encoded on the worker.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from so101lab.distributed.ray_pool import PoolSpec, RayPool

if TYPE_CHECKING:
    from so101lab.experiments.eval import Args


class EvalWorker:
    """A Ray actor: the policy loaded once, whole batches of episodes run with it."""

    def __init__(self, version: str, args: Args) -> None:
        import so101lab
        from so101lab.experiments import eval as evaluate

        if version != so101lab.__version__:
            raise RuntimeError(f"this node runs so101lab {so101lab.__version__}, the driver {version}; "
                               "install the same so101lab on every node")
        import torch

        torch.set_num_threads(args.threads or 1)  # as many as the CPUs the actor asked Ray for
        self.args = args
        self.policy = evaluate.load_policy(args.policy_path, device=args.device, vlm_dir=args.vlm_dir,
                                           dtype=args.dtype)  # fmt: skip
        evaluate._override_execution(self.policy, args)
        self.camera = evaluate.video_camera(args, evaluate.policy_info(self.policy)["cameras"])

    def run(self, seeds: list[int], film: int) -> tuple[list[dict], list[bytes]]:
        import imageio.v2 as imageio

        from so101lab.contract import CONTROL_HZ
        from so101lab.experiments import eval as evaluate

        results, frames = evaluate.run_batch(self.args, self.policy, seeds, film, self.camera)
        films = []
        for episode_frames in frames:  # encoded here: raw frames would be ~1 GB per minute of video
            fd, name = tempfile.mkstemp(suffix=".mp4")
            os.close(fd)
            try:
                imageio.mimwrite(name, episode_frames, fps=CONTROL_HZ, macro_block_size=1)
                films.append(Path(name).read_bytes())
            finally:
                os.unlink(name)
        return results, films


def evaluate_on_ray(args: Args) -> dict[str, Any]:
    """eval's ``_evaluate`` with the batches on a cluster; returns the same info dict."""
    import so101lab
    from so101lab.experiments import eval as evaluate

    if args.latency_aware or args.server is not None:
        raise ValueError("--ray runs the classic loop; --async, --server, --latency-ms and --measured-latency "
                         "run on this machine (leave out --ray)")
    if args.ray_workers < 1:
        raise ValueError(f"--ray-workers must be >= 1, got {args.ray_workers}")
    gpus = args.ray_gpus if args.ray_gpus is not None else (1.0 if args.device == "cuda" else 0.0)
    plan = evaluate.plan_batches(args)
    spec = PoolSpec(args.ray, min(args.ray_workers, len(plan)), EvalWorker, (so101lab.__version__, args),
                    num_cpus=float(args.threads or 1), num_gpus=gpus)  # fmt: skip
    with RayPool(spec) as pool:
        for index, (_, seeds, film) in enumerate(plan):
            pool.submit(index, seeds, film)
        info = evaluate.report(args, _in_order(pool, len(plan)))
    info["ray"] = {**pool.cluster, "workers": spec.workers, "gpus_per_worker": gpus}
    (args.output_dir / evaluate.EVAL_INFO).write_text(json.dumps(info, indent=2))
    return info


def _in_order(pool: RayPool, n: int) -> Iterator[tuple[list[dict], list[bytes]]]:
    """Batch results in submission order, whatever order the actors finish them in."""
    ready: dict[int, Any] = {}
    for index in range(n):
        while index not in ready:
            event = pool.next_event()
            if event is not None and event[0] == "result":
                ready[event[1]] = event[2]
        yield ready.pop(index)
