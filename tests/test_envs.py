"""Every sim env against Gymnasium's checker and the sim-to-real contract."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import so101lab  # noqa: F401  (registers the envs)
from so101lab.contract import ACTION_HIGH, ACTION_LOW, lerobot_to_radians, radians_to_lerobot
from so101lab.envs import DomainRandomization, make_expert
from so101lab.envs.registration import SIM_ENV_IDS

SMALL = (96, 128)  # image size for fast pixel tests; the default is the real cameras' 480x640
OBS_MODES = ("pixels_agent_pos", "state")


def make(env_id: str, obs_mode: str = "state", **kwargs) -> gym.Env:
    return gym.make(env_id, obs_mode=obs_mode, image_size=SMALL, **kwargs)


@pytest.mark.parametrize("obs_mode", OBS_MODES)
@pytest.mark.parametrize("env_id", SIM_ENV_IDS)
def test_check_env_passes(env_id, obs_mode):
    env = make(env_id, obs_mode)
    check_env(env.unwrapped, skip_render_check=True)
    assert type(env.unwrapped.is_success()) is bool  # the virtual arm sends it as JSON
    env.close()


def _rollout(env: gym.Env, seed: int, steps: int = 50) -> list:
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    frames = [obs]
    for _ in range(steps):
        obs, *_ = env.step(env.action_space.sample())
        frames.append(obs)
    return [info["task"], *frames]


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, str):
        assert a == b
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("obs_mode", OBS_MODES)
@pytest.mark.parametrize("env_id", SIM_ENV_IDS)
def test_same_seed_same_episode(env_id, obs_mode):
    env = make(env_id, obs_mode)
    first = _rollout(env, seed=7)
    _rollout(env, seed=8)  # an episode in between must not leak into the next
    second = _rollout(env, seed=7)
    for a, b in zip(first, second, strict=True):
        _assert_same(a, b)
    other = _rollout(env, seed=8, steps=0)
    assert not all(np.array_equal(x, y) for x, y in zip(_flat(first[1]), _flat(other[1])))
    env.close()


def _flat(obs: dict) -> list[np.ndarray]:
    return [v for value in obs.values() for v in (_flat(value) if isinstance(value, dict) else [value])]


def test_observation_contract_pixels():
    env = gym.make("so101lab/PickCube-v0")  # default: pixels + agent_pos, both cameras at 480x640
    obs, info = env.reset(seed=0)
    assert set(obs) == {"agent_pos", "pixels"}
    assert obs["agent_pos"].dtype == np.float32 and obs["agent_pos"].shape == (6,)
    assert set(obs["pixels"]) == {"front", "wrist"}
    for image in obs["pixels"].values():
        assert image.shape == (480, 640, 3) and image.dtype == np.uint8
        assert image.std() > 10  # a real rendered scene, not a blank frame
    assert "cube" in info["task"] and info["task"] == env.unwrapped.task
    assert info["is_success"] is False
    env.close()


def test_camera_list_and_size_are_configurable():
    env = gym.make("so101lab/PickCube-v0", cameras=("wrist",), image_size=(60, 80), render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert list(obs["pixels"]) == ["wrist"] and obs["pixels"]["wrist"].shape == (60, 80, 3)
    assert env.render().shape == (60, 80, 3)
    env.close()


def test_actions_are_absolute_targets_in_lerobot_units():
    env = make("so101lab/PickCube-v0", randomization=DomainRandomization.none())
    obs, _ = env.reset(seed=0)
    target = np.array([20.0, -30.0, 40.0, 30.0, -45.0, 60.0], dtype=np.float32)
    for _ in range(60):
        obs, *_ = env.step(target)
    # The servo sags a little under gravity (as the real one does) but holds the target.
    np.testing.assert_allclose(obs["agent_pos"], target, atol=4.0)
    # Out-of-range targets are clipped to the joint limits, not passed on.
    for _ in range(60):
        obs, *_ = env.step(ACTION_HIGH + 50)
    assert np.all(obs["agent_pos"] <= ACTION_HIGH + 3.0)
    env.close()


def test_unit_conversion_round_trip_and_gripper_range():
    q = np.array([0.1, -0.5, 1.0, -1.2, 2.0, 0.3])
    np.testing.assert_allclose(lerobot_to_radians(radians_to_lerobot(q)), q)
    assert ACTION_LOW[5] == pytest.approx(0.0) and ACTION_HIGH[5] == pytest.approx(100.0)
    assert ACTION_HIGH[0] == pytest.approx(110.0, abs=0.01)  # shoulder_pan +-110 degrees


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="obs_mode"):
        gym.make("so101lab/PickCube-v0", obs_mode="rgb")
    with pytest.raises(ValueError, match="camera"):
        gym.make("so101lab/PickCube-v0", cameras=("side",))
    with pytest.raises(ValueError, match="visual must be one of"):
        gym.make("so101lab/PickCube-v0", visual="fancy")
    with pytest.raises(ValueError, match="arm_color must be one of"):
        gym.make("so101lab/PickCube-v0", arm_color="pink")
    with pytest.raises(FileNotFoundError, match=r"camera file .*nowhere.json does not exist"):
        gym.make("so101lab/PickCube-v0", camera_config="nowhere.json")
    with pytest.raises(ValueError, match="image_size"):
        gym.make("so101lab/PickCube-v0", image_size=(0, 64))
    with pytest.raises(ValueError, match="reward_type"):
        gym.make("so101lab/PickCube-v0", reward_type="shaped")
    env = make("so101lab/PickCube-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="6 finite joint targets"):
        env.step(np.zeros(5))
    with pytest.raises(ValueError, match="6 finite joint targets"):
        env.step(np.full(6, np.nan))
    env.close()


def test_compiled_control_step_gives_the_python_paths_bits():
    """The env's C control step (so101lab.envs.firmware.CompiledControl) against its Python path:
    clipping, units, latency, physics (randomised per episode) and observation, bit for bit."""
    envs = [make("so101lab/PickCube-v0") for _ in range(2)]
    if not envs[0].unwrapped.servos.compiled:
        pytest.skip("the C firmware was not built (no compiler at install time)")
    envs[1].unwrapped.servos.compiled = False
    for seed in (0, 1):
        runs = []
        for env in envs:
            env.reset(seed=seed)
            sim, steps = env.unwrapped, []
            for t in range(40):
                action = np.random.default_rng(t).uniform(ACTION_LOW - 30, ACTION_HIGH + 30).astype(np.float32)
                if t == 20:  # refused before anything moves, on either path
                    before = sim.data.qpos.copy()
                    with pytest.raises(ValueError, match="6 finite joint targets"):
                        env.step(np.array([0, 0, np.inf, 0, 0, 0], dtype=np.float32))
                    np.testing.assert_array_equal(sim.data.qpos, before)
                obs, reward, *_ = env.step(action)
                steps.append(np.concatenate([obs["agent_pos"], obs["environment_state"], sim.data.qpos, [reward]]))
            runs.append(np.array(steps))
        np.testing.assert_array_equal(runs[0], runs[1])
        assert np.ptp(runs[0][:, :6], axis=0).min() > 5.0  # every joint moved
    for env in envs:
        env.close()


@pytest.mark.parametrize("env_id", SIM_ENV_IDS)
def test_scripted_expert_succeeds_on_seeded_sample(env_id):
    """A small sample of the >= 95 % bar that `so101lab check-experts --episodes 100` measures."""
    env = make(env_id)
    expert = make_expert(env)
    successes = 0
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            done = terminated or truncated
        successes += info["is_success"]
        assert reward == float(info["is_success"])  # sparse by default
    assert successes >= 3
    env.close()


def test_dense_reward_rises_as_the_expert_works():
    env = make("so101lab/PickCube-v0", reward_type="dense")
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    rewards = []
    for _ in range(150):
        obs, reward, terminated, _, info = env.step(expert.act(obs))
        rewards.append(reward)
        if terminated:
            break
    assert min(rewards) >= 0.0 and max(rewards) <= 1.0
    assert info["is_success"]
    assert rewards[-1] > 0.9 and rewards[0] < 0.5
    assert {"reward_reach", "reward_grasp", "reward_lift"} <= set(info)


def test_randomization_is_seeded_and_restored():
    env = make("so101lab/PickCube-v0")
    model = env.unwrapped.model
    env.reset(seed=1)
    light_1, friction_1 = model.light_diffuse.copy(), model.geom_friction.copy()
    env.reset(seed=2)
    assert not np.allclose(model.light_diffuse, light_1)
    env.reset(seed=1)
    np.testing.assert_array_equal(model.light_diffuse, light_1)
    np.testing.assert_array_equal(model.geom_friction, friction_1)
    plain = make("so101lab/PickCube-v0", randomization=DomainRandomization.none())
    plain.reset(seed=1)
    nominal = plain.unwrapped.model.light_diffuse.copy()
    plain.reset(seed=2)
    np.testing.assert_array_equal(plain.unwrapped.model.light_diffuse, nominal)


@pytest.mark.parametrize("vectorization_mode", ["sync", "async"])
def test_vector_envs(vectorization_mode):
    # Async workers are spawned, not forked: a forked child inherits the parent's EGL state.
    vector_kwargs = {"context": "spawn"} if vectorization_mode == "async" else {}
    envs = gym.make_vec("so101lab/PickPlace-v0", num_envs=2, vectorization_mode=vectorization_mode,
                        vector_kwargs=vector_kwargs, obs_mode="pixels_agent_pos", image_size=SMALL)
    obs, info = envs.reset(seed=3)
    assert obs["agent_pos"].shape == (2, 6)
    assert obs["pixels"]["front"].shape == (2, *SMALL, 3)
    assert len(info["task"]) == 2 and all("bin" in t for t in info["task"])
    for _ in range(3):
        obs, reward, *_ = envs.step(envs.action_space.sample())
    assert reward.shape == (2,)
    envs.close()
