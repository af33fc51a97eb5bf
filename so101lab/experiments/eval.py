"""``so101lab eval``: run a policy checkpoint (SmolVLA or ACT) for N episodes in a sim env and report success.

Episodes run in batches of ``batch_size`` envs stepped together (a Gymnasium vector env; the
policy sees a batched observation). Episode ``i`` is reset with seed ``seed + i``. Writes
``eval_info.json`` with LeRobot's metric names (per_episode: episode_ix, sum_reward,
max_reward, success, seed; aggregated: avg_sum_reward, avg_max_reward, pc_success, eval_s,
eval_ep_s) plus a 95 % Wilson interval of the success rate, and mp4 videos of the first
episodes from one camera.

Latency-aware evaluation (``--latency-ms``, ``--measured-latency``, ``--async``): simulated time
keeps running while the policy computes, so the success rate is the one a real arm would see
with that policy on that hardware. ``--async`` gets chunks from a policy server process
(spawned, or ``--server``) while the current chunk runs (``so101lab.inference.runner``); each
episode then also reports stalls (steps the arm held still waiting for a chunk).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import gymnasium as gym
import numpy as np
import torch
import tyro
from tqdm import tqdm

from so101lab.contract import CONTROL_HZ, OBS_PIXELS
from so101lab.experiments.metrics import wilson_interval
from so101lab.experiments.tracking import WandbMode, log_eval, start_run
from so101lab.inference.runner import Aggregate
from so101lab.inference.sources import LoopFactory
from so101lab.policies import ACTPolicy, Policy, load_policy
from so101lab.policies.device import DeviceName, DtypeName

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
    device: DeviceName = "auto"
    """torch device of the policy: auto (cuda, then mps, then cpu), cpu, cuda or mps."""
    dtype: DtypeName = "float32"
    """Inference precision (float32 is LeRobot's numbers; bfloat16 is faster on GPUs and AMX CPUs)."""
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
    async_inference: Annotated[bool, tyro.conf.arg(name="async")] = False
    """Async inference: a policy server process computes the next chunk while the current one runs."""
    latency_ms: float | None = None
    """Simulated time runs on for this declared inference latency (ms) per chunk (default: the world
    waits for the policy, or with --async the measured round trip)."""
    measured_latency: bool = False
    """Simulated time runs on for each chunk's measured wall-clock inference time."""
    threshold: float = 0.5
    """--async: request the next chunk when the queue is at or below this fraction of the chunk."""
    aggregate: Aggregate = "weighted"
    """--async: merge overlapping chunks by latest, average or weighted (0.3 old + 0.7 new)."""
    rtc: bool = False
    """--async, SmolVLA: real-time chunking (guide each new chunk's start toward the queued actions)."""
    server: str | None = None
    """host:port of a running policy server (default with --async: spawn one on localhost)."""
    visual: Literal["mesh", "primitive"] | None = None
    """Arm look of the sim (default: the env's)."""
    shadows: bool = True
    """Render shadows (off: about twice as fast on a software renderer)."""
    ray: str | None = None
    """Run the batches on a Ray cluster: auto (the one this machine joined with `ray start`), host:port, or
    local; --policy-path must be readable on every node; needs so101lab[ray] (docs/ray.md)."""
    ray_workers: int = 2
    """--ray: Ray actors, each loading the policy once and running whole batches."""
    ray_gpus: float | None = None
    """--ray: GPUs each actor asks for (default: 1 with --device cuda, else 0; 0.5 puts two on a GPU)."""

    @property
    def latency_aware(self) -> bool:
        return self.async_inference or self.latency_ms is not None or self.measured_latency


def _make_envs(args: Args, info: dict, n: int) -> gym.vector.VectorEnv:
    import so101lab  # noqa: F401  (registers the envs, also in subprocesses)

    cameras = tuple(info["cameras"])
    kwargs = dict(obs_mode="pixels_agent_pos", cameras=cameras, image_size=tuple(info["image_shapes"][cameras[0]]))
    if args.max_steps is not None:
        kwargs["max_episode_steps"] = args.max_steps
    if args.visual is not None:
        kwargs["visual"] = args.visual
    if not args.shadows:
        kwargs["shadows"] = False
    fns = [lambda: gym.make(args.env, **kwargs) for _ in range(n)]
    return gym.vector.AsyncVectorEnv(fns) if args.async_envs else gym.vector.SyncVectorEnv(fns)


def run_batch(
    args: Args, policy: Policy | None, seeds: list[int], film: int, camera: str, loops: LoopFactory | None = None
) -> tuple[list[dict], list[list[np.ndarray]]]:
    """Run one batch of episodes to completion; returns per-episode results and video frames.

    With ``loops`` (latency-aware evaluation) actions come from a control loop on simulated time,
    else from ``policy.select_action`` with the world frozen while it computes.
    """
    envs = _make_envs(args, policy_info(policy) if loops is None else loops.info, len(seeds))
    obs, info = envs.reset(seed=seeds)
    tasks = [str(t) for t in info["task"]]
    told = tasks if args.instruction is None else [args.instruction] * len(tasks)
    n = len(seeds)
    sum_reward, max_reward = np.zeros(n), np.full(n, -np.inf)
    success, done = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    frames: list[list[np.ndarray]] = [[] for _ in range(film)]
    loop = loops() if loops is not None else None
    if policy is not None:
        policy.reset()
    while not done.all():
        for i in range(film):
            if not done[i]:
                frames[i].append(np.asarray(obs[OBS_PIXELS][camera][i]))
        action = loop.act(obs, told) if loop is not None else policy.select_action(obs, told)
        live = ~done
        obs, reward, terminated, truncated, info = _step_live(envs, action, live, obs)
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
    if loop is not None:  # one control loop per batch: its counts are shared by the batch's episodes
        summary = loop.stats.summary()
        for result in results:
            result["inference"] = summary
    return results, frames


def _step_live(envs: gym.vector.VectorEnv, action: np.ndarray, live: np.ndarray, obs: dict) -> tuple:
    """Step only the envs whose episode runs (an in-process batch): a finished one keeps its last
    observation and is not rendered again, where a vector env would reset and render it every step
    until the batch's slowest episode ends (about 40 % of an evaluation's frames)."""
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        return envs.step(action)
    n = len(live)
    obs = {OBS_PIXELS: {k: v.copy() for k, v in obs[OBS_PIXELS].items()},
           **{k: v.copy() for k, v in obs.items() if k != OBS_PIXELS}}
    reward, terminated, truncated = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(live):
        o, reward[i], terminated[i], truncated[i], step_info = envs.envs[i].step(action[i])
        success[i] = bool(step_info.get("is_success", False))
        for key, value in o.items():
            if key == OBS_PIXELS:
                for camera, image in value.items():
                    obs[OBS_PIXELS][camera][i] = image
            else:
                obs[key][i] = value
    return obs, reward, terminated, truncated, {"is_success": success}


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
    if args.n_episodes < 1 or args.batch_size < 1:
        raise ValueError("n_episodes and batch_size must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.ray is not None:
        from so101lab.distributed.ray_eval import evaluate_on_ray

        info = evaluate_on_ray(args)
    else:
        with contextlib.ExitStack() as stack:
            policy, loops = _policy_and_loops(args, stack)
            info = _evaluate(args, policy, loops)
    agg = info["aggregated"]
    low, high = agg["pc_success_ci95"]
    print(f"{args.env}: success {agg['pc_success']:.1f}% (95% CI {low:.1f}-{high:.1f}) "
          f"over {agg['n_episodes']} episodes; {args.output_dir / EVAL_INFO}")  # fmt: skip
    return info


def policy_info(policy: Policy) -> dict:
    """Cameras and image shapes of a loaded policy, as a policy server describes them."""
    config = policy.config
    shapes = {cam: list(config.input_features[key].shape[1:])
              for cam, key in zip(config.cameras, config.image_features, strict=True)}
    return {"cameras": list(config.cameras), "image_shapes": shapes}


def _policy_and_loops(args: Args, stack: contextlib.ExitStack) -> tuple[Policy | None, LoopFactory | None]:
    """The policy in this process (classic and sync latency-aware runs), or a policy server's loops (--async)."""
    from so101lab.inference.predictor import Predictor
    from so101lab.inference.runner import Execution
    from so101lab.inference.sources import ServerOptions, connected, local_predict, remote_predict

    execution = Execution("async" if args.async_inference else "sync", args.threshold, args.aggregate,
                          args.n_action_steps, args.rtc)
    measured = args.measured_latency or (args.async_inference and args.latency_ms is None)
    latency = None if measured else (args.latency_ms or 0.0)
    if args.async_inference or args.server is not None:
        if args.n_action_steps is not None and not args.async_inference:
            raise ValueError("--n-action-steps with --server needs the policy in this process; leave out --server")
        options = ServerOptions(args.policy_path, args.device, args.dtype, args.vlm_dir, args.threads,
                                address=args.server)
        client = stack.enter_context(connected(options))
        return None, LoopFactory(remote_predict(client), client.info, execution, latency)
    policy = load_policy(args.policy_path, device=args.device, vlm_dir=args.vlm_dir, dtype=args.dtype)
    _override_execution(policy, args)
    if not args.latency_aware:
        return policy, None
    if args.temporal_ensemble_coeff is not None:
        raise ValueError("--temporal-ensemble-coeff runs in the classic loop only; latency-aware runs use chunks")
    predictor = Predictor(policy)
    return policy, LoopFactory(local_predict(predictor), predictor.info, execution, latency)


def video_camera(args: Args, cameras: list[str]) -> str:
    camera = args.video_camera or cameras[0]
    if camera not in cameras:
        raise ValueError(f"video camera {camera!r} is not one of the policy's cameras {cameras}")
    return camera


def plan_batches(args: Args) -> list[tuple[int, list[int], int]]:
    """(first episode index, seeds, episodes to film) per batch: the same batches wherever they run
    (a batch's episodes share the policy's batched forward pass, so this keeps --ray's numbers equal)."""
    plan = []
    for first in range(0, args.n_episodes, args.batch_size):
        seeds = [args.seed + i for i in range(first, min(first + args.batch_size, args.n_episodes))]
        plan.append((first, seeds, max(0, min(len(seeds), args.max_videos - first))))
    return plan


def _evaluate(args: Args, policy: Policy | None, loops: LoopFactory | None) -> dict:
    camera = video_camera(args, (loops.info if loops is not None else policy_info(policy))["cameras"])
    outcomes = (run_batch(args, policy, seeds, film, camera, loops) for _, seeds, film in plan_batches(args))
    return report(args, outcomes, loops)


def report(args: Args, outcomes: Iterable[tuple[list[dict], list]], loops: LoopFactory | None = None) -> dict:
    """Videos, eval_info.json and wandb from each batch's (results, films) in plan_batches order; a film
    is a list of frames, or an encoded mp4 (bytes) from a worker elsewhere."""
    import imageio.v2 as imageio

    videos = args.output_dir / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    start = time.time()
    per_episode, video_paths = [], []
    bar = tqdm(total=args.n_episodes, desc="eval")
    for (first, seeds, _), (results, frames) in zip(plan_batches(args), outcomes):
        for j, result in enumerate(results):
            per_episode.append({"episode_ix": first + j, **result})
        for j, episode_frames in enumerate(frames):
            path = videos / f"eval_episode_{first + j}.mp4"
            if isinstance(episode_frames, bytes):
                path.write_bytes(episode_frames)
            else:
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
    if loops is not None:
        info["aggregated"]["inference"] = _inference_summary(args, per_episode)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / EVAL_INFO).write_text(json.dumps(info, indent=2))
    run = start_run(args.wandb, args.output_dir, json.loads(json.dumps(asdict(args), default=str)), "eval")
    if run is not None:
        log_eval(run, info)
        run.finish()
    return info


def _inference_summary(args: Args, per_episode: list[dict]) -> dict:
    """Mode, latency and the stall/jerk counts over episodes (each batch's loop counted once)."""
    batches = {id(e["inference"]): e["inference"] for e in per_episode}.values()
    def mean(key: str) -> float:
        return float(np.mean([b[key] for b in batches]))
    return {"mode": "async" if args.async_inference else "sync", "latency_ms": args.latency_ms,
            "measured_latency": args.measured_latency or (args.async_inference and args.latency_ms is None),
            "threshold": args.threshold, "aggregate": args.aggregate, "rtc": args.rtc,
            "stalls": int(sum(b["stalls"] for b in batches)),
            "startup_holds": int(sum(b["startup_holds"] for b in batches)),
            "steps": int(sum(b["steps"] for b in batches)), "chunks": int(sum(b["chunks"] for b in batches)),
            "latency_s_mean": mean("latency_s_mean"), "jerk_mean": mean("jerk_mean"),
            "boundary_jump_mean": mean("boundary_jump_mean"),
            "jerk_boundary_mean": mean("jerk_boundary_mean")}
