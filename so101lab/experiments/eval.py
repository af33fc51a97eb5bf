"""``so101lab eval``: run a policy checkpoint (SmolVLA or ACT) for N episodes in a sim env and report success.

Episodes run in batches of ``batch_size`` envs stepped together (a Gymnasium vector env; the
policy sees a batched observation). Episode ``i`` is reset with seed ``seed + i``. Writes
``eval_info.json`` with LeRobot's metric names (per_episode: episode_ix, sum_reward,
max_reward, success, seed; aggregated: avg_sum_reward, avg_max_reward, pc_success, eval_s,
eval_ep_s) plus a 95 % Wilson interval of the success rate, and mp4 videos of the first
episodes from one camera.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from so101lab.contract import CONTROL_HZ, OBS_PIXELS
from so101lab.experiments.metrics import wilson_interval
from so101lab.experiments.tracking import WandbMode, log_eval, start_run
from so101lab.policies import ACTPolicy, Policy, load_policy

EVAL_INFO = "eval_info.json"


@dataclass
class Args:
    policy_path: Path
    """A policy directory (config.json, model.safetensors, processors) or a training checkpoint
    (outputs/train/checkpoints/<step>, whose pretrained_model/ is used)."""
    env: str = "so101lab/PickCube-v0"
    """Gymnasium id of the sim task."""
    n_episodes: int = 10
    """Episodes to run."""
    batch_size: int = 5
    """Envs stepped together (vectorised)."""
    seed: int = 1000
    """Episode i is reset with seed + i."""
    output_dir: Path = Path("outputs/eval")
    """eval_info.json, videos/ and wandb files go here."""
    max_videos: int = 4
    """Write mp4s of the first this-many episodes."""
    video_camera: str | None = None
    """Camera to film (default: the policy's first camera)."""
    vlm_dir: Path | None = None
    """Local SmolVLM dir, if the checkpoint's vlm_model_name is not a local path."""
    max_steps: int | None = None
    """Cut episodes after this many steps (default: the env's own limit)."""
    async_envs: bool = False
    """Step envs in subprocesses (gymnasium AsyncVectorEnv)."""
    device: str = "cpu"
    """torch device of the policy ('cpu', 'cuda')."""
    instruction: str | None = None
    """Give the policy this instruction instead of the env's (probes whether it follows language)."""
    threads: int | None = None
    """CPU threads for torch (default: torch's choice)."""
    n_action_steps: int | None = None
    """Override how many actions of each chunk run open loop (default: the checkpoint's)."""
    temporal_ensemble_coeff: float | None = None
    """ACT only: predict every step and average overlapping chunks with this coefficient."""
    wandb: WandbMode = "disabled"
    """Weights & Biases: log the results and videos ('offline' writes the run under output_dir/wandb)."""


def _make_envs(args: Args, policy: Policy, n: int) -> gym.vector.VectorEnv:
    import so101lab  # noqa: F401  (registers the envs, also in subprocesses)

    shape = policy.config.input_features[policy.config.image_features[0]].shape
    kwargs = dict(obs_mode="pixels_agent_pos", cameras=tuple(policy.config.cameras), image_size=tuple(shape[1:]))
    if args.max_steps is not None:
        kwargs["max_episode_steps"] = args.max_steps
    fns = [lambda: gym.make(args.env, **kwargs) for _ in range(n)]
    return gym.vector.AsyncVectorEnv(fns) if args.async_envs else gym.vector.SyncVectorEnv(fns)


def run_batch(
    args: Args, policy: Policy, seeds: list[int], film: int, camera: str
) -> tuple[list[dict], list[list[np.ndarray]]]:
    """Run one batch of episodes to completion; returns per-episode results and video frames."""
    envs = _make_envs(args, policy, len(seeds))
    obs, info = envs.reset(seed=seeds)
    tasks = [str(t) for t in info["task"]]
    told = tasks if args.instruction is None else [args.instruction] * len(tasks)
    n = len(seeds)
    sum_reward, max_reward = np.zeros(n), np.full(n, -np.inf)
    success, done = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    frames: list[list[np.ndarray]] = [[] for _ in range(film)]
    policy.reset()
    while not done.all():
        for i in range(film):
            if not done[i]:
                frames[i].append(np.asarray(obs[OBS_PIXELS][camera][i]))
        action = policy.select_action(obs, told)
        obs, reward, terminated, truncated, info = envs.step(action)
        live = ~done
        sum_reward[live] += reward[live]
        max_reward[live] = np.maximum(max_reward[live], reward[live])
        success[live] |= np.asarray(info.get("is_success", np.zeros(n, dtype=bool)), dtype=bool)[live]
        done |= terminated | truncated
    envs.close()
    results = [
        {"sum_reward": float(sum_reward[i]), "max_reward": float(max_reward[i]), "success": bool(success[i]),
         "seed": seeds[i], "task": tasks[i], "instruction": told[i]}
        for i in range(n)
    ]  # fmt: skip
    return results, frames


def _override_execution(policy: Policy, args: Args) -> None:
    """Apply --n-action-steps / --temporal-ensemble-coeff to the loaded policy's config."""
    config = policy.config
    if args.n_action_steps is not None:
        if not 1 <= args.n_action_steps <= config.chunk_size:
            raise ValueError(f"--n-action-steps must be in 1..{config.chunk_size} (the chunk size)")
        config.n_action_steps = args.n_action_steps
    if args.temporal_ensemble_coeff is not None:
        if not isinstance(policy, ACTPolicy):
            raise ValueError("--temporal-ensemble-coeff applies to ACT checkpoints only")
        config.temporal_ensemble_coeff = args.temporal_ensemble_coeff
    policy.reset()


def main(args: Args) -> dict:
    import imageio.v2 as imageio

    if args.n_episodes < 1 or args.batch_size < 1:
        raise ValueError("n_episodes and batch_size must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    policy = load_policy(args.policy_path, device=args.device, vlm_dir=args.vlm_dir)
    _override_execution(policy, args)
    camera = args.video_camera or policy.config.cameras[0]
    if camera not in policy.config.cameras:
        raise ValueError(f"video camera {camera!r} is not one of the policy's cameras {policy.config.cameras}")
    videos = args.output_dir / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    start = time.time()
    per_episode, video_paths = [], []
    bar = tqdm(total=args.n_episodes, desc="eval")
    for first in range(0, args.n_episodes, args.batch_size):
        seeds = [args.seed + i for i in range(first, min(first + args.batch_size, args.n_episodes))]
        film = max(0, min(len(seeds), args.max_videos - first))
        results, frames = run_batch(args, policy, seeds, film, camera)
        for j, result in enumerate(results):
            per_episode.append({"episode_ix": first + j, **result})
        for j, episode_frames in enumerate(frames):
            path = videos / f"eval_episode_{first + j}.mp4"
            imageio.mimwrite(path, episode_frames, fps=CONTROL_HZ, macro_block_size=1)
            video_paths.append(str(path))
        bar.update(len(seeds))
    bar.close()
    elapsed = time.time() - start
    n_success = sum(e["success"] for e in per_episode)
    low, high = wilson_interval(n_success, len(per_episode))
    info = {
        "per_episode": per_episode,
        "aggregated": {
            "avg_sum_reward": float(np.mean([e["sum_reward"] for e in per_episode])),
            "avg_max_reward": float(np.mean([e["max_reward"] for e in per_episode])),
            "pc_success": 100.0 * n_success / len(per_episode),
            "pc_success_ci95": [100.0 * low, 100.0 * high],
            "n_episodes": len(per_episode),
            "eval_s": elapsed,
            "eval_ep_s": elapsed / len(per_episode),
        },
        "video_paths": video_paths,
        "env": args.env,
        "policy_path": str(args.policy_path),
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / EVAL_INFO).write_text(json.dumps(info, indent=2))
    run = start_run(args.wandb, args.output_dir, json.loads(json.dumps(asdict(args), default=str)), "eval")
    if run is not None:
        log_eval(run, info)
        run.finish()
    agg = info["aggregated"]
    print(f"{args.env}: success {agg['pc_success']:.1f}% (95% CI {low * 100:.1f}-{high * 100:.1f}) "
          f"over {len(per_episode)} episodes; {args.output_dir / EVAL_INFO}")  # fmt: skip
    return info
