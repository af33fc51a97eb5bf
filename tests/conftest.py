"""Headless rendering for every test, whichever module imports mujoco first; two XLA CPU devices
(before jax loads), so the MJX tests run batches split over devices as on a multi-core host; and
oneDNN held to plain AVX-512 kernels (before torch runs any), because bfloat16 matmuls round
differently on AMX and the LeRobot fixtures' bfloat16 numbers came from AVX-512 kernels."""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")

import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models on a shared 2-core box: OpenMP threads spinning against other jobs cost 10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
