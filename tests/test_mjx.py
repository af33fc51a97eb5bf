"""The MJX backend against the CPU envs it copies: servo layer, model fields, success tests, trajectories.

Skipped without the `mjx` extra. The default suite runs the parts that need no compiled physics
step (a jitted `mjx.step` takes about a minute to compile on a CPU); the trajectory comparisons
are `slow`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import pytest

jax = pytest.importorskip("jax")
mjx = pytest.importorskip("mujoco.mjx")

import jax.numpy as jnp  # noqa: E402

import so101lab  # noqa: E402, F401  (registers the envs)
from so101lab.contract import CONTROL_DT, OBS_ENV_STATE, OBS_STATE, lerobot_to_radians  # noqa: E402
from so101lab.envs import ServoParams, make_expert  # noqa: E402
from so101lab.envs.base import HOME_POSE  # noqa: E402
from so101lab.envs.mjx import PER_ENV_FIELDS, MjxEnv, split_host_into_devices  # noqa: E402
from so101lab.envs.mjx import servo as jservo  # noqa: E402
from so101lab.envs.registration import SIM_ENV_IDS  # noqa: E402

# Model fields a reset changes that no physics reads (lights, cameras, colours), and the servo
# friction `MjxEnv` recomputes every physics step.
RENDER_FIELDS = {"cam_pos", "cam_quat", "geom_rgba", "light_diffuse", "light_dir", "mat_rgba"}
STEPPED_FIELDS = {"dof_frictionloss"}


@pytest.fixture(autouse=True, scope="module")
def x64():
    """64-bit JAX, which MjxEnv needs (see its module docstring), for this module only."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def cpu_env(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, obs_mode="state", terminate_on_success=False, **kwargs)


# ---- servo layer (jax only) ------------------------------------------------------------------
def servo_commands() -> np.ndarray:
    """LeRobot-unit commands: small moves, a jump the slew limit stretches over several control
    steps, holds (the goal arriving exactly), and the way back."""
    small = HOME_POSE + np.linspace(0, 4, 6)[:, None] * np.array([1, -1, 1, 0.5, -2, 3])
    jump = np.repeat([HOME_POSE + np.array([40, 25, -30, 0, 60, 40])], 5, axis=0)
    return np.concatenate([small, jump, np.repeat([HOME_POSE], 4, axis=0)]).astype(np.float32)


@pytest.mark.parametrize("latency_steps", [None, 0, 4, 16])
def test_servo_layer_follows_the_cpu_firmware_step_by_step(latency_steps):
    """Goal (ctrl) and gear friction of every physics step, given the same actuator forces.

    Latencies: the default (a command falls due inside a physics step), none, and whole numbers
    of physics steps up to a control period (due exactly at a step's start).
    """
    dt = cpu_env("so101lab/PickCube-v0").unwrapped.model.opt.timestep
    latency = ServoParams().latency if latency_steps is None else latency_steps * dt
    env = cpu_env("so101lab/PickCube-v0", servo_params=ServoParams(latency=latency))
    sim = env.unwrapped
    env.reset(seed=0)
    servos, data, model = sim.servos, sim.data, sim.model
    schedule = jservo.ServoSchedule.from_params(servos.params, sim.n_substeps, model.opt.timestep)
    base = jnp.asarray(np.where(np.isin(np.arange(model.nv), servos.dof_adr), servos.params.frictionloss,
                                model.dof_frictionloss))

    @jax.jit
    def control_step(state, command, forces):
        def physics_step(servo, force):
            servo = jservo.substep(servo, command, force[0], schedule.max_step)
            friction = jservo.loaded_frictionloss(base, jnp.asarray(servos.dof_adr), schedule.friction_load,
                                                  force[1:])
            return servo, (servo.goal, friction[jnp.asarray(servos.dof_adr)])

        arrival = jnp.asarray(schedule.arrival)[:, None]
        state, out = jax.lax.scan(physics_step, state, jnp.concatenate([arrival, forces], axis=1))
        return state._replace(pending=command), out

    q = jnp.asarray(data.qpos[servos.qpos_adr])
    state = jservo.ServoState(q, q)
    for action in servo_commands():
        target = lerobot_to_radians(action)
        servos.command(data, target)
        forces, goals, friction = [], [], []
        for _ in range(sim.n_substeps):  # one physics step at a time, to see each one
            forces.append(data.actuator_force[servos.actuator_ids].copy())
            servos.step(data, 1)
            goals.append(data.ctrl[servos.actuator_ids].copy())
            friction.append(model.dof_frictionloss[servos.dof_adr].copy())
        state, (jgoals, jfriction) = control_step(state, jnp.asarray(target), jnp.asarray(np.array(forces)))
        np.testing.assert_allclose(np.asarray(jgoals), np.array(goals), rtol=0, atol=1e-12)  # rad
        np.testing.assert_allclose(np.asarray(jfriction), np.array(friction), rtol=0, atol=1e-12)  # N m


def test_schedule_rejects_more_than_one_command_in_flight():
    with pytest.raises(ValueError, match="latencies"):
        jservo.ServoSchedule.from_params(ServoParams(latency=0.05), 16, CONTROL_DT / 16)


# ---- model and episode set-up (no physics step compiled) ---------------------------------------
@pytest.mark.parametrize("env_id", SIM_ENV_IDS)
def test_resets_change_only_the_batched_model_fields(env_id):
    """What `MjxEnv` copies per episode is everything a reset changes that MJX's physics reads."""
    sim = cpu_env(env_id).unwrapped
    names = [f.name for f in dataclasses.fields(mjx.Model) if hasattr(sim.model, f.name)]
    before = {n: np.array(getattr(sim.model, n)) for n in names}
    changed = set()
    for seed in (0, 1, 2):
        sim.reset(seed=seed)
        changed |= {n for n in names if not np.array_equal(before[n], getattr(sim.model, n))}
    assert changed - RENDER_FIELDS - STEPPED_FIELDS <= set(PER_ENV_FIELDS)


@pytest.fixture(scope="module")
def pick_cube() -> MjxEnv:
    return MjxEnv("so101lab/PickCube-v0")


def test_mjx_env_refuses_what_it_does_not_model(pick_cube):
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(RuntimeError, match="64-bit"):
            MjxEnv("so101lab/PickCube-v0")
    finally:
        jax.config.update("jax_enable_x64", True)
    with pytest.raises(ValueError, match="state mode"):
        MjxEnv("so101lab/PickCube-v0", obs_mode="pixels_agent_pos")
    with pytest.raises(ValueError, match="sparse"):
        MjxEnv("so101lab/PickCube-v0", reward_type="dense")
    state, _ = pick_cube.reset([0, 1])
    with pytest.raises(ValueError, match="shape"):
        pick_cube.step(state, np.zeros((3, 6), np.float32))
    with pytest.raises(ValueError, match="finite"):
        pick_cube.step(state, np.full((2, 6), np.nan, np.float32))


def test_reset_is_the_cpu_envs_reset(pick_cube):
    state, obs = pick_cube.reset([3, 5])
    assert pick_cube.dropped_geoms == ("base_column",)
    for i, seed in enumerate((3, 5)):
        cpu_obs, _ = cpu_env("so101lab/PickCube-v0").reset(seed=seed)
        np.testing.assert_allclose(np.asarray(obs[OBS_STATE][i]), cpu_obs[OBS_STATE], atol=1e-4)
        np.testing.assert_allclose(np.asarray(obs[OBS_ENV_STATE][i]), cpu_obs[OBS_ENV_STATE], atol=1e-6)
    assert obs[OBS_STATE].shape == (2, 6) and state.success.shape == (2,)


def test_batches_are_split_over_the_devices(pick_cube):
    """Two CPU devices (tests/conftest.py): an even batch spans both, an odd one stays on one."""
    assert len(pick_cube.devices) == 2
    for seeds, n_devices in (([0, 1], 2), ([0, 1, 2], 1)):
        state, obs = pick_cube.reset(seeds)
        for leaf in jax.tree_util.tree_leaves((state, obs)):
            assert len(leaf.sharding.device_set) == n_devices
            assert leaf.shape[0] == len(seeds)


def test_large_batches_run_in_chunks_with_the_same_results():
    """A batch above `max_batch` loops over equal chunks, the last padded when they do not divide it
    (13 envs in chunks of at most 5: 3 chunks of 5, 2 padding rows dropped); leaves of size zero (as
    MJX data has) reshape too."""
    from so101lab.envs.mjx.env import _in_chunks

    def batched(tree, scale):
        return {"y": tree["x"] * scale[:, None] + jnp.cumsum(tree["x"], axis=1), "empty": tree["empty"] + 1}

    for n, max_chunk in ((12, 4), (13, 5), (3, 8)):
        tree = {"x": jnp.arange(2.0 * n).reshape(n, 2), "empty": jnp.zeros((n, 0, 3))}
        scale = jnp.linspace(0.5, 2.0, n)
        expected, chunked = batched(tree, scale), jax.jit(_in_chunks(batched, n, max_chunk))(tree, scale)
        assert chunked["empty"].shape == (n, 0, 3) and chunked["y"].shape == (n, 2)
        # The same rows in the same order; XLA may fuse the loop body differently (last-bit rounding).
        np.testing.assert_allclose(np.asarray(chunked["y"]), np.asarray(expected["y"]), rtol=1e-12, atol=0)


def test_the_host_splits_into_devices_only_before_jax_starts(monkeypatch):
    code = ("from so101lab.envs.mjx import split_host_into_devices; split_host_into_devices(3); "
            "import jax; print(len(jax.devices()))")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "3"
    assert len(jax.devices()) == 2  # this process's JAX has started (tests/conftest.py)
    monkeypatch.setenv("XLA_FLAGS", "")
    with pytest.raises(RuntimeError, match="before JAX first uses a device"):
        split_host_into_devices(4)


class ExpertEpisode(NamedTuple):
    menv: MjxEnv
    model: mjx.Model  # the MJX model with this episode's per-env fields
    states: list  # MJX data of every CPU state after a step, until the expert succeeded
    cpu_success: list[bool]


@pytest.fixture(scope="module", params=SIM_ENV_IDS)
def expert_episode(request) -> ExpertEpisode:
    """One CPU expert episode of a task (seed 0), each state turned into MJX data."""
    menv = MjxEnv(request.param)
    env = cpu_env(request.param)
    sim = env.unwrapped
    obs, info = env.reset(seed=0)
    expert = make_expert(env)
    model = menv.mjx_model.replace(**{f: jnp.asarray(getattr(sim.model, f)) for f in PER_ENV_FIELDS})
    states, cpu_success = [], []
    while not info["is_success"] and len(states) < env.spec.max_episode_steps:
        obs, _, _, _, info = env.step(expert.act(obs))
        states.append(mjx.put_data(menv.model, sim.data))
        cpu_success.append(info["is_success"])
    assert info["is_success"], "the expert should succeed in this episode"
    return ExpertEpisode(menv, model, states, cpu_success)


def test_success_tests_agree_with_the_cpu_envs_on_expert_episodes(expert_episode):
    """The JAX success test on every state of an expert episode, contacts as the CPU found them."""
    menv, model = expert_episode.menv, expert_episode.model
    success = jax.jit(lambda d: menv._success(menv.ids, model, d))
    assert [bool(success(d)) for d in expert_episode.states] == expert_episode.cpu_success


def test_expert_episodes_stay_under_the_contact_cap(expert_episode):
    """MJX keeps only the `max_contact_points` deepest contacts per contact dimension (scene.xml).
    That drops nothing while fewer than the cap touch at once: MJX's own collision of every state
    of an expert episode finds fewer touching contacts than the cap in each dimension."""
    cap = int(expert_episode.menv.model.numeric("max_contact_points").data[0])
    batch = jax.tree.map(lambda *x: jnp.stack(x), *expert_episode.states)
    contact = jax.jit(jax.vmap(lambda d: mjx.collision(expert_episode.model, d)))(batch)._impl.contact
    touching = np.asarray(contact.dist < contact.includemargin)
    dims = np.asarray(contact.dim)  # static: one contact layout for every state
    worst = {int(k): int(touching[:, dims == k].sum(axis=1).max()) for k in np.unique(dims)}
    assert max(worst.values()) > 0, "the expert grasps, so something touches"
    assert all(n < cap for n in worst.values()), f"touching contacts per dimension {worst}, cap {cap}"


# ---- trajectories (slow: a jitted MJX step compiles for one to two minutes) ---------------------
# Per task: seeds and control steps, enough for each seed's expert episode to succeed on the CPU.
TRAJECTORIES = {
    "so101lab/PickCube-v0": ((0, 1), 110),
    "so101lab/PickPlace-v0": ((0, 1), 180),
    "so101lab/StackCubes-v0": ((3, 1), 200),
    "so101lab/SortCubes-v0": ((0, 1), 360),
}
# Measured maxima with margin (2026-12-03, all four tasks: free motion up to 0.0135 deg, objects
# untouched to 1e-9 m; through contacts up to 0.50 deg (SortCubes seed 1, MJX with and without the
# contact cap alike) and 5.9 mm). Before the robot first touches anything the backends agree
# closely; through contacts they differ (MJX collides boxes with up to 4 contact points where
# MuJoCo uses up to 8) and the error stays small but not tight.
FREE_JOINT_DEG, FREE_OBJECT_M = 0.02, 1e-6
CONTACT_JOINT_DEG, CONTACT_OBJECT_M = 1.0, 0.01


def cpu_rollout(env_id: str, seed: int, steps: int) -> dict[str, np.ndarray]:
    """The expert's episode on the CPU env: actions, observations, success, and whether the robot
    had touched anything (a contact of a geom on a moving body other than an object) yet."""
    env = cpu_env(env_id)
    sim = env.unwrapped
    obs, _ = env.reset(seed=seed)
    expert = make_expert(env)
    model = sim.model
    robot = (model.body_weldid[model.geom_bodyid] != 0) & ~np.isin(model.geom_bodyid, sim.object_bodies)
    out: dict[str, list] = {"action": [], OBS_STATE: [], OBS_ENV_STATE: [], "success": [], "touched": []}
    touched = False
    for _ in range(steps):
        action = expert.act(obs)
        obs, _, _, _, info = env.step(action)
        contacts = sim.data.contact
        touched |= bool(robot[contacts.geom1].any() or robot[contacts.geom2].any())
        for key, value in (("action", action), (OBS_STATE, obs[OBS_STATE]), (OBS_ENV_STATE, obs[OBS_ENV_STATE]),
                           ("success", info["is_success"]), ("touched", touched)):
            out[key].append(value)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.slow
@pytest.mark.parametrize("env_id", list(TRAJECTORIES))
def test_trajectories_follow_the_cpu_env(env_id):
    """The CPU expert's actions replayed in MJX: joints, object positions and success per step."""
    seeds, steps = TRAJECTORIES[env_id]
    cpu = [cpu_rollout(env_id, s, steps) for s in seeds]
    env = MjxEnv(env_id)
    state, _ = env.reset(seeds)
    joints, objects, success = [], [], []
    for t in range(steps):
        state, obs, _, succ = env.step(state, np.stack([c["action"][t] for c in cpu]))
        joints.append(np.asarray(obs[OBS_STATE]))
        objects.append(np.asarray(obs[OBS_ENV_STATE]))
        success.append(np.asarray(succ))
    n_objects = len(env.cpu.object_names)
    positions = np.concatenate([np.arange(7 * i, 7 * i + 3) for i in range(n_objects)])
    report = []
    for i, (seed, c) in enumerate(zip(seeds, cpu)):
        joint_err = np.abs(np.array(joints)[:, i] - c[OBS_STATE]).max(axis=1)
        object_err = np.abs(np.array(objects)[:, i, positions] - c[OBS_ENV_STATE][:, positions]).max(axis=1)
        free = ~c["touched"]
        first = {name: int(np.argmax(s)) if s.any() else None
                 for name, s in (("cpu", c["success"]), ("mjx", np.array(success)[:, i]))}
        report.append(f"{env_id} seed {seed}: free steps {free.sum()}, joints {joint_err[free].max():.2e} / "
                      f"{joint_err.max():.3f} deg, objects {object_err[free].max():.2e} / "
                      f"{1000 * object_err.max():.2f} mm, first success {first}")
        assert joint_err[free].max() < FREE_JOINT_DEG and object_err[free].max() < FREE_OBJECT_M, report[-1]
        assert joint_err.max() < CONTACT_JOINT_DEG and object_err.max() < CONTACT_OBJECT_M, report[-1]
        assert first["cpu"] is not None and first["mjx"] == first["cpu"], report[-1]
    print("\n".join(report))
