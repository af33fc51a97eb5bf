"""Weights & Biases runs of the launchers: training metrics, eval results and eval videos.

One place for both, so train and eval runs land in the same project with the same layout.
Offline by default in ``train``: the run is written under the output directory and uploaded
later with ``wandb sync``; nothing is sent unless asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

WandbMode = Literal["offline", "online", "disabled"]
PROJECT = "so101lab"


def start_run(mode: WandbMode, directory: Path, config: dict, job_type: str) -> Any | None:
    """A wandb run writing under ``directory``, or None when disabled or wandb is not installed."""
    if mode == "disabled":
        return None
    try:
        import wandb
    except ImportError:
        print(f"so101lab {job_type}: wandb is not installed (pip install 'so101lab[wandb]'); not logging to it")
        return None
    directory.mkdir(parents=True, exist_ok=True)
    return wandb.init(project=PROJECT, mode=mode, dir=str(directory), config=config, job_type=job_type)


def log_eval(run: Any, info: dict, step: int | None = None) -> None:
    """An eval's aggregated metrics (``eval/<name>``) and its videos, as history and summary."""
    import wandb

    aggregated = info["aggregated"]
    row: dict[str, Any] = {f"eval/{k}": v for k, v in aggregated.items() if isinstance(v, (int, float))}
    row["eval/pc_success_ci95_low"], row["eval/pc_success_ci95_high"] = aggregated["pc_success_ci95"]
    run.summary.update(row)
    for i, path in enumerate(info["video_paths"]):
        row[f"eval/video_{i}"] = wandb.Video(path, format="mp4")
    run.log(row, step=step)
