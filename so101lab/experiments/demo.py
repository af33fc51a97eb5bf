"""The main job on a built-in default: collect sim demos, evaluate, write a report.

    so101lab demo                      # -> outputs/demo/report.md

1. Collects `--episodes` scripted PickCube demos with both cameras (480x640) into a LeRobot v3.0
   dataset, in worker processes.
2. Reads the dataset back through `so101lab.datasets.LeRobotDataset` (with a 50-step action chunk,
   as a policy trains on it) and checks every frame is there.
3. Evaluates the scripted expert of every task on `--eval-episodes` seeded episodes (success rate
   with a 95 % interval).
4. Renders one episode (cameras side by side, mp4) and its joint plots, and writes report.md/.json.

The cameras show the official SO-101 meshes when `so101lab[meshes]` is installed (the README's
first command installs it), else the primitive arm.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from so101lab.envs.registration import SIM_ENV_IDS
from so101lab.experiments import check_experts, collect, viz


@dataclass
class Args:
    out: Path = Path("outputs/demo")
    """Output directory (its dataset is replaced on every run)."""
    env_id: str = "so101lab/PickCube-v0"
    """Task to collect demos of."""
    episodes: int = 10
    """Demos to collect."""
    eval_episodes: int = 10
    """Seeded episodes per task to evaluate the scripted experts on."""
    workers: int = 2
    """Worker processes."""


def check_dataset(root: Path) -> dict:
    """Read every sample back as a policy would: state, action chunk of 50, both images."""
    from so101lab.datasets import LeRobotDataset

    ds = LeRobotDataset(root, delta_timestamps={"action": [i / 30 for i in range(50)]})
    sample = ds[len(ds) // 2]
    images = [k for k in sample if k.startswith("observation.images.")]
    return {"frames": len(ds), "action_chunk_shape": list(sample["action"].shape),
            "image_shapes": {k: list(sample[k].shape) for k in images}, "task_of_middle_frame": sample["task"]}


def run(args: Args) -> dict:
    args.out.mkdir(parents=True, exist_ok=True)
    root = args.out / "dataset"
    if root.exists():
        shutil.rmtree(root)
    report: dict = {"command": "so101lab demo " + " ".join(sys.argv[2:])}

    start = time.perf_counter()
    report["collect"] = collect.collect(collect.Args(root=root, env_id=args.env_id, episodes=args.episodes,
                                                     workers=args.workers))
    report["collect"]["wall_s"] = round(time.perf_counter() - start, 1)
    report["collect"]["size_mb"] = round(sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e6, 2)
    report["dataset_check"] = check_dataset(root)

    start = time.perf_counter()
    jobs = [(env_id, args.eval_episodes) for env_id in SIM_ENV_IDS]
    with ProcessPoolExecutor(args.workers) as pool:
        report["expert_eval"] = list(pool.map(check_experts._run_task, jobs))
    report["expert_eval_wall_s"] = round(time.perf_counter() - start, 1)

    shown = viz.visualize(viz.Args(root=root, episode=0, out=args.out / "episode_0"))
    report["visualisation"] = {k: shown[k] for k in ("video", "plot") if k in shown}
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "report.md").write_text(markdown(report, args))
    return report


def markdown(report: dict, args: Args) -> str:
    c = report["collect"]
    lines = [
        "# so101lab demo report", "",
        f"Command: `{report['command'].strip()}`", "",
        "## Collected demos", "",
        f"- {c['episodes_saved']} episodes of `{c['env_id']}` ({c['frames_total']} frames at 30 Hz, both cameras "
        f"480x640, AV1) in {c['wall_s']} s; {c['size_mb']} MB at `{c['root']}`",
        f"- scripted expert success while collecting: {c['success_rate']:.0%} of {c['attempts']} attempts",
        f"- tasks: {', '.join(repr(t) for t in c['tasks'])}",
        f"- read back: {report['dataset_check']['frames']} samples, action chunk "
        f"{report['dataset_check']['action_chunk_shape']}", "",
        "## Scripted experts, every task", "",
        "| task | success | 95 % CI | mean steps |", "|---|---|---|---|",
    ]
    for row in report["expert_eval"]:
        lines.append(f"| {row['env_id']} | {row['success_rate']:.0%} ({row['episodes']} episodes) | "
                     f"{row['ci95'][0]:.2f}-{row['ci95'][1]:.2f} | {row['mean_steps']:.0f} |")
    lines += ["", "## Episode 0", ""]
    lines += [f"- {name}: `{path}`" for name, path in report["visualisation"].items()]
    ckpt = "outputs/demo/act"
    lines += ["", f"Next: check the training pipeline on these demos (a few minutes on a CPU): `so101lab train "
              f"--dataset {c['root']} --policy act --steps 300 --batch-size 16 --output-dir {ckpt}`, then "
              f"`so101lab eval --policy-path {ckpt}/checkpoints/000300 --n-episodes 5`. Ten demos are too few for a "
              "good policy: `so101lab experiment --recipe pick-cube-act` is the measured recipe (about 35 min, "
              "README).", ""]
    return "\n".join(lines)


def main(args: Args) -> None:
    run(args)
    print((args.out / "report.md").read_text())
    print(f"report: {args.out / 'report.md'}", file=sys.stderr)
