"""Executing action chunks one step at a time: shared by every chunking policy.

A chunk policy predicts ``chunk_size`` future actions per call; the robot runs the first
``n_action_steps`` of them open loop before asking again. The queue owns that bookkeeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

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
