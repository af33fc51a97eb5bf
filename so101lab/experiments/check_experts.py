"""Success table of the scripted experts: every task, seeded episodes, default randomisation.

    so101lab check-experts --episodes 100

The expert of each task must succeed on >= 95 % of episodes; this prints the per-task rates with
95 % Wilson intervals (JSON on stdout), the failing seeds, and exits non-zero below `--min-success`.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from tqdm import tqdm

from so101lab.envs.registration import SIM_ENV_IDS
from so101lab.experiments.metrics import wilson_interval


@dataclass
class Args:
    episodes: int = 100
    """Episodes per task (seeds 0..episodes-1)."""
    env_ids: tuple[str, ...] = SIM_ENV_IDS
    """Tasks to check."""
    workers: int = 2
    """Worker processes (one task per process at a time)."""
    min_success: float = 0.95
    """Exit with status 1 if any task's success rate is below this."""


def run_expert(env_id: str, seed: int) -> tuple[bool, int]:
    """One state-mode episode of the task's scripted expert: (success, steps)."""
    import gymnasium as gym

    import so101lab  # noqa: F401  (registers the envs in worker processes)
    from so101lab.envs import make_expert

    env = gym.make(env_id, obs_mode="state")
    expert = make_expert(env)
    obs, info = env.reset(seed=seed)
    expert.reset()
    steps, done = 0, False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        steps, done = steps + 1, terminated or truncated
    env.close()
    return bool(info["is_success"]), steps


def _run_task(job: tuple[str, int]) -> dict:
    env_id, episodes = job
    results = [run_expert(env_id, seed) for seed in range(episodes)]
    successes = sum(ok for ok, _ in results)
    low, high = wilson_interval(successes, episodes)
    return {"env_id": env_id, "episodes": episodes, "success_rate": successes / episodes,
            "ci95": [round(low, 3), round(high, 3)],
            "mean_steps": sum(steps for _, steps in results) / episodes,
            "failed_seeds": [seed for seed, (ok, _) in enumerate(results) if not ok]}


def main(args: Args) -> None:
    jobs = [(env_id, args.episodes) for env_id in args.env_ids]
    with ProcessPoolExecutor(args.workers) as pool:
        table = list(tqdm(pool.map(_run_task, jobs), total=len(jobs), desc="tasks", file=sys.stderr))
    for row in table:
        print(f"{row['env_id']:<26} {row['success_rate']:6.1%}  95% CI [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]"
              f"  steps {row['mean_steps']:.0f}", file=sys.stderr)
    print(json.dumps(table, indent=2))
    if any(row["success_rate"] < args.min_success for row in table):
        sys.exit(1)
