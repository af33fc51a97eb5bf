"""Headless rendering for every test, whichever module imports mujoco first; two XLA CPU devices
(before jax starts), so the MJX tests run batches split over devices as on a multi-core host; and
oneDNN held to plain AVX-512 kernels (before torch runs any), because bfloat16 matmuls round
differently on AMX and the LeRobot fixtures' bfloat16 numbers came from AVX-512 kernels."""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
try:
    from so101lab.envs.mjx import split_host_into_devices
except ImportError:  # no `mjx` extra: the MJX tests skip
    pass
else:
    split_host_into_devices(2)

import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models on a shared 2-core box: OpenMP threads spinning against other jobs cost 10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
