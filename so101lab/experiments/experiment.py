"""``so101lab experiment``: the closed loop in one command: sim demos -> training -> evaluation -> report.

    so101lab experiment --recipe pick-cube-act        # ACT from 50 scripted PickCube demos
    so101lab experiment --recipe pick-cube-smolvla    # SmolVLA small from scratch, the same demos
    so101lab experiment --recipe multitask-smolvla    # one SmolVLA small over the four tasks
    so101lab experiment --recipe pick-cube-act-robustness  # ACT with and without visual randomisation,
                                                           # under held-out shifts (experiments/robustness.py)

Phases: collect the scripted demos (both cameras, default randomisation), train with
``so101lab train``, evaluate checkpoints along the way (success vs training steps) and the last
one on ``--eval-episodes`` unseen seeds with ``so101lab eval``; the multi-task recipe also runs
every task with another task's instruction, to see whether the policy follows language.
Every phase whose output exists is skipped, so rerunning an interrupted experiment resumes it.
Writes ``results.json`` (wall time per phase, steps, dataset size, success rates with 95 %
intervals) and ``results.png`` under ``<output-dir>/<recipe>``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym

from so101lab.errors import UsageError
from so101lab.experiments import collect, train
from so101lab.experiments import eval as evaluate
from so101lab.experiments.metrics import wilson_interval
from so101lab.policies.device import DeviceName, DtypeName
from so101lab.policies.train_state import PRETRAINED, saved_training_step

ALL_TASKS = ("so101lab/PickCube-v0", "so101lab/PickPlace-v0", "so101lab/StackCubes-v0", "so101lab/SortCubes-v0")


@dataclass(frozen=True)
class Recipe:
    """What to collect and how to train; ``train`` overrides fields of ``so101lab train``'s Args."""

    tasks: tuple[str, ...]
    """Env ids the demos come from and the policy is evaluated on."""
    train: dict[str, Any]
    """Overrides of ``so101lab train``'s Args."""
    curve_points: int = 4
    """Checkpoints evaluated for the success-vs-steps curve (the last one included)."""
    eval: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Overrides of ``so101lab eval``'s Args (how the policy executes its chunks)."""
    collect: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Overrides of ``so101lab collect``'s Args (e.g. execution noise)."""
    demos_per_task: int = 50
    """Scripted demos collected per task, unless --demos-per-task says otherwise."""


# Sized to train in under an hour each on 2 CPU cores (measured numbers: README, "Results").
RECIPES: dict[str, Recipe] = {
    "pick-cube-act": Recipe(
        tasks=("so101lab/PickCube-v0",),
        # 96x128 images, 2,400 steps: 62 % on 50 episodes from noise-free demos; with 2 deg execution noise in
        # the demos and a weight EMA, 88 % (README, Results). 112x160 for 1,700 steps (same wall time): 50 %.
        # No dropout: its random masks took a third of each step on a CPU (1.19 -> 0.78 s at batch 64), and
        # the image shifts, demo noise and EMA already regularise.
        train=dict(policy="act", steps=2400, batch_size=64, lr=3e-4, warmup_steps=100, decay_steps=2400,
                   decay_lr=3e-5, chunk_size=30, n_action_steps=10, ema_decay=0.998,
                   act=train.ACTOptions(dropout=0.0)),
        collect=dict(noise_deg=2.0),
        # ACT's own inference: a chunk every step, overlapping chunks averaged. On 20 seeds of the
        # step-1200 checkpoint: 65 % against 55 % running 10-action chunks open loop, 20 % for 1.
        eval=dict(temporal_ensemble_coeff=0.01),
    ),
    "pick-cube-smolvla": Recipe(
        tasks=("so101lab/PickCube-v0",),
        train=dict(policy="smolvla", preset="small", steps=600, batch_size=16, lr=3e-4, warmup_steps=50,
                   decay_steps=600, decay_lr=3e-5, chunk_size=30, n_action_steps=10, num_workers=1),
        curve_points=2,
    ),
    "multitask-smolvla": Recipe(
        tasks=ALL_TASKS,
        train=dict(policy="smolvla", preset="small", steps=800, batch_size=16, lr=3e-4, warmup_steps=50,
                   decay_steps=800, decay_lr=3e-5, chunk_size=30, n_action_steps=10, num_workers=1),
        curve_points=2,
    ),
}


@dataclass
class Args:
    recipe: Literal["pick-cube-act", "pick-cube-smolvla", "multitask-smolvla", "pick-cube-act-robustness"] = \
        "pick-cube-act"
    """Which experiment to run (RECIPES in this file: tasks, training settings, evaluation; the robustness
    benchmark: so101lab/experiments/robustness.py)."""
    output_dir: Path = Path("outputs/experiments")
    """Runs go to <output-dir>/<recipe>; demos to <output-dir>/data (shared by recipes with the same tasks)."""
    demos_per_task: int | None = None
    """Scripted demos collected per task (default: the recipe's, 50; 150 for pick-cube-act-robustness)."""
    steps: int | None = None
    """Training steps (default: the recipe's)."""
    eval_episodes: int = 50
    """Episodes per task for the final checkpoint (seeds 1000+, never seen in training)."""
    curve_episodes: int = 20
    """Episodes per task for the earlier checkpoints of the success-vs-steps curve."""
    eval_step: int | None = None
    """pick-cube-act-robustness: evaluate both policies' checkpoint of this training step instead of the
    last (a multiple of steps / 4; results_<step>.*)."""
    threads: int | None = 1
    """torch threads for training and evaluation (1 is fastest on a shared 2-core machine)."""
    workers: int = 2
    """Collection worker processes."""
    device: DeviceName = "auto"
    """torch device for training and evaluation: auto (cuda, then mps, then cpu), cpu, cuda or mps."""
    dtype: DtypeName = "float32"
    """Precision: training autocast and evaluation inference (float32, bfloat16, float16 on GPUs)."""
    ray: str | None = None
    """Collect and evaluate on a Ray cluster (auto, host:port or local; --workers actors each); training
    stays on this machine (docs/ray.md)."""


def _task_name(env_id: str) -> str:
    return env_id.split("/")[-1].removesuffix("-v0")


def _dataset_root(args: Args, recipe: Recipe) -> Path:
    tasks = "all_tasks" if recipe.tasks == ALL_TASKS else "_".join(_task_name(t) for t in recipe.tasks)
    variant = "".join(f"_{k}{'-' * isinstance(v, str)}{_tag(v)}" for k, v in sorted(recipe.collect.items()))
    return args.output_dir / "data" / f"{tasks}_{_demos(args, recipe)}{variant}"


def _demos(args: Args, recipe: Recipe) -> int:
    return args.demos_per_task or recipe.demos_per_task


def _saved_episodes(root: Path, env_id: str) -> tuple[int, int]:
    """Episodes of ``env_id`` in the dataset at ``root``, and the first seed none of them used."""
    info = root / "meta" / "info.json"
    if not info.is_file() or json.loads(info.read_text()).get("total_episodes", 0) == 0:
        return 0, 0  # not started, or interrupted before its first episode was saved
    from so101lab.datasets import DatasetMeta

    seeds = [int(e["seed"]) for e in DatasetMeta(root).episodes if e.get("env_id") == env_id]
    return len(seeds), max(seeds, default=-1) + 1


def collect_demos(args: Args, recipe: Recipe, root: Path) -> None:
    """Scripted demos of each task into one dataset; tops up what an interrupted run left."""
    wanted = _demos(args, recipe)
    for task in recipe.tasks:
        have, next_seed = _saved_episodes(root, task)
        if have < wanted:
            collect.collect(collect.Args(root=root, env_id=task, episodes=wanted - have,
                                         workers=args.workers, seed=next_seed, allow_mixed_env_ids=True,
                                         ray=args.ray, **recipe.collect))  # fmt: skip


def _tag(value: Any) -> str:
    """A collect option's value in a dataset folder name: 2 for 2.0, 48x64 for (48, 64)."""
    if isinstance(value, (tuple, list)):
        return "x".join(_tag(v) for v in value)
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _train_args(args: Args, recipe: Recipe, root: Path, run: Path) -> train.Args:
    values = dict(recipe.train)
    if args.steps is not None:
        values.update(steps=args.steps, decay_steps=args.steps)
    values["save_every"] = max(1, values["steps"] // recipe.curve_points)
    return train.Args(dataset=root, output_dir=run / "train", threads=args.threads, wandb="disabled",
                      device=args.device, dtype=args.dtype, **values)


def _finished_checkpoints(train_dir: Path) -> list[Path]:
    return sorted(p for p in (train_dir / "checkpoints").glob("[0-9]*") if (p / PRETRAINED).is_dir())


def train_unless_done(targs: train.Args, until: int | None = None) -> list[Path]:
    """Train, resuming what a stopped run left, unless a checkpoint of step `until` (default: the last
    step) exists; returns the finished checkpoints. A run folder trained on another dataset is refused:
    a changed --demos-per-task would otherwise be evaluated with the old run's checkpoints."""
    done = _finished_checkpoints(targs.output_dir)
    if done:
        trained_on = saved_training_step(done[-1]).get("args", {}).get("dataset")
        if trained_on is not None and Path(trained_on).resolve() != Path(targs.dataset).resolve():
            raise UsageError(f"{targs.output_dir} holds a run trained on {trained_on}, not {targs.dataset}: "
                             f"pass another --output-dir (or delete that run)")
    if not done or int(done[-1].name) < (until or targs.steps):
        targs.resume = bool(done)
        train.main(targs)
    return _finished_checkpoints(targs.output_dir)


def _instruction_of(env_id: str, seed: int) -> str:
    import so101lab  # noqa: F401  (registers the envs)

    env = gym.make(env_id, obs_mode="state")
    _, info = env.reset(seed=seed)
    env.close()
    return str(info["task"])


def _evaluate(args: Args, recipe: Recipe, policy: Path, env_id: str, out: Path, episodes: int,
              instruction: str | None) -> dict:  # fmt: skip
    info_path = out / evaluate.EVAL_INFO
    if not info_path.is_file():
        evaluate.main(evaluate.Args(policy_path=policy, env=env_id, n_episodes=episodes, output_dir=out, max_videos=2,
                                    instruction=instruction, threads=args.threads, device=args.device,
                                    dtype=args.dtype, ray=args.ray, ray_workers=args.workers,
                                    **recipe.eval))  # fmt: skip
    agg = json.loads(info_path.read_text())["aggregated"]
    return {"success": agg["pc_success"] / 100, "ci95": [x / 100 for x in agg["pc_success_ci95"]],
            "episodes": agg["n_episodes"], "eval_s": agg["eval_s"]}  # fmt: skip


def _timed(timings: dict, name: str, fn) -> None:
    start = time.perf_counter()
    fn()
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def main(args: Args) -> dict:
    if args.recipe == "pick-cube-act-robustness":
        from so101lab.experiments import robustness

        return robustness.main(args, step=args.eval_step)
    recipe = RECIPES[args.recipe]
    run = args.output_dir / args.recipe
    run.mkdir(parents=True, exist_ok=True)
    timings_path = run / "timings.json"  # wall seconds per phase, summed over resumed runs
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    root = _dataset_root(args, recipe)
    targs = _train_args(args, recipe, root, run)

    def save_timings() -> None:
        timings_path.write_text(json.dumps(timings, indent=2))

    _timed(timings, "collect_s", lambda: collect_demos(args, recipe, root))
    save_timings()
    checkpoints: list[Path] = []
    _timed(timings, "train_s", lambda: checkpoints.extend(train_unless_done(targs)))
    save_timings()
    curve: dict[str, list[dict]] = {t: [] for t in recipe.tasks}
    swapped: dict[str, dict] = {}
    eval_start = time.perf_counter()
    for ckpt in checkpoints:
        final = ckpt == checkpoints[-1]
        for task in recipe.tasks:
            out = run / "eval" / ckpt.name / _task_name(task)
            episodes = args.eval_episodes if final else args.curve_episodes
            result = _evaluate(args, recipe, ckpt / PRETRAINED, task, out, episodes, None)
            curve[task].append({"step": int(ckpt.name), **result})
    if len(recipe.tasks) > 1:  # each task run with the next task's instruction
        last = checkpoints[-1]
        for i, task in enumerate(recipe.tasks):
            other = recipe.tasks[(i + 1) % len(recipe.tasks)]
            instruction = _instruction_of(other, evaluate.Args.seed)
            out = run / "eval" / f"{last.name}_swapped" / _task_name(task)
            result = _evaluate(args, recipe, last / PRETRAINED, task, out, args.eval_episodes, instruction)
            swapped[task] = {"instruction": instruction, "instruction_of": other, **result}
    timings["eval_s"] = timings.get("eval_s", 0.0) + time.perf_counter() - eval_start  # ~0 more on a rerun
    save_timings()
    text = json.dumps(_results(args, recipe, root, targs, timings, curve, swapped), indent=2)
    (run / "results.json").write_text(text)
    results = json.loads(text)
    plot_results(results, run / "results.png")
    for task, points in curve.items():
        final = points[-1]
        lo, hi = final["ci95"]
        print(f"{args.recipe} {_task_name(task)}: {final['success']:.0%} (95% CI {lo:.0%}-{hi:.0%}) "
              f"over {final['episodes']} episodes after {final['step']} steps")  # fmt: skip
    print(f"results: {run / 'results.json'}, plot: {run / 'results.png'}")
    return results


def _results(args: Args, recipe: Recipe, root: Path, targs: train.Args, timings: dict,
             curve: dict, swapped: dict) -> dict:  # fmt: skip
    from so101lab.datasets import DatasetMeta

    meta = DatasetMeta(root)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    with (targs.output_dir / train.METRICS_FILE).open() as f:
        losses = [{"step": int(r["step"]), "loss": float(r["loss"])} for r in csv.DictReader(f)]
    overall_success = sum(round(c[-1]["success"] * c[-1]["episodes"]) for c in curve.values())
    overall_n = sum(c[-1]["episodes"] for c in curve.values())
    return {
        "recipe": args.recipe,
        "policy": targs.policy,
        "tasks": list(recipe.tasks),
        "dataset": {"root": str(root), "episodes": meta.total_episodes, "frames": meta.total_frames,
                    "bytes": size, "cameras": meta.camera_keys,
                    "episodes_per_task": {t: _saved_episodes(root, t)[0] for t in recipe.tasks}},
        "train": {"steps": targs.steps, "batch_size": targs.batch_size, "threads": targs.threads,
                  **{k: v for k, v in dataclasses.asdict(targs).items() if k in recipe.train}},
        "collect": recipe.collect,
        "eval": {"first_seed": evaluate.Args.seed, **recipe.eval},
        "wall_s": timings,
        "success": {t: c[-1] for t, c in curve.items()},
        "success_overall": {"success": overall_success / overall_n, "episodes": overall_n,
                            "ci95": list(wilson_interval(overall_success, overall_n))},
        "success_vs_steps": curve,
        "swapped_instructions": swapped,
        "loss": losses,
    }


def plot_results(results: dict, path: Path) -> None:
    """Success (95 % interval) vs training steps per task, and the training loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for task, points in results["success_vs_steps"].items():
        steps = [p["step"] for p in points]
        rate = [p["success"] for p in points]
        err = [[p["success"] - p["ci95"][0] for p in points], [p["ci95"][1] - p["success"] for p in points]]
        ax.errorbar(steps, rate, yerr=err, marker="o", capsize=3, label=_task_name(task))
    ax.set(xlabel="training steps", ylabel="success rate", ylim=(-0.02, 1.02),
           title=f"{results['recipe']}: success (95% CI)")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend()
    ax_loss.plot([p["step"] for p in results["loss"]], [p["loss"] for p in results["loss"]])
    ax_loss.set(xlabel="training steps", ylabel="training loss", yscale="log", title="loss")
    ax_loss.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
