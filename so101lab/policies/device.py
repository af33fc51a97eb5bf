"""Where and in which precision a policy runs: ``--device`` and ``--dtype`` of every launcher.

One place decides the device (``auto``: cuda, then mps, then cpu) and the precision, so train,
eval, deploy, experiment and the policy server agree and no model code names a device.
``float32`` leaves every weight and op as it is (the LeRobot parity path); ``bfloat16`` and
``float16`` cast the model's weights once and run its forward under ``torch.autocast``, which
converts the float32 inputs (state, images, noise) where they meet a layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

DeviceName = Literal["auto", "cpu", "cuda", "mps"]
DtypeName = Literal["float32", "bfloat16", "float16"]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit device that is not there is an error, not a fallback."""
    if isinstance(name, torch.device):
        return name
    kind = name.split(":")[0]
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: torch sees no CUDA device (torch {torch.__version__}, "
                           f"built with CUDA {torch.version.cuda}); use --device cpu or auto")
    if kind == "mps" and not _mps_available():
        raise RuntimeError(f"--device {name}: the Apple MPS backend is not available; use --device cpu or auto")
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device must be auto, cpu, cuda[:N] or mps, got {name!r}")
    return torch.device(name)


def resolve_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    """The torch dtype of ``--dtype``; float16 on a CPU is refused (no fast kernels, worse range than bf16)."""
    if isinstance(name, torch.dtype):
        dtype = name
    elif name in DTYPES:
        dtype = DTYPES[name]
    else:
        raise ValueError(f"--dtype must be one of {sorted(DTYPES)}, got {name!r}")
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("--dtype float16 is for GPUs; on a CPU use bfloat16 (or float32)")
    return dtype


def set_precision(model: nn.Module, dtype: torch.dtype) -> None:
    """Cast the network's floating weights to ``dtype`` (no-op for float32, which keeps mixed-dtype checkpoints)."""
    if dtype != torch.float32:
        model.to(dtype)


@contextlib.contextmanager
def inference_precision(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device`` for reduced precision; nothing at all for float32."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def describe(device: torch.device) -> str:
    """A log line naming the hardware, so a result records what it ran on."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} torch threads)"
    return device.type
