"""Look at a dataset episode: cameras side by side as an mp4, state/action per joint as PNG plots.

    so101lab viz --root data/pick_cube --episode 0 [--out viz/] [--rerun]

With --rerun (needs ``pip install 'so101lab[rerun]'``, rerun-sdk 0.23 or later), also a rerun.io
recording (.rrd) of the episode: every camera, and state/action per joint on the frame timeline, as LeRobot's
lerobot-dataset-viz shows them; open it with ``rerun episode_000000.rrd``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from so101lab.contract import FEATURE_ACTION, FEATURE_STATE, JOINT_NAMES


@dataclass
class Args:
    root: Path
    """Dataset directory."""
    episode: int = 0
    """Episode to show."""
    out: Path | None = None
    """Output directory (default: <root>/viz)."""
    rerun: bool = False
    """Also write a rerun.io recording (.rrd) of the episode."""


def to_uint8(image) -> np.ndarray:
    """A float CHW [0, 1] tensor as uint8 HxWx3."""
    return (image.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


def side_by_side(images: list[np.ndarray]) -> np.ndarray:
    """Cameras left to right, each padded at the bottom to the tallest (even sizes for yuv420p)."""
    height = max(img.shape[0] for img in images)
    height += height % 2
    padded = [np.pad(img, ((0, height - img.shape[0]), (0, 0), (0, 0))) for img in images]
    row = np.concatenate(padded, axis=1)
    return np.pad(row, ((0, 0), (0, row.shape[1] % 2), (0, 0)))


def write_video(ds, path: Path) -> int:
    from so101lab.datasets.video import VideoEncoder

    encoder = None
    frames = 0
    try:
        for idx in range(len(ds)):
            item = ds[idx]
            row = side_by_side([to_uint8(item[k]) for k in ds.meta.camera_keys])
            if encoder is None:
                encoder = VideoEncoder(path, row.shape[0], row.shape[1], ds.fps, vcodec="h264")
            encoder.write(row)
            frames += 1
    finally:
        if encoder is not None:
            encoder.close()
    return frames


def plot_joints(t: np.ndarray, state: np.ndarray, action: np.ndarray, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(JOINT_NAMES), 1, figsize=(9, 12), sharex=True)
    for j, (ax, name) in enumerate(zip(axes, JOINT_NAMES, strict=True)):
        ax.plot(t, state[:, j], label="observation.state")
        ax.plot(t, action[:, j], label="action", linestyle="--")
        ax.set_ylabel(f"{name}\n({'0..100' if name == 'gripper' else 'deg'})")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right")
    axes[0].set_title(title)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def import_rerun() -> Any:
    """rerun, or a SystemExit saying how to install it (checked before any output is written)."""
    try:
        import rerun
    except ImportError as e:
        raise SystemExit("--rerun needs rerun-sdk>=0.23: pip install 'so101lab[rerun]'") from e
    return rerun


def write_rerun(ds, path: Path, state: np.ndarray, action: np.ndarray, t: np.ndarray) -> None:
    rr = import_rerun()
    rr.init("so101lab_dataset_viz", spawn=False)
    rr.save(str(path))
    for idx in range(len(ds)):
        item = ds[idx]
        rr.set_time("frame_index", sequence=idx)
        rr.set_time("timestamp", duration=float(t[idx]))
        for key in ds.meta.camera_keys:
            rr.log(key, rr.Image(to_uint8(item[key])).compress(jpeg_quality=85))
        for j, name in enumerate(JOINT_NAMES):
            rr.log(f"{FEATURE_STATE}/{name}", rr.Scalars(float(state[idx, j])))
            rr.log(f"{FEATURE_ACTION}/{name}", rr.Scalars(float(action[idx, j])))
    rr.disconnect()


def visualize(args: Args) -> dict[str, Any]:
    from so101lab.datasets import LeRobotDataset

    if args.rerun:
        import_rerun()
    ds = LeRobotDataset(args.root, episodes=[args.episode])
    out = args.out or args.root / "viz"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"episode_{args.episode:06d}"
    t = ds.column("timestamp").astype(np.float64)
    state, action = ds.column(FEATURE_STATE), ds.column(FEATURE_ACTION)
    task = ds.meta.episodes[args.episode]["tasks"][0] if ds.meta.episodes[args.episode]["tasks"] else ""
    files: dict[str, Any] = {}
    plot = out / f"{stem}_joints.png"
    plot_joints(t, state, action, f"{args.root.name} episode {args.episode}: {task}", plot)
    files["plot"] = str(plot)
    if ds.meta.camera_keys:
        video = out / f"{stem}_cameras.mp4"
        files["video_frames"] = write_video(ds, video)
        files["video"] = str(video)
    if args.rerun:
        rrd = out / f"{stem}.rrd"
        write_rerun(ds, rrd, state, action, t)
        files["rerun"] = str(rrd)
    return {"episode": args.episode, "task": task, "frames": len(ds), **files}


def main(args: Args) -> None:
    report = visualize(args)
    print(f"wrote {', '.join(str(v) for k, v in report.items() if k in ('plot', 'video', 'rerun'))}", file=sys.stderr)
    print(json.dumps(report, indent=2))
