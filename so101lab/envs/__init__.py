"""Gymnasium environments of the SO-101 in MuJoCo: tasks, scripted experts, randomisation."""

from __future__ import annotations

import gymnasium as gym

from so101lab.envs.base import SO101Env
from so101lab.envs.experts import ScriptedExpert
from so101lab.envs.randomization import DomainRandomization
from so101lab.envs.registration import ENV_IDS, SIM_ENV_IDS
from so101lab.envs.servo import ServoParams


def make_expert(env: gym.Env) -> ScriptedExpert:
    """The scripted expert of an env's task; `expert.act(obs)` gives the next joint targets."""
    sim = env.unwrapped
    if not isinstance(sim, SO101Env):
        raise TypeError(f"scripted experts need a simulated so101lab env, got {type(sim).__name__}")
    return ScriptedExpert(sim)


__all__ = ["ENV_IDS", "SIM_ENV_IDS", "DomainRandomization", "SO101Env", "ScriptedExpert", "ServoParams",
           "make_expert"]
