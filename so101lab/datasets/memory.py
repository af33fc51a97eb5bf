"""A small dataset held in memory, for policies that train from a few thousand frames.

Decoding a 480x640 video frame costs more than a small policy's training step, so the frames
are decoded once, passed through the policy's own image transform (typically a resize to a
few dozen pixels), and kept as uint8 tensors; batches of action chunks are then gathered
with tensor indexing, no workers needed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from so101lab.contract import FEATURE_ACTION, FEATURE_STATE
from so101lab.datasets.reader import LeRobotDataset


class InMemoryDataset:
    """State, action and transformed camera frames of every frame of a LeRobot dataset."""

    def __init__(
        self,
        root: str | Path,
        image_keys: list[str],
        frame_transform: Callable[[Tensor], Tensor],
        episodes: list[int] | None = None,
        progress: bool = True,
    ) -> None:
        source = LeRobotDataset(root, episodes=episodes)
        self.meta = source.meta
        missing = [k for k in (FEATURE_STATE, FEATURE_ACTION, *image_keys) if k not in source.features]
        if missing:
            raise KeyError(f"dataset {root} has no features {missing}; it has {sorted(source.features)}")
        self.state = torch.from_numpy(np.asarray(source.column(FEATURE_STATE), dtype=np.float32))
        self.action = torch.from_numpy(np.asarray(source.column(FEATURE_ACTION), dtype=np.float32))
        self.task_index = torch.from_numpy(np.asarray(source.column("task_index"), dtype=np.int64))
        ends = np.concatenate([[r.stop] * len(r) for r in map(source.episode_range, source.episodes)])
        self.episode_end = torch.from_numpy(ends.astype(np.int64))
        frames: list[Tensor] = []
        # Items in order: each video is decoded sequentially, the fast path of the reader.
        for i in tqdm(range(len(source)), desc=f"decode {Path(root).name}", disable=not progress):
            item = source[i]
            frames.append(torch.stack([frame_transform(item[k][None])[0] for k in image_keys]))
        self.images = torch.stack(frames)  # [N, cams, 3, h, w] uint8

    def __len__(self) -> int:
        return len(self.state)

    def batch(self, indices: Tensor, chunk_size: int) -> dict[str, Tensor]:
        """Frames ``indices`` with their next ``chunk_size`` actions; steps past the episode end
        repeat the last action and are flagged in ``action_is_pad``."""
        steps = indices[:, None] + torch.arange(chunk_size)[None]
        end = self.episode_end[indices][:, None]
        return {
            "images": self.images[indices],
            FEATURE_STATE: self.state[indices],
            FEATURE_ACTION: self.action[torch.minimum(steps, end - 1)],
            "action_is_pad": steps >= end,
            "task_index": self.task_index[indices],
        }
