"""Headless rendering for every test, whichever module imports mujoco first."""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")


import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models on a shared 2-core box: OpenMP threads spinning against other jobs cost 10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
