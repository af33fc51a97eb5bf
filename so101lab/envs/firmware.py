"""The compiled servo firmware: `Servos.step` in C, through ctypes (see `_firmware.c`).

Python per physics step costs more than the physics itself here, so the firmware's per-step work
runs in a small C library built at install time. Where no C compiler was available the library
is absent and `Servos` runs its Python reference instead, with the same results.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
from pathlib import Path
from typing import TYPE_CHECKING

import mujoco
import numpy as np

if TYPE_CHECKING:
    from so101lab.envs.servo import Servos

MAX_SERVOS = 64  # the C side's scratch size
_p = ctypes.c_void_p


class _Firmware(ctypes.Structure):
    _fields_ = [(name, kind) for name, kind in (
        ("mj_step", _p), ("model", _p), ("data", _p), ("ctrl", _p), ("actuator_force", _p),
        ("frictionloss", _p), ("actuator_ids", _p), ("dof_adr", _p), ("n", ctypes.c_int64),
        ("capacity", ctypes.c_int64), ("dt", ctypes.c_double), ("timestep", ctypes.c_double),
        ("max_step", ctypes.c_double), ("friction", ctypes.c_double), ("friction_load", ctypes.c_double),
        ("goal", _p), ("pending", _p), ("due", _p), ("commands", _p), ("ring", _p))]


def _find(directory: Path, stem: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if (directory / f"{stem}{suffix}").is_file():
            return directory / f"{stem}{suffix}"
    return None


def _load_libraries() -> tuple[ctypes.CDLL, int] | None:
    """Our library and the address of the `mj_step` the mujoco bindings use, or None."""
    ours = _find(Path(__file__).parent, "_firmware")
    mujoco_dir = Path(mujoco.__file__).parent
    engine = next(iter(sorted(mujoco_dir.glob("libmujoco.so*")) + sorted(mujoco_dir.glob("libmujoco*.dylib"))), None)
    if ours is None or engine is None:
        return None
    lib = ctypes.CDLL(str(ours))
    lib.so101_firmware_step.argtypes = [ctypes.POINTER(_Firmware), ctypes.c_double, ctypes.c_int64]
    lib.so101_firmware_step.restype = None
    mj_step = ctypes.cast(ctypes.CDLL(str(engine)).mj_step, _p).value
    return lib, mj_step


_LIBRARIES = _load_libraries()


def _address(array: np.ndarray) -> int:
    if not array.flags.c_contiguous:
        raise ValueError("the firmware needs contiguous arrays")
    return array.ctypes.data


class CompiledFirmware:
    """Binds one `Servos` (its arrays and MjModel) to the C firmware; rebinds when the MjData changes."""

    def __init__(self, servos: Servos, lib: ctypes.CDLL, mj_step: int):
        self._step = lib.so101_firmware_step
        self._servos = servos
        model = servos.model
        self._struct = _Firmware(
            mj_step=mj_step, model=model._address, frictionloss=_address(model.dof_frictionloss),
            actuator_ids=_address(servos.actuator_ids), dof_adr=_address(servos.dof_adr),
            n=len(servos.actuator_ids), capacity=len(servos._due), dt=servos.physics_dt,
            timestep=model.opt.timestep, goal=_address(servos._goal), pending=_address(servos._pending),
            due=_address(servos._due), commands=_address(servos._commands), ring=_address(servos._ring))
        self._ref = ctypes.byref(self._struct)
        self._data: mujoco.MjData | None = None

    def set_params(self) -> None:
        """Copy the parameters `Servos.apply_params` derived into the C side."""
        servos = self._servos
        p = servos.params
        self._struct.max_step = servos.max_step
        self._struct.friction = p.frictionloss
        self._struct.friction_load = p.friction_load

    def step(self, data: mujoco.MjData, nstep: int) -> None:
        if data is not self._data:
            self._struct.data = data._address
            self._struct.ctrl = _address(data.ctrl)
            self._struct.actuator_force = _address(data.actuator_force)
            self._struct.timestep = self._servos.model.opt.timestep
            self._data = data  # keeps the MjData, whose memory the pointers address, alive
        self._step(self._ref, data.time, nstep)


def load(servos: Servos) -> CompiledFirmware | None:
    """The compiled firmware for `servos`, or None where the library was not built."""
    return None if _LIBRARIES is None else CompiledFirmware(servos, *_LIBRARIES)
