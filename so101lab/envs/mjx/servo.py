"""The control-side layer of `so101lab.envs.servo.Servos` in JAX, for batched 30 Hz rollouts.

The MuJoCo half of the servo model (position actuator with a force range, joint damping,
armature, friction loss) is in the MjModel that MJX steps. This module carries the firmware
half with the same equations as `Servos.substep`, which runs before every physics step: a command
takes effect `latency` s after it is sent, the goal of a physics step is the time average of the
commands over that step, the goal slews at most `max_velocity`, and the gear friction follows the
actuator force of the previous step.

The envs send one command at the start of every control step, so when it falls due is the same
offset into every control step: `ServoSchedule` computes, once and in float64, how much of each
physics step it covers. Counting time from the control step's start also keeps float32 rollouts
from drifting, as an accumulated float32 clock would over a long episode. Latencies up to one
control period are supported (at most one command in flight); torque off is not ported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from so101lab.envs.servo import ServoParams

# Same slack as `Servos` when comparing a command's due time with the physics clock.
_TIME_EPS = 1e-12


class ServoState(NamedTuple):
    """Firmware state of one env between control steps (rad, per joint)."""

    goal: jax.Array  # what the firmware regulates to
    pending: jax.Array  # the latest command that has arrived


@dataclass(frozen=True)
class ServoSchedule:
    """What one control step of `n_substeps` physics steps does with the command sent at its start.

    `arrival[i]` is the fraction of physics step i after the command falls due (0 before, 1 after,
    in between for the step it falls due in); the rest are the `ServoParams` the layer needs.
    """

    arrival: np.ndarray  # (n_substeps,)
    max_step: float  # rad the goal may move per physics step
    friction_load: float  # extra friction per N m transmitted

    @classmethod
    def from_params(cls, params: ServoParams, n_substeps: int, physics_dt: float) -> ServoSchedule:
        period = n_substeps * physics_dt  # one control period as the physics clock counts it
        if not 0 <= params.latency <= period + _TIME_EPS:
            raise ValueError(f"the MJX servo layer supports latencies in [0, {period:.6f}] s (at most one "
                             f"command in flight), got latency={params.latency}")
        start = np.arange(n_substeps) * physics_dt
        end = start + physics_dt
        due = params.latency
        arrival = np.where(due <= start + _TIME_EPS, 1.0,
                           np.where(due < end - _TIME_EPS, (end - due) / physics_dt, 0.0))
        return cls(arrival, params.max_velocity * physics_dt, params.friction_load)


def substep(state: ServoState, command: jax.Array, arrival: jax.Array, max_step: float) -> ServoState:
    """One physics step of the firmware under `command` (sent at the control step's start)."""
    arrived = arrival >= 1.0
    split = (arrival > 0.0) & ~arrived
    pending = jnp.where(arrived, command, state.pending)
    # A command falling due mid-step acts for the part of the step after it.
    target = jnp.where(split, state.pending * (1.0 - arrival) + command * arrival, pending)
    goal = state.goal + jnp.clip(target - state.goal, -max_step, max_step)
    return ServoState(goal, jnp.where(split, command, pending))


def loaded_frictionloss(base: jax.Array, dof_adr: jax.Array, friction_load: float,
                        actuator_force: jax.Array) -> jax.Array:
    """Friction loss of every dof, the servo joints' raised by the load their gears carry."""
    return base.at[dof_adr].add(friction_load * jnp.abs(actuator_force))
