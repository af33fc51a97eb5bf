"""Collect a LeRobot dataset in sim with the scripted expert, in parallel worker processes.

    so101lab collect --env-id so101lab/PickCube-v0 --episodes 10 --root data/pick_cube --workers 2

Each worker runs whole episodes (env, expert, rendering and video encoding) and hands back a
small finished episode; the main process commits them in seed order (episode k of a run is its
k-th successful seed, whichever worker finishes first), so each saved episode is on disk at once
and an interrupted run keeps everything saved so far. The seed, success and env id are stored as
columns of meta/episodes (so `so101lab replay-sim` can re-create the scene); rerunning on the same
--root appends and continues after the seeds already recorded. Every argument is checked before
the dataset directory is created, and a run that saves no episode leaves none behind. The task
string is the env's language instruction (``info["task"]``).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tqdm import tqdm

from so101lab.contract import (
    DEFAULT_CAMERAS,
    FEATURE_ACTION,
    FEATURE_STATE,
    OBS_PIXELS,
    OBS_STATE,
    CameraSpec,
    image_feature,
)
from so101lab.datasets.format import DatasetInputError
from so101lab.shutdown import watch_parent

if TYPE_CHECKING:
    from so101lab.datasets import DatasetWriter


@dataclass
class Args:
    root: Path
    """Dataset directory (created, or appended to if it holds a dataset)."""
    env_id: str = "so101lab/PickCube-v0"
    """Sim task to collect."""
    episodes: int = 10
    """Episodes to save."""
    workers: int = 2
    """Worker processes (each runs env + expert + video encoding)."""
    seed: int | None = None
    """Seed of the first attempt, later attempts use the following ones (default: 0, or one past the
    highest seed of --env-id already in --root)."""
    cameras: tuple[str, ...] | None = None
    """Cameras to record (default: the camera file's, else front and wrist)."""
    image_size: tuple[int, int] | None = None
    """Camera image (height, width) (default: each camera's size in the camera file, else 480x640)."""
    camera_config: Path | None = None
    """Camera file (`so101lab calibrate-camera` writes one): poses, intrinsics and sizes of the cameras."""
    visual: Literal["mesh", "primitive"] | None = None
    """The arm's look (default: the official meshes where `so101lab[meshes]` is installed)."""
    keep_failed: bool = False
    """Save episodes where the expert failed too (otherwise they are dropped and another seed runs)."""
    max_attempts: int | None = None
    """Give up after this many episodes were run (default: 2 x episodes + 10)."""
    vcodec: str = "libsvtav1"
    """Video codec: libsvtav1 (LeRobot's default) or h264."""
    max_steps: int | None = None
    """Cap on an episode's steps (default: the env's time limit)."""
    noise_deg: float = 0.0
    """DART-style execution noise: the arm runs the expert's targets plus a drifting offset of this
    many degrees (std, per arm joint) while the dataset records the expert's targets (0: off)."""
    noise_seconds: float = 0.4
    """Correlation time of that offset."""
    allow_duplicate_seeds: bool = False
    """Allow --seed to record seeds of --env-id that the dataset already holds."""
    allow_mixed_env_ids: bool = False
    """Allow adding episodes of --env-id to a dataset that holds other env ids."""
    randomization: str = "default"
    """Domain randomisation preset (so101lab.envs.randomization.PRESETS: default, none, no-visual, robust-train)."""
    shadows: bool = True
    """Render shadows (off: about 3x faster on a software renderer, no depth cue)."""
    ray: str | None = None
    """Run the episodes as Ray actors (--workers of them) on a cluster: auto (the one this machine joined with
    `ray start`), host:port, or local; needs so101lab[ray] (docs/ray.md)."""


def check_args(args: Args) -> tuple[CameraSpec, ...]:
    """Every argument, checked before the dataset directory is created (errors are one line);
    returns the cameras the env will render (names and sizes)."""
    import gymnasium as gym

    from so101lab.datasets.checks import check_recording
    from so101lab.envs.randomization import PRESETS
    from so101lab.envs.registration import SIM_ENV_IDS

    for name, value, low in (("episodes", args.episodes, 1), ("workers", args.workers, 1),
                             ("max-attempts", args.max_attempts, 1), ("max-steps", args.max_steps, 1)):
        if value is not None and value < low:
            raise DatasetInputError(f"--{name} must be >= {low}, got {value}")
    if args.noise_deg < 0 or args.noise_seconds <= 0:
        raise DatasetInputError(f"--noise-deg must be >= 0 and --noise-seconds > 0, got "
                                f"{args.noise_deg} and {args.noise_seconds}")
    if args.randomization not in PRESETS:
        raise DatasetInputError(f"unknown --randomization {args.randomization!r}; presets: {', '.join(PRESETS)}")
    if args.env_id not in SIM_ENV_IDS:
        raise DatasetInputError(f"unknown --env-id {args.env_id!r}; collect runs {', '.join(SIM_ENV_IDS)}")
    if args.cameras is not None and (not args.cameras or len(set(args.cameras)) != len(args.cameras)):
        raise DatasetInputError(f"--cameras must name one or more distinct cameras, got {list(args.cameras)}")
    if args.image_size is not None:
        check_recording(*args.image_size, len(args.cameras or DEFAULT_CAMERAS), _local_workers(args), args.vcodec)
    try:  # loads the scene only (no renderer): cheap, and the env's own check of camera names
        env = gym.make(args.env_id, **env_kwargs(args))
    except (ValueError, FileNotFoundError) as e:
        raise DatasetInputError(f"--cameras/--camera-config/--visual: {e}") from None
    except ModuleNotFoundError as e:
        raise DatasetInputError(f"--visual: {e}") from None
    cams = env.unwrapped.cameras
    env.close()
    largest = max(cams, key=lambda c: c.height * c.width)
    check_recording(largest.height, largest.width, len(cams), _local_workers(args), args.vcodec)
    return cams


def _local_workers(args: Args) -> int:
    """Recording processes on this machine (with --ray they run on the cluster's nodes)."""
    return 1 if args.ray is not None else args.workers


def env_kwargs(args: Args) -> dict[str, Any]:
    """The env options the arguments ask for (what the workers build their env with)."""
    kwargs = {"cameras": args.cameras, "image_size": args.image_size, "visual": args.visual,
              "camera_config": str(args.camera_config) if args.camera_config else None}
    if args.randomization != "default":
        from so101lab.envs.randomization import preset

        kwargs["randomization"] = preset(args.randomization)
    if not args.shadows:
        kwargs["shadows"] = False
    return {k: v for k, v in kwargs.items() if v is not None}


@dataclass
class _Job:
    root: Path
    env_id: str
    env_kwargs: dict[str, Any]
    cameras: tuple[str, ...]
    features: dict[str, Any]
    vcodec: str
    keep_failed: bool
    max_steps: int | None = None
    noise_deg: float = 0.0
    noise_seconds: float = 0.4


_ENV: dict[str, Any] = {}  # per worker process: the env of its job, built once


def run_episode(job: _Job, seed: int) -> dict[str, Any]:
    """One expert episode recorded into a temp episode (not committed); runs in a worker."""
    import gymnasium as gym

    import so101lab  # noqa: F401  (registers the envs in spawned workers)
    from so101lab.datasets import EpisodeRecorder, VideoSettings
    from so101lab.envs import make_expert
    from so101lab.envs.experts import ExecutionNoise

    key = (job.env_id, sorted(job.env_kwargs.items()), job.max_steps)
    if _ENV.get("key") != key:
        limit = {"max_episode_steps": job.max_steps} if job.max_steps else {}
        _ENV.update(key=key, env=gym.make(job.env_id, obs_mode="pixels_agent_pos", **job.env_kwargs, **limit))
    env = _ENV["env"]
    expert = make_expert(env)
    fps = int(env.metadata.get("render_fps", 30))
    recorder = EpisodeRecorder(job.root, job.features, fps, VideoSettings(vcodec=job.vcodec))
    obs, info = env.reset(seed=seed)
    expert.reset()
    task = info["task"]
    noise = ExecutionNoise(job.noise_deg, job.noise_seconds, seed) if job.noise_deg > 0 else None
    done = False
    try:
        while not done:
            action = expert.act(obs)
            frame = {FEATURE_STATE: obs[OBS_STATE], FEATURE_ACTION: action}
            for cam in job.cameras:
                frame[image_feature(cam)] = obs[OBS_PIXELS][cam]
            recorder.add_frame(frame, task)
            obs, _, terminated, truncated, info = env.step(action if noise is None else noise(action))
            done = terminated or truncated
    except BaseException:
        recorder.discard()
        raise
    success = bool(info["is_success"])
    if not success and not job.keep_failed:
        recorder.discard()
        return {"seed": seed, "success": False, "data": None, "task": task}
    return {"seed": seed, "success": success, "data": recorder.finish(), "task": task}


def _drop(result: dict[str, Any]) -> None:
    if result["data"] is not None:
        for path in result["data"].videos.values():
            Path(path).unlink(missing_ok=True)


class SeedOrder:
    """Releases finished episodes in seed order, whatever order the workers finish them in."""

    def __init__(self, first_seed: int) -> None:
        self.next_seed = first_seed
        self.waiting: dict[int, dict[str, Any]] = {}

    def add(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        """Take one finished episode; return those now due, in seed order."""
        self.waiting[result["seed"]] = result
        due = []
        while self.next_seed in self.waiting:
            due.append(self.waiting.pop(self.next_seed))
            self.next_seed += 1
        return due


def collect(args: Args) -> dict[str, Any]:
    """Run the collection; returns a summary (also printed as JSON by `main`)."""
    from so101lab.datasets import DatasetWriter, VideoSettings, robot_features
    from so101lab.datasets.resume import check_env_id, first_seed

    cams = check_args(args)
    max_attempts = args.max_attempts or 2 * args.episodes + 10
    with DatasetWriter(args.root, robot_features(cams), video=VideoSettings(vcodec=args.vcodec)) as writer:
        check_env_id(writer.episodes, args.env_id, args.root, args.allow_mixed_env_ids)
        seed = first_seed(writer.episodes, args.seed, max_attempts, args.root, args.env_id,
                          args.allow_duplicate_seeds)  # fmt: skip
        start_episodes = writer.num_episodes
        cluster = None
        if args.ray is None:
            saved, attempts, successes = _run(args, writer, seed, max_attempts, tuple(c.name for c in cams))
        else:
            from so101lab.distributed.ray_collect import run_on_ray

            saved, attempts, successes, cluster = run_on_ray(args, writer, seed, max_attempts,
                                                             tuple(c.name for c in cams))  # fmt: skip
        summary = {
            "root": str(args.root),
            "env_id": args.env_id,
            "first_seed": seed,
            "episodes_saved": saved,
            "episodes_total": start_episodes + saved,
            "frames_total": writer.num_frames,
            "attempts": attempts,
            "success_rate": successes / attempts if attempts else 0.0,
            "tasks": sorted(set(writer.tasks)),
        }
        if cluster is not None:
            summary["ray"] = cluster
    if saved < args.episodes:
        summary["warning"] = f"only {saved} of {args.episodes} episodes succeeded within {max_attempts} attempts"
    return summary


def _run(args: Args, writer: DatasetWriter, seed: int, max_attempts: int,
         cameras: tuple[str, ...]) -> tuple[int, int, int]:
    """Attempts from ``seed`` on in worker processes, committed in seed order; (saved, attempts, successes)."""
    job = _Job(
        args.root, args.env_id, env_kwargs(args), cameras, writer.features, args.vcodec, args.keep_failed,
        args.max_steps, args.noise_deg, args.noise_seconds,
    )  # fmt: skip
    order = SeedOrder(seed)
    saved = attempts = successes = submitted = 0
    pending: set[Future] = set()
    # Up to two episodes per worker in flight or waiting for an earlier seed, so no worker idles
    # behind one slow episode; never more than could still be saved.
    window = 2 * args.workers
    bar = tqdm(total=args.episodes, desc=f"collect {args.env_id}", unit="ep", file=sys.stderr)
    # Workers exit when this process dies, even by SIGKILL (no cleanup runs then to stop them).
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"), initializer=watch_parent,
                             initargs=(os.getpid(),)) as pool:
        try:
            while saved < args.episodes:
                while (
                    submitted - attempts < window
                    and saved + submitted - attempts < args.episodes
                    and submitted < max_attempts
                ):
                    pending.add(pool.submit(run_episode, job, seed + submitted))
                    submitted += 1
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for result in (r for future in done for r in order.add(future.result())):
                    attempts += 1
                    successes += result["success"]
                    if result["data"] is None:
                        continue
                    writer.save_episode(
                        result["data"],
                        extra={"seed": result["seed"], "success": result["success"], "env_id": args.env_id,
                               "noise_deg": args.noise_deg},
                    )
                    saved += 1
                    bar.update(1)
                    bar.set_postfix(success=f"{successes}/{attempts}")
        finally:
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled() and future.exception() is None:
                    _drop(future.result())
            for result in order.waiting.values():
                _drop(result)
            bar.close()
    return saved, attempts, successes


def main(args: Args) -> None:
    from so101lab.datasets.checks import USER_ERRORS
    from so101lab.distributed.ray_cluster import ClusterError  # no Ray import

    try:
        summary = collect(args)
    except USER_ERRORS as e:
        sys.exit(f"so101lab collect: {e}")
    except ClusterError as e:  # every episode saved before it is committed: say so
        kept = (args.root / "meta" / "info.json").is_file()  # a run that saved nothing leaves no dataset
        sys.exit(f"so101lab collect: {e}" + (f"; the episodes saved so far are in {args.root} and load as they are; "
                                             "rerun the same command to continue after them" if kept else ""))
    print(
        f"saved {summary['episodes_saved']} episodes to {summary['root']} "
        f"(expert success {summary['success_rate']:.0%} over {summary['attempts']} attempts)",
        file=sys.stderr,
    )
    print(json.dumps(summary, indent=2))
    if "warning" in summary:
        sys.exit(summary["warning"])
