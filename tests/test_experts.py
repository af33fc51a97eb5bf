"""The scripted expert follows the episode the env was reset to, however the caller resets."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import so101lab  # noqa: F401  (registers the envs)
from so101lab.envs import make_expert


def _first_actions(env, expert, n: int = 5) -> np.ndarray:
    obs, actions = None, []
    for _ in range(n):
        action = expert.act(obs)
        actions.append(action)
        obs, *_ = env.step(action)
    return np.array(actions)


@pytest.fixture
def env():
    env = gym.make("so101lab/PickCube-v0", obs_mode="state")
    yield env
    env.close()


@pytest.mark.parametrize("explicit", [True, False], ids=["reset-called", "reset-not-called"])
def test_two_env_resets_without_a_step_give_the_new_episodes_plan(env, explicit):
    env.reset(seed=1)
    fresh = make_expert(env)
    expected = _first_actions(env, fresh)

    expert = make_expert(env)
    env.reset(seed=0)
    if explicit:
        expert.reset()
    expert.act()  # planned for seed 0, no step taken
    env.reset(seed=1)
    if explicit:
        expert.reset()
    np.testing.assert_array_equal(_first_actions(env, expert), expected)


def test_acting_twice_at_one_instant_keeps_the_plan(env):
    env.reset(seed=2)
    expert = make_expert(env)
    expert.reset()
    first = expert.act()
    plan = expert.plan
    expert.act()
    assert expert.plan is plan and np.isfinite(first).all()
