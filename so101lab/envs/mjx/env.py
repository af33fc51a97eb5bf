"""Batched state-mode rollouts of the so101lab tasks in MJX (jit + vmap over N envs).

`MjxEnv` wraps one CPU env of a task. Episodes start from that env's own reset for each seed
(task placement, domain randomisation, settling), copied into a batch of MJX states together
with the model fields the reset changed, so a seed gives the same episode on both backends.
Stepping then runs entirely in JAX: the same action units and clipping, 30 Hz control over the
CPU env's physics substeps, the servo control layer of `servo.py`, and each task's success test.

MJX lacks cylinder-box collision: geoms whose every contact pair is unsupported (the base
column, which only an object pushed against the robot's base could touch) are left out of the
MJX model, and listed in `MjxEnv.dropped_geoms`.

MJX lays out contacts for every geom pair that could touch, and its elliptic-cone Newton solver
builds a dense matrix over all their constraint rows: the bins' wall boxes made that 1,566 rows and
0.5 s per physics step in SortCubes. scene.xml caps MJX at the 64 deepest contacts per contact
dimension (`max_contact_points`, which CPU MuJoCo ignores), which drops no touching contact while
fewer than 64 touch at once (tests/test_mjx.py checks expert episodes stay under it).

MJX needs 64-bit JAX here. In float32 its contact dynamics break down when the jaws squeeze a
cube (a 15 g cube's tiny rotational inertia against stiff pad contacts): within one physics step
the cube spins up and is thrown out of the gripper, where float64 follows the CPU env to a
fraction of a millimetre.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import mujoco
import numpy as np

with contextlib.redirect_stdout(sys.stderr):  # MJX prints why its optional warp backend is absent
    from mujoco import mjx

from so101lab.contract import NUM_JOINTS, OBS_ENV_STATE, OBS_STATE, UNIT_OFFSET, UNIT_SCALE
from so101lab.envs.base import SO101Env
from so101lab.envs.mjx import servo as jservo
from so101lab.envs.mjx.tasks import SceneIds, success_fn

# Model fields a reset may change per episode (task placement of bins, domain randomisation of
# friction and object mass, servo gains and damping): batched per env. tests/test_mjx.py checks
# that resets change no other field the physics reads.
PER_ENV_FIELDS = ("body_pos", "body_mass", "body_inertia", "geom_friction", "actuator_gainprm",
                  "actuator_biasprm", "actuator_forcerange", "dof_damping", "dof_armature")
# MjData fields carried over from the CPU reset: the state, the servo goals, the solver's warm
# start, and the actuator force the first step's gear friction depends on.
RESET_DATA_FIELDS = ("qpos", "qvel", "ctrl", "qacc_warmstart", "actuator_force")


class MjxState(NamedTuple):
    """A batch of N episodes; every leaf has a leading axis N."""

    data: mjx.Data
    fields: dict[str, jax.Array]  # PER_ENV_FIELDS of each episode's model
    servo: jservo.ServoState
    extra_state: jax.Array  # (N, k) the task's environment_state tail, constant over an episode
    success: jax.Array  # (N,) bool: succeeded at some step so far (the CPU env would have terminated)


def unsupported_geoms(model: mujoco.MjModel) -> list[int]:
    """Geoms all of whose contact pairs MJX cannot collide; raises if a pair has no such geom."""
    from mujoco.mjx._src import collision_driver  # no public API lists MJX's collision pairs

    pairs = [(g1, g2) for g1, g2, _ in collision_driver.geom_pairs(model)]
    bad = {(g1, g2) for g1, g2 in pairs
           if not collision_driver.has_collision_fn(model.geom_type[g1], model.geom_type[g2])}
    geoms = {g for pair in bad for g in pair}
    droppable = [g for g in sorted(geoms) if all(p in bad for p in pairs if g in p)]
    for g1, g2 in bad:
        if g1 not in droppable and g2 not in droppable:
            raise NotImplementedError(f"MJX cannot collide geoms {model.geom(g1).name!r} and "
                                      f"{model.geom(g2).name!r}, and both collide with other geoms too")
    return droppable


def _in_chunks(batched_fn, n: int, max_chunk: int):
    """``batched_fn`` over n envs as a loop over equal chunks of at most ``max_chunk``; the last
    chunk is padded with copies of the last env, whose results are dropped."""
    n_chunks = -(-n // max_chunk)
    chunk = -(-n // n_chunks)
    pad = n_chunks * chunk - n

    def run(*args):
        padded = jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), args)
        chunks = jax.tree.map(lambda x: x.reshape(n_chunks, chunk, *x.shape[1:]), padded)
        out = jax.lax.map(lambda c: batched_fn(*c), chunks)
        return jax.tree.map(lambda x: x.reshape(n_chunks * chunk, *x.shape[2:])[:n], out)

    return run


def split_host_into_devices(count: int) -> None:
    """Have XLA present the CPU host as ``count`` devices (unless XLA_FLAGS already sets a count),
    so that `batch_sharding` spreads a batch over its cores. Call before JAX first uses a device."""
    from jax._src import xla_bridge  # no public API tells whether the backends have started

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    if xla_bridge.backends_are_initialized():
        raise RuntimeError("split_host_into_devices must run before JAX first uses a device "
                           f"(it has {len(jax.devices())} already)")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def batch_sharding(n: int, devices: Sequence[jax.Device]) -> jax.sharding.Sharding:
    """The env axis split evenly over ``devices`` (only the first if they do not divide n).

    XLA runs a CPU program on one thread, so on a CPU host the batch spreads over cores only as
    several devices (`split_host_into_devices`, before JAX first uses a device). On GPUs the same
    splits the batch over the cards.
    """
    devices = list(devices)
    if n % len(devices):
        devices = devices[:1]
    mesh = jax.sharding.Mesh(np.array(devices), ("env",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("env"))


class MjxEnv:
    """N episodes of a so101lab task stepped together in MJX, in state mode.

    `reset(seeds)` gives (state, obs); `step(state, actions)` gives (state, obs, reward,
    success): actions (N, 6) in LeRobot units as the CPU env takes them, obs a dict of
    `agent_pos` (N, 6) and `environment_state` (N, k), reward the sparse reward and success the
    task's test on the new state. There is no termination or auto-reset: `state.success` latches
    the first success, which is where the CPU env would have ended the episode. The batch is
    split over `devices` (default: all local ones; see `batch_sharding`), and batches above
    `max_batch` run as a loop over chunks of at most that many envs: on a CPU one vmapped program
    of 1,024 envs hung inside XLA, where a loop over 16 chunks of 64 runs at 64 envs' rate per env.
    """

    def __init__(self, env_id: str = "so101lab/PickCube-v0", allow_float32: bool = False,
                 devices: Sequence[jax.Device] | None = None, max_batch: int | None = 64, **env_kwargs: Any):
        if not (jax.config.jax_enable_x64 or allow_float32):
            raise RuntimeError("MjxEnv needs 64-bit JAX: in float32 MJX throws a squeezed cube out of the "
                               "gripper. Run `jax.config.update('jax_enable_x64', True)` first (or set "
                               "JAX_ENABLE_X64=1), or pass allow_float32=True for free-arm motion only.")
        if env_kwargs.setdefault("obs_mode", "state") != "state":
            raise ValueError(f"MjxEnv runs state mode only, got obs_mode={env_kwargs['obs_mode']!r}")
        if env_kwargs.get("reward_type", "sparse") != "sparse":
            raise ValueError(f"MjxEnv computes the sparse reward only, got reward_type={env_kwargs['reward_type']!r}")
        env_kwargs.setdefault("visual", "primitive")  # MJX draws nothing; the mesh look's geoms are dead weight
        self.cpu: SO101Env = gym.make(env_id, **env_kwargs).unwrapped
        self.env_id = env_id
        self.devices = tuple(jax.local_devices() if devices is None else devices)
        self.max_batch = max_batch
        self.n_substeps = self.cpu.n_substeps
        physics_dt = float(self.cpu.model.opt.timestep)
        servos = self.cpu.servos
        self.schedule = jservo.ServoSchedule.from_params(servos.params, self.n_substeps, physics_dt)

        # The MjModel MJX steps (per-episode fields come from each reset): `mjx.put_data(env.model, d)`
        # turns a CPU env's MjData into MJX data for it.
        self.model = model = copy.deepcopy(self.cpu.model)
        self.dropped_geoms = tuple(model.geom(g).name for g in unsupported_geoms(model))
        for name in self.dropped_geoms:
            model.geom_contype[model.geom(name).id] = 0
            model.geom_conaffinity[model.geom(name).id] = 0
        # Gear friction at no load; the model holds whatever load the last CPU step left there.
        model.dof_frictionloss[servos.dof_adr] = servos.params.frictionloss
        self.mjx_model = mjx.put_model(model)
        self._frictionloss = jnp.asarray(model.dof_frictionloss)
        self._empty_data = mjx.make_data(self.mjx_model)
        self.ids = SceneIds(self.cpu)
        self._success = success_fn(self.cpu)
        self.qpos_adr = jnp.asarray(servos.qpos_adr)
        self.dof_adr = jnp.asarray(servos.dof_adr)
        self.actuator_ids = jnp.asarray(servos.actuator_ids)
        self.action_low = jnp.asarray(self.cpu.action_space.low)
        self.action_high = jnp.asarray(self.cpu.action_space.high)
        # LeRobot units in JAX's float (float64 with x64, as the CPU env converts).
        self._unit_offset, self._unit_scale = jnp.asarray(UNIT_OFFSET), jnp.asarray(UNIT_SCALE)
        self._compiled_steps: dict[int, Any] = {}

    # ---- reset (host side: the CPU env's reset, per seed) ----------------------------------
    def reset(self, seeds: Sequence[int]) -> tuple[MjxState, dict[str, jax.Array]]:
        """Start one episode per seed, each the CPU env's `reset(seed=s)` episode."""
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("reset needs at least one seed")
        rows = [self._cpu_reset(s) for s in seeds]
        stacked = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
        data = jax.vmap(lambda *a: self._empty_data.replace(**dict(zip(RESET_DATA_FIELDS, a))))(
            *(jnp.asarray(stacked[k]) for k in RESET_DATA_FIELDS))
        q = jnp.asarray(stacked["qpos"][:, np.asarray(self.qpos_adr)])
        state = MjxState(data, {f: jnp.asarray(stacked[f]) for f in PER_ENV_FIELDS}, jservo.ServoState(q, q),
                         jnp.asarray(stacked["extra_state"]), jnp.asarray(stacked["success"]))
        obs = {OBS_STATE: jnp.asarray(stacked[OBS_STATE]), OBS_ENV_STATE: jnp.asarray(stacked[OBS_ENV_STATE])}
        # Committed to devices as `step`'s outputs are, so the first step does not compile twice.
        return jax.device_put((state, obs), batch_sharding(len(seeds), self.devices))

    def _cpu_reset(self, seed: int) -> dict[str, np.ndarray]:
        cpu = self.cpu
        obs, info = cpu.reset(seed=seed)
        params, nominal = cpu.servos.params, cpu.nominal_servo
        if dataclasses.replace(params, kp_per_p=nominal.kp_per_p, damping=nominal.damping) != nominal:
            raise NotImplementedError("MjxEnv batches servo gain and damping per episode (model fields); "
                                      f"this reset also changed other servo parameters: {params}")
        return {
            **{f: getattr(cpu.data, f).copy() for f in RESET_DATA_FIELDS},
            **{f: getattr(cpu.model, f).copy() for f in PER_ENV_FIELDS},
            "extra_state": np.asarray(cpu._extra_state(), dtype=np.float32),
            "success": np.bool_(info["is_success"]),
            OBS_STATE: obs[OBS_STATE], OBS_ENV_STATE: obs[OBS_ENV_STATE],
        }

    # ---- step (JAX, one env; vmapped and jitted) ---------------------------------------------
    def step(self, state: MjxState, actions: jax.Array | np.ndarray):
        """Advance every env one 30 Hz control step under joint targets `actions` (N, 6)."""
        n = state.success.shape[0]
        if tuple(np.shape(actions)) != (n, NUM_JOINTS):
            raise ValueError(f"actions must have shape ({n}, {NUM_JOINTS}) (one row of joint targets per env, "
                             f"deg and gripper 0..100), got {np.shape(actions)}")
        if isinstance(actions, np.ndarray) and not np.all(np.isfinite(actions)):
            raise ValueError(f"actions must be finite joint targets, got {actions!r}")
        if n not in self._compiled_steps:
            step = jax.vmap(self._step_one)
            if self.max_batch is not None and n > self.max_batch:
                step = _in_chunks(step, n, self.max_batch)
            # Outputs placed as the inputs are, so the next step reuses this program.
            self._compiled_steps[n] = jax.jit(step, out_shardings=batch_sharding(n, self.devices))
        return self._compiled_steps[n](state, actions)

    def _step_one(self, state: MjxState, action: jax.Array):
        m = self.mjx_model.replace(**state.fields)
        # Clipped in float32 as the CPU env clips, converted in JAX's float.
        action = jnp.clip(jnp.asarray(action, jnp.float32), self.action_low, self.action_high)
        command = (action.astype(self._unit_scale.dtype) - self._unit_offset) / self._unit_scale
        sched = self.schedule

        def physics_step(carry, arrival):
            d, servo = carry
            # As `Servos.substep` before every physics step: goal, ctrl, then the gear friction
            # from the actuator force of the step before.
            servo = jservo.substep(servo, command, arrival, sched.max_step)
            frictionloss = jservo.loaded_frictionloss(self._frictionloss, self.dof_adr, sched.friction_load,
                                                      d.actuator_force[self.actuator_ids])
            d = d.replace(ctrl=d.ctrl.at[self.actuator_ids].set(servo.goal))
            d = mjx.step(m.replace(dof_frictionloss=frictionloss), d)
            return (d, servo), None

        (data, servo), _ = jax.lax.scan(physics_step, (state.data, state.servo),
                                        jnp.asarray(sched.arrival))
        # By the next control step this command has arrived (latency <= one control period).
        servo = servo._replace(pending=command)
        success = self._success(self.ids, m, data)
        new_state = state._replace(data=data, servo=servo, success=state.success | success)
        return new_state, self._observation(data, state.extra_state), success.astype(jnp.float32), success

    def _observation(self, d: mjx.Data, extra_state: jax.Array) -> dict[str, jax.Array]:
        agent_pos = d.qpos[self.qpos_adr] * self._unit_scale + self._unit_offset
        poses = [self.ids.object_pose(d, n) for n in self.ids.object_names]
        env_state = jnp.concatenate([*poses, extra_state])
        return {OBS_STATE: agent_pos.astype(jnp.float32), OBS_ENV_STATE: env_state.astype(jnp.float32)}
