"""Synthetic SO-101 episodes (no simulator needed) for tests, benchmarks and format checks.

Images are smooth gradients with a moving bright square: they survive lossy video coding and
every frame differs, so a frame read back from the wrong time is detectable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from so101lab import contract
from so101lab.datasets.format import robot_features
from so101lab.datasets.recorder import VideoSettings
from so101lab.datasets.writer import DatasetWriter


def synthetic_image(height: int, width: int, episode: int, frame: int, camera: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), dtype=np.float32)
    img[..., 0] = x * (200.0 / width) + 20 * camera
    img[..., 1] = y * (200.0 / height) + 10 * (episode % 5)
    img[..., 2] = 100.0
    side = max(4, height // 4)
    cx = (frame * 3) % max(1, width - side)
    img[height // 3 : height // 3 + side, cx : cx + side] = 250.0
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_frame(
    rng: np.random.Generator, cameras: Sequence[contract.CameraSpec], episode: int, frame: int
) -> dict[str, np.ndarray]:
    state = rng.uniform(contract.ACTION_LOW, contract.ACTION_HIGH).astype(np.float32)
    out: dict[str, np.ndarray] = {
        contract.FEATURE_STATE: state,
        contract.FEATURE_ACTION: (state + rng.normal(0, 1, contract.NUM_JOINTS)).astype(np.float32),
    }
    for i, cam in enumerate(cameras):
        out[contract.image_feature(cam.name)] = synthetic_image(cam.height, cam.width, episode, frame, i)
    return out


def write_synthetic(
    root: str | Path,
    episodes: Sequence[tuple[int, str]],
    cameras: Sequence[contract.CameraSpec] = (contract.CameraSpec("front", 48, 64),),
    video: VideoSettings | None = None,
    seed: int = 0,
    **writer_kwargs: object,
) -> DatasetWriter:
    """Append episodes given as (length, task) to the dataset at ``root`` (created if absent)."""
    writer = DatasetWriter(root, robot_features(tuple(cameras)), video=video, **writer_kwargs)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    for length, task in episodes:
        episode = writer.num_episodes
        for i in range(length):
            writer.add_frame(synthetic_frame(rng, cameras, episode, i), task)
        writer.save_episode()
    return writer
