"""Sim-vs-real plots of servo logs: one figure per trajectory type, plus an error overview."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np

from so101lab.sysid.logs import ServoLog
from so101lab.sysid.simulate import rms_error


def plot_runs(logs: list[ServoLog], sims: list[np.ndarray], out_dir: str | Path,
              baseline: list[np.ndarray] | None = None, max_per_figure: int = 12) -> list[Path]:
    """Write `<trajectory>.png` per trajectory type (goal, measured, simulated, joint by joint);
    returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, log in enumerate(logs):
        groups[log.trajectory].append(i)
    written = []
    for trajectory, indices in sorted(groups.items()):
        panels = [(i, j) for i in indices[:max_per_figure] for j in range(len(logs[i].joint_names))]
        panels = panels[:max_per_figure]
        cols = min(3, len(panels))
        rows = -(-len(panels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.0 * rows), squeeze=False, sharex=False)
        for ax, (i, j) in zip(axes.flat, panels, strict=False):
            log = logs[i]
            ax.plot(log.t, log.goal[:, j], color="0.6", lw=1, label="goal")
            ax.plot(log.t, log.pos[:, j], color="C0", lw=1.5, label="real")
            ax.plot(log.t, sims[i][:, j], color="C1", lw=1.2, label="sim")
            if baseline is not None:
                ax.plot(log.t, baseline[i][:, j], color="C3", lw=0.8, ls="--", label="textbook")
            off = ~log.torque_enable[:, j]
            if off.any():
                ax.fill_between(log.t, 0, 1, where=off, color="0.9", transform=ax.get_xaxis_transform(),
                                label="torque off")
            joint = f" {log.joint_names[j]}" if len(log.joint_names) > 1 else ""
            ax.set_title(f"{log.name}{joint}  rms {rms_error(log, sims[i]):.3f} rad", fontsize=8)
            ax.set_xlabel("t (s)", fontsize=8)
            ax.set_ylabel("rad", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{trajectory}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


def plot_errors(report: dict, out_path: str | Path, baseline: dict | None = None) -> Path:
    """Bar chart of the RMS error of every run (sorted as in the report), with the baseline's."""
    names = list(report["per_run"])
    fig, ax = plt.subplots(figsize=(max(8.0, 0.18 * len(names)), 4.0))
    x = np.arange(len(names))
    if baseline is not None:
        ax.bar(x, [baseline["per_run"][n] for n in names], color="C3", alpha=0.35, label="textbook servo")
    ax.bar(x, [report["per_run"][n] for n in names], color="C0", label="identified servo")
    median = report["median_rms"]
    ax.axhline(median, color="C0", ls="--", lw=1, label=f"median {median:.3f} rad")
    ax.set_xticks(x, names, rotation=90, fontsize=5)
    ax.set_ylabel("RMS position error (rad)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
