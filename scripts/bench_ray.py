"""`so101lab collect --ray` against `--workers` on one machine, and its scaling from 1 to N workers.

    python scripts/bench_ray.py                       # N = 2, 12 episodes per run, 96x128 cameras
    python scripts/bench_ray.py --workers 4 --episodes 24 --rounds 3

One Ray instance with N CPUs is started on this machine (loopback only) before the runs, as a
cluster would be up before a collection; each run then pays what a collection on it pays: the
driver process joining, the actors starting and building their envs, every episode, every commit.
Local and Ray runs alternate, rounds are medians. Prints JSON: per run kind, episodes/s over the
whole command, the seconds to the first commit (start-up) and episodes/s from the first to the last
commit (steady state, what a long collection runs at); Ray's overhead against `--workers` with the
same number of processes (1 - ray / local) for both rates; the steady rate and speed-up of 1..N Ray
and 1..N local workers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def run(root: Path, workers: int, episodes: int, size: tuple[int, int], ray: str | None) -> dict[str, float]:
    """One collection: episodes/s over the whole command, seconds to the first commit (start-up), and
    episodes/s between the first and the last commit (what thousands of episodes run at)."""
    from so101lab.datasets.writer import DatasetWriter
    from so101lab.experiments import collect

    shutil.rmtree(root, ignore_errors=True)
    commits: list[float] = []
    save = DatasetWriter.save_episode

    def timed_save(self, *a, **kw):  # both modes commit in this process, through this method
        index = save(self, *a, **kw)
        commits.append(time.perf_counter())
        return index

    DatasetWriter.save_episode = timed_save
    start = time.perf_counter()
    try:
        summary = collect.collect(collect.Args(root=root, episodes=episodes, workers=workers, image_size=size,
                                               visual="primitive", shadows=False, ray=ray))  # fmt: skip
    finally:
        DatasetWriter.save_episode = save
    elapsed = time.perf_counter() - start
    assert summary["episodes_saved"] == episodes, summary
    return {"total": episodes / elapsed, "startup_s": commits[0] - start,
            "steady": (episodes - 1) / (commits[-1] - commits[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="N: processes of the largest run")
    parser.add_argument("--episodes", type=int, default=12, help="episodes per run")
    parser.add_argument("--image-size", type=int, nargs=2, default=(96, 128), help="camera height width")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (medians are reported)")
    opts = parser.parse_args()
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # a one-machine Ray binds to 127.0.0.1 only
    import logging

    import ray

    ray_temp = tempfile.mkdtemp(prefix="ray")  # short: Ray's unix socket paths must fit in 107 bytes
    ray.init(num_cpus=opts.workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             _temp_dir=ray_temp)  # fmt: skip
    address = ray.get_runtime_context().gcs_address
    size = tuple(opts.image_size)
    rates: dict[str, list[dict[str, float]]] = {}
    out = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        for _ in range(opts.rounds):
            for n in range(1, opts.workers + 1):
                for kind, ray_address in (("local", None), ("ray", address)):
                    rate = run(out / "ds", n, opts.episodes, size, ray_address)
                    rates.setdefault(f"{kind}_{n}", []).append(rate)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        ray.shutdown()
        shutil.rmtree(ray_temp, ignore_errors=True)
    median = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in rates.items()}
    n = opts.workers

    def overhead(measure: str) -> float:
        return round(1 - median[f"ray_{n}"][measure] / median[f"local_{n}"][measure], 3)

    result = {
        "workers": n, "episodes_per_run": opts.episodes, "image_size": list(size), "rounds": opts.rounds,
        "cpus": os.cpu_count(), "load_average_1min_at_end": os.getloadavg()[0], "ray_version": ray.__version__,
        "median": {k: {m: round(x, 3) for m, x in v.items()} for k, v in median.items()},
        "ray_overhead_vs_workers": {"whole_command": overhead("total"), "steady": overhead("steady")},
        "scaling_steady": {kind: {str(k): {"episodes_per_s": round(median[f"{kind}_{k}"]["steady"], 3),
                                           "speedup": round(median[f"{kind}_{k}"]["steady"]
                                                            / median[f"{kind}_1"]["steady"], 2)}
                                  for k in range(1, n + 1)} for kind in ("ray", "local")},
        "runs": {k: [{m: round(x, 3) for m, x in r.items()} for r in v] for k, v in rates.items()},
    }  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
