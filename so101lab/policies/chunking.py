"""Executing action chunks one step at a time: shared by every chunking policy.

A chunk policy predicts ``chunk_size`` future actions per call; the robot runs the first
``n_action_steps`` of them open loop before asking again. The queue owns that bookkeeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch
from torch import Tensor


class ActionQueue:
    """FIFO of planned actions for a batch of envs that step in lockstep."""

    def __init__(self, n_action_steps: int) -> None:
        if n_action_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {n_action_steps}")
        self.n_action_steps = n_action_steps
        self._queue: deque[Tensor] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        """Forget planned actions (call at every episode start)."""
        self._queue.clear()

    def pop(self, predict_chunk: Callable[[], Tensor]) -> Tensor:
        """Next action [B, D]; calls ``predict_chunk() -> [B, T, D]`` only when the queue is empty."""
        if not self._queue:
            chunk = predict_chunk()
            if chunk.ndim != 3:
                raise ValueError(f"predict_chunk must return [batch, steps, dim], got {tuple(chunk.shape)}")
            if chunk.shape[1] < self.n_action_steps:
                raise ValueError(f"chunk has {chunk.shape[1]} steps but n_action_steps is {self.n_action_steps}")
            self._queue.extend(chunk[:, : self.n_action_steps].transpose(0, 1))
        return self._queue.popleft()


class TemporalEnsembler:
    """ACT's temporal ensembling: predict a chunk every step and average what overlaps.

    The action for step t is the weighted mean of every earlier chunk's prediction for t, with
    weight exp(-coeff * i) for the i-th oldest prediction (older ones weigh more for coeff > 0,
    which keeps the motion smooth).
    """

    def __init__(self, coeff: float) -> None:
        self.coeff = coeff
        self._sum: Tensor | None = None  # [B, T, D] weighted sums of the predictions per future step
        self._weight: Tensor | None = None  # [T] total weight per future step
        self._count: Tensor | None = None  # [T] predictions received per future step

    def update(self, chunk: Tensor) -> Tensor:
        """Add this step's chunk [B, T, D] and return the ensembled action [B, D] for this step."""
        if chunk.ndim != 3:
            raise ValueError(f"chunk must be [batch, steps, dim], got {tuple(chunk.shape)}")
        steps = chunk.shape[1]
        if self._sum is None:
            self._sum = chunk.new_zeros(chunk.shape)
            self._weight = chunk.new_zeros(steps)
            self._count = chunk.new_zeros(steps)
        w = torch.exp(-self.coeff * self._count)  # this chunk is prediction number `count` for each step
        self._sum += chunk * w[None, :, None]
        self._weight += w
        self._count += 1
        action = self._sum[:, 0] / self._weight[0]
        # Shift one step: the next call is about the following step; the new horizon step starts empty.
        self._sum = torch.cat([self._sum[:, 1:], chunk.new_zeros(chunk.shape[0], 1, chunk.shape[2])], dim=1)
        self._weight = torch.cat([self._weight[1:], chunk.new_zeros(1)])
        self._count = torch.cat([self._count[1:], chunk.new_zeros(1)])
        return action
