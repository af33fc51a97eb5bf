"""Dataset write and read throughput of so101lab, and of LeRobot 0.4.4 on the same data in the same run.

    python scripts/bench_dataset.py                                  # so101lab only
    python scripts/bench_dataset.py --lerobot-python /root/.cache/lerobot-ref/bin/python

Rates are per wall-clock second and per CPU second (this process, its threads and finished
children such as ffmpeg): the second is the robust one on a machine shared with other jobs.
Write: frames/s recording two 480x640 cameras + state/action (encoding included: the clock stops
when the last episode is saved and readable). Read: samples/s of random `ds[i]` with
delta_timestamps as SmolVLA trains (action chunk of 50, one frame per camera), in one process and
through a DataLoader with 2 workers (batch 8).
LeRobot writes with its `lerobot-record` defaults (PNG frames, 4 writer threads per camera, encode
at save) and with `streaming_encoding=True`; it reads with video_backend="pyav". Prints JSON.

The LeRobot side runs this same file under the LeRobot python (``--side lerobot``), so it must
not import so101lab at module level.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FPS = 30
HEIGHT, WIDTH = 480, 640
CAMERAS = ("front", "wrist")
NAMES = [f"{j}.pos" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")]
DELTA = {"action": [i / FPS for i in range(50)]}


def frames(n: int) -> list[dict[str, np.ndarray]]:
    """Deterministic frames: smooth images with moving squares (video-like), random joints."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([x * 200 // WIDTH, y * 200 // HEIGHT, np.full_like(x, 90)], -1).astype(np.uint8)
    out = []
    for i in range(n):
        item = {"observation.state": rng.uniform(-90, 90, 6).astype(np.float32)}
        item["action"] = (item["observation.state"] + rng.normal(0, 1, 6)).astype(np.float32)
        for c, cam in enumerate(CAMERAS):
            img = base.copy()
            cx = (i * 4 + 100 * c) % (WIDTH - 80)
            img[150:230, cx : cx + 80] = (250, 60 + 100 * c, 40)
            item[f"observation.images.{cam}"] = img
        out.append(item)
    return out


def task_of(episode: int) -> str:
    return f"pick up the cube {episode % 2}"


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its finished children (ffmpeg, pool workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Rate:
    """Items per wall-clock second, and per CPU second (robust to other load on a shared machine)."""

    def __enter__(self) -> Rate:
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, cpu_seconds() - self.cpu

    def of(self, items: int) -> tuple[float, float]:
        return items / self.wall, items / self.cpu


def read_rate(get, n_items: int, samples: int) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    idx = rng.integers(0, n_items, samples)
    get(int(idx[0]))  # open files, warm caches
    with Rate() as rate:
        for i in idx:
            get(int(i))
    return rate.of(samples)


def loader_rate(ds, samples: int, workers: int = 2, batch_size: int = 8) -> tuple[float, float]:
    """Samples/s through a torch DataLoader with worker processes, as training reads."""
    import torch

    idx = np.random.default_rng(2).integers(0, len(ds), samples).tolist()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(ds, idx), batch_size=batch_size, num_workers=workers, persistent_workers=False
    )
    batches = iter(loader)
    seen = len(next(batches)["index"])  # workers started, files opened
    with Rate() as rate:
        for batch in batches:
            seen += len(batch["index"])
    return rate.of(samples - batch_size)


# ---- so101lab ---------------------------------------------------------------------------------


def so101lab_write(root: Path, data: list[dict], episodes: int) -> tuple[float, float]:
    from so101lab import contract
    from so101lab.datasets import DatasetWriter, robot_features

    cams = tuple(contract.CameraSpec(c, HEIGHT, WIDTH) for c in CAMERAS)
    per_ep = len(data) // episodes
    with Rate() as rate:
        writer = DatasetWriter(root, robot_features(cams))
        for ep in range(episodes):
            for frame in data[ep * per_ep : (ep + 1) * per_ep]:
                writer.add_frame(frame, task_of(ep))
            writer.save_episode()
    return rate.of(episodes * per_ep)


def so101lab_read(root: Path, samples: int) -> tuple[float, float]:
    from so101lab.datasets import LeRobotDataset

    ds = LeRobotDataset(root, delta_timestamps=DELTA)
    return read_rate(ds.__getitem__, len(ds), samples)


def so101lab_loader(root: Path, samples: int) -> tuple[float, float]:
    from so101lab.datasets import LeRobotDataset

    return loader_rate(LeRobotDataset(root, delta_timestamps=DELTA), samples)


# ---- LeRobot (runs under the LeRobot python) ---------------------------------------------------


def lerobot_write(root: Path, data: list[dict], episodes: int, streaming: bool) -> tuple[float, float]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    joint = {"dtype": "float32", "shape": (6,), "names": NAMES}
    features = {"observation.state": joint, "action": joint}
    for cam in CAMERAS:
        features[f"observation.images.{cam}"] = {
            "dtype": "video", "shape": (HEIGHT, WIDTH, 3), "names": ["height", "width", "channels"],
        }  # fmt: skip
    per_ep = len(data) // episodes
    kwargs = {"streaming_encoding": True, "encoder_threads": 2} if streaming else {"image_writer_threads": 4 * 2}
    with Rate() as rate:
        ds = LeRobotDataset.create("bench/lerobot", FPS, features, root=root, robot_type="so101_follower", **kwargs)
        for ep in range(episodes):
            for frame in data[ep * per_ep : (ep + 1) * per_ep]:
                ds.add_frame({**frame, "task": task_of(ep)})
            ds.save_episode()
        ds.finalize()
    return rate.of(episodes * per_ep)


def lerobot_read(root: Path, samples: int) -> tuple[float, float]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("bench/read", root=root, delta_timestamps=DELTA, video_backend="pyav")
    return read_rate(ds.__getitem__, len(ds), samples)


def lerobot_loader(root: Path, samples: int) -> tuple[float, float]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("bench/read", root=root, delta_timestamps=DELTA, video_backend="pyav")
    return loader_rate(ds, samples)


def lerobot_side(args: argparse.Namespace) -> None:
    import logging

    logging.disable(logging.WARNING)
    out: dict[str, tuple[float, float]] = {}
    data = frames(args.frames)
    for mode in ("record_defaults", "streaming_encoding"):
        root = Path(args.workdir) / f"lerobot_{mode}"
        out[f"write_fps_{mode}"] = lerobot_write(root, data, args.episodes, mode == "streaming_encoding")
    out["read_samples_per_s"] = lerobot_read(Path(args.read_root), args.samples)
    out["read_samples_per_s_dataloader_2_workers"] = lerobot_loader(Path(args.read_root), args.samples)
    out["read_samples_per_s_own_dataset"] = lerobot_read(Path(args.workdir) / "lerobot_record_defaults", args.samples)
    print(json.dumps(out))


# ---- driver -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames written (split into episodes)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--samples", type=int, default=300, help="random items read")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians reported)")
    parser.add_argument("--lerobot-python", default=None, help="python of a LeRobot 0.4.4 venv")
    parser.add_argument("--side", default="so101lab", choices=["so101lab", "lerobot"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--read-root", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "lerobot":
        lerobot_side(args)
        return

    work = Path(tempfile.mkdtemp(prefix="bench_dataset_"))
    runs: dict[str, list[float]] = {}

    def record(key: str, rates: tuple[float, float]) -> None:
        runs.setdefault(key, []).append(rates[0])
        runs.setdefault(f"{key}/per_cpu_s", []).append(rates[1])

    try:
        data = frames(args.frames)
        loadavg_before = os.getloadavg()[0]
        for r in range(args.rounds):  # alternate the two sides; report medians (the machine is shared)
            ours = work / f"so101lab_{r}"
            record("so101lab/write_fps", so101lab_write(ours, data, args.episodes))
            record("so101lab/read_samples_per_s", so101lab_read(ours, args.samples))
            record("so101lab/read_samples_per_s_dataloader_2_workers", so101lab_loader(ours, args.samples))
            if not args.lerobot_python:
                continue
            lr_work = work / f"lerobot_{r}"
            cmd = [args.lerobot_python, __file__, "--side", "lerobot", "--workdir", str(lr_work),
                   "--read-root", str(ours), "--frames", str(args.frames), "--episodes", str(args.episodes),
                   "--samples", str(args.samples)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"LeRobot side failed:\n{proc.stderr[-3000:]}")
            for key, value in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                record(f"lerobot_0.4.4/{key}", value)
            record(
                "so101lab/read_samples_per_s_lerobot_dataset",
                so101lab_read(lr_work / "lerobot_record_defaults", args.samples),
            )
        med = {k: float(np.median(v)) for k, v in runs.items()}
        result: dict = {
            "frames": args.frames,
            "episodes": args.episodes,
            "samples": args.samples,
            "rounds": args.rounds,
            "cameras": f"{len(CAMERAS)} x {HEIGHT}x{WIDTH}",
            "codec": "libsvtav1 crf30 g2 (both)",
            "delta_timestamps": "action chunk 50, one frame per camera",
            "cpu_count": os.cpu_count(),
            "loadavg_before": loadavg_before,
            "loadavg_after": os.getloadavg()[0],
            "median": med,
            "all_rounds": runs,
        }
        if args.lerobot_python:
            lr = "lerobot_0.4.4/"
            result["ratios"] = {}
            for unit, suffix in (("wall", ""), ("cpu", "/per_cpu_s")):
                ours_w, ours_r = med["so101lab/write_fps" + suffix], med["so101lab/read_samples_per_s" + suffix]
                lr_rec, lr_stream = (
                    med[lr + "write_fps_record_defaults" + suffix],
                    med[lr + "write_fps_streaming_encoding" + suffix],
                )
                result["ratios"][unit] = {
                    "write_vs_lerobot_best": ours_w / max(lr_rec, lr_stream),
                    "write_vs_lerobot_record_defaults": ours_w / lr_rec,
                    "read_vs_lerobot_same_dataset": ours_r / med[lr + "read_samples_per_s" + suffix],
                    "read_dataloader_vs_lerobot": med["so101lab/read_samples_per_s_dataloader_2_workers" + suffix]
                    / med[lr + "read_samples_per_s_dataloader_2_workers" + suffix],
                    "read_vs_lerobot_on_lerobot_dataset": med["so101lab/read_samples_per_s_lerobot_dataset" + suffix]
                    / med[lr + "read_samples_per_s_own_dataset" + suffix],
                }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
