"""The compiled servo firmware: `Servos.step` in C, through ctypes (see `_firmware.c`).

Python per physics step costs more than the physics itself here, so the firmware's per-step work
runs in a small C library built at install time. Where no C compiler was available the library
is absent and `Servos` runs its Python reference instead, with the same results; so it does too
where the library's struct layout differs from the ctypes mirrors below (checked at load), or
where the mujoco bindings no longer expose the private `_address` of their structs.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from so101lab.contract import UNIT_OFFSET, UNIT_SCALE

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
        ("goal", _p), ("pending", _p), ("due", _p), ("commands", _p), ("ring", _p), ("latency", ctypes.c_double))]


class _Control(ctypes.Structure):
    _fields_ = [(name, _p) for name in (
        "firmware", "action", "low", "high", "scale", "offset", "qpos", "qpos_adr", "agent_pos")]


def _find(directory: Path, stem: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if (directory / f"{stem}{suffix}").is_file():
            return directory / f"{stem}{suffix}"
    return None


def expected_layout(structs: tuple[type[ctypes.Structure], ...] = (_Firmware, _Control)) -> list[int]:
    """sizeof and field offsets of the ctypes mirrors, in the order `so101_struct_layout` writes them."""
    return [v for st in structs for v in (ctypes.sizeof(st), *(getattr(st, name).offset for name, _ in st._fields_))]


def layout_mismatch(lib: ctypes.CDLL, structs: tuple[type[ctypes.Structure], ...] = (_Firmware, _Control)
                    ) -> str | None:
    """Why the C structs and their ctypes mirrors differ, or None when they match to the byte."""
    if not hasattr(lib, "so101_struct_layout"):
        return "the library predates the layout check (rebuild: pip install -e .)"
    lib.so101_struct_layout.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int64]
    lib.so101_struct_layout.restype = ctypes.c_int64
    buf = (ctypes.c_int64 * 128)()
    got = list(buf[: lib.so101_struct_layout(buf, len(buf))])
    want = expected_layout(structs)
    if got != want:
        return f"C struct layout {got} != ctypes mirror {want} (edit both, then pip install -e .)"
    return None


def _load_libraries() -> tuple[ctypes.CDLL, int] | None:
    """Our library and the address of the `mj_step` the mujoco bindings use, or None."""
    ours = _find(Path(__file__).parent, "_firmware")
    mujoco_dir = Path(mujoco.__file__).parent
    engine = next(iter(sorted(mujoco_dir.glob("libmujoco.so*")) + sorted(mujoco_dir.glob("libmujoco*.dylib"))), None)
    if ours is None or engine is None:
        return None
    lib = ctypes.CDLL(str(ours))
    problem = layout_mismatch(lib)
    if problem is not None:
        warnings.warn(f"so101lab: compiled servo firmware not used, {problem}; running the Python reference",
                      RuntimeWarning, stacklevel=2)
        return None
    lib.so101_firmware_step.argtypes = [ctypes.POINTER(_Firmware), ctypes.c_double, ctypes.c_int64]
    lib.so101_firmware_step.restype = None
    lib.so101_control_step.argtypes = [ctypes.POINTER(_Control), ctypes.c_double, ctypes.c_int64]
    lib.so101_control_step.restype = ctypes.c_int
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
        self._lib = lib
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
        self._struct.latency = p.latency

    def bind(self, data: mujoco.MjData) -> None:
        """Point the C side at `data` (a no-op when it already is)."""
        if data is not self._data:
            self._struct.data = data._address
            self._struct.ctrl = _address(data.ctrl)
            self._struct.actuator_force = _address(data.actuator_force)
            self._struct.timestep = self._servos.model.opt.timestep
            self._data = data  # keeps the MjData, whose memory the pointers address, alive

    def step(self, data: mujoco.MjData, nstep: int) -> None:
        self.bind(data)
        self._step(self._ref, data.time, nstep)


class CompiledControl:
    """`SO101Env.step` from action to joint positions in one C call (`so101_control_step`).

    The env's own Python path (validation, clipping, `lerobot_to_radians`, `Servos.command`,
    `Servos.step`, `radians_to_lerobot`) is the reference; this gives the same bits in a fraction
    of the Python time per step (scripts/bench_env.py).
    """

    def __init__(self, firmware: CompiledFirmware, low: np.ndarray, high: np.ndarray):
        n = len(firmware._servos.actuator_ids)
        self.firmware = firmware
        self.action = np.zeros(n, dtype=np.float32)  # the C side reads the action here
        self.agent_pos = np.zeros(n, dtype=np.float32)  # and writes the joint positions here
        self._arrays = [np.ascontiguousarray(a, dtype=dtype) for a, dtype in (
            (low, np.float32), (high, np.float32), (UNIT_SCALE, np.float64), (UNIT_OFFSET, np.float64),
            (firmware._servos.qpos_adr, np.int64))]
        low, high, scale, offset, qpos_adr = (_address(a) for a in self._arrays)
        self._struct = _Control(firmware=ctypes.addressof(firmware._struct), action=_address(self.action),
                                low=low, high=high, scale=scale, offset=offset, qpos_adr=qpos_adr,
                                agent_pos=_address(self.agent_pos))
        self._ref = ctypes.byref(self._struct)
        self._step = firmware._lib.so101_control_step
        self._data: mujoco.MjData | None = None

    def step(self, data: mujoco.MjData, action: np.ndarray, nstep: int) -> int:
        """Send `action` (float32, LeRobot units) and step; 0, 1 (non-finite action: nothing
        happened) or 2 (command ring full). The joint positions are in `agent_pos`."""
        self.firmware.bind(data)
        if data is not self._data:
            self._struct.qpos = _address(data.qpos)
            self._data = data
        self.action[:] = action
        return self._step(self._ref, data.time, nstep)


def has_struct_addresses() -> bool:
    """Whether the mujoco bindings expose `_address` (private API) on MjModel and MjData."""
    return all(hasattr(cls, "_address") for cls in (mujoco.MjModel, mujoco.MjData))


def load(servos: Servos) -> CompiledFirmware | None:
    """The compiled firmware for `servos`, or None (Python reference) where it cannot run."""
    if _LIBRARIES is None or not has_struct_addresses():
        return None
    return CompiledFirmware(servos, *_LIBRARIES)
