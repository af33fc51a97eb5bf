"""An MJX (JAX) backend of the so101lab tasks for batched state-mode rollouts; needs the `mjx` extra."""

from so101lab.envs.mjx.env import PER_ENV_FIELDS, MjxEnv, MjxState, split_host_into_devices

__all__ = ["PER_ENV_FIELDS", "MjxEnv", "MjxState", "split_host_into_devices"]
