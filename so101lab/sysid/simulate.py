"""Replay servo logs in MuJoCo through the project's servo model (`Servos`, the envs' own).

Bench runs are simulated together in one multi-pendulum model; arm logs each on the SO-101
scene. Every log starts at rest at its first measured position and receives its goals at the
logged times; the simulated joint angles are returned sampled at the log's times.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from so101lab.contract import JOINT_NAMES, TORQUE_LIMIT
from so101lab.envs.servo import ServoParams, Servos
from so101lab.sysid.bench import SCENE_XML, bench_model, env_timestep, joint_name
from so101lab.sysid.logs import ServoLog

_TORQUE_LIMIT = dict(zip(JOINT_NAMES, TORQUE_LIMIT, strict=True))


def simulate(logs: list[ServoLog], params: ServoParams, physics_dt: float | None = None) -> list[np.ndarray]:
    """Simulated positions (T, J) of every log, in the order given."""
    dt = env_timestep() if physics_dt is None else physics_dt
    out: list[np.ndarray | None] = [None] * len(logs)
    bench = [i for i, log in enumerate(logs) if log.bench is not None]
    if bench:
        model = bench_model([logs[i].bench for i in bench], dt)
        names = tuple(joint_name(k) for k in range(len(bench)))
        p_gain = np.array([logs[i].p_gain[0] for i in bench])
        servos = Servos(model, names, params, dt, p_gain=p_gain)
        for i, sim in zip(bench, replay(model, servos, [logs[i] for i in bench]), strict=True):
            out[i] = sim
    for i, log in enumerate(logs):
        if log.bench is None:
            model = arm_model(dt)
            limits = np.array([_TORQUE_LIMIT.get(n, 1.0) for n in log.joint_names])
            servos = Servos(model, log.joint_names, params, dt, torque_limit=limits, p_gain=log.p_gain)
            out[i] = replay(model, servos, [log])[0]
    return out  # type: ignore[return-value]


def arm_model(physics_dt: float) -> mujoco.MjModel:
    """The SO-101 on its table (the envs' scene without task objects), compiled once per step size.

    Reusing it is safe: `Servos` rewrites every servo field it touches when it is built.
    """
    if physics_dt not in _ARM_MODELS:
        model = mujoco.MjModel.from_xml_path(str(SCENE_XML))
        model.opt.timestep = physics_dt
        _ARM_MODELS[physics_dt] = model
    return _ARM_MODELS[physics_dt]


_ARM_MODELS: dict[float, mujoco.MjModel] = {}


def replay(model: mujoco.MjModel, servos: Servos, logs: list[ServoLog]) -> list[np.ndarray]:
    """Drive `servos` (whose joints are the logs' joints, concatenated in order) with the logs.

    Commands are zero-order holds of each log's goals at the union of the logs' sample times;
    torque on/off changes take effect at the start of the physics step they fall in.
    """
    dt = servos.physics_dt
    widths = [len(log.joint_names) for log in logs]
    if sum(widths) != len(servos.joint_ids):
        raise ValueError(f"replay: logs have {sum(widths)} joints, servos drive {len(servos.joint_ids)}")
    starts = np.cumsum([0, *widths])
    times = np.unique(np.concatenate([log.t for log in logs]))
    goals = np.empty((len(times), starts[-1]))
    torque = np.empty((len(times), starts[-1]), dtype=bool)
    for log, a, b in zip(logs, starts[:-1], starts[1:], strict=True):
        row = np.clip(np.searchsorted(log.t, times, side="right") - 1, 0, len(log.t) - 1)
        goals[:, a:b] = log.goal[row]
        torque[:, a:b] = log.torque_enable[row]

    data = mujoco.MjData(model)
    qpos_adr = servos.qpos_adr
    data.qpos[qpos_adr] = np.concatenate([log.pos[0] for log in logs])
    mujoco.mj_forward(model, data)
    servos.reset(data)
    n_steps = math.ceil(times[-1] / dt) + 1
    trace = np.empty((n_steps + 1, starts[-1]))
    trace[0] = data.qpos[qpos_adr]
    command = servos.command
    event, n_events = 0, len(times)
    # Torque on/off travels the same bus as goals, so it arrives with the same latency.
    torque_times = times + servos.params.latency
    torque_event = 0
    for i in range(n_steps):
        step_end = data.time + dt - 1e-12
        while event < n_events and times[event] < step_end:
            command(data, goals[event], times[event])
            event += 1
        while torque_event < n_events and torque_times[torque_event] < step_end:
            if not np.array_equal(torque[torque_event], servos.torque_on):
                servos.set_torque(data, torque[torque_event])
            torque_event += 1
        servos.step(data, 1)
        trace[i + 1] = data.qpos[qpos_adr]
    trace_t = np.arange(n_steps + 1) * dt
    return [np.stack([np.interp(log.t, trace_t, trace[:, c]) for c in range(a, b)], axis=1)
            for log, a, b in zip(logs, starts[:-1], starts[1:], strict=True)]


def rms_error(log: ServoLog, sim: np.ndarray) -> float:
    """RMS position error (rad) over all samples and joints of one log."""
    return float(np.sqrt(np.mean((sim - log.pos) ** 2)))
