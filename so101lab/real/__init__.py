"""The real SO-101: Feetech bus, calibration, cameras, Real-v0, and a virtual arm to test them.

Only the registration lives here so `import so101lab` stays light; import submodules directly.
"""

from __future__ import annotations

REAL_ENV_ID = "so101lab/Real-v0"


def register_real_env() -> None:
    """Register ``so101lab/Real-v0`` with Gymnasium (no episode limit: the operator ends episodes)."""
    import gymnasium as gym

    if REAL_ENV_ID not in gym.registry:
        gym.register(REAL_ENV_ID, entry_point="so101lab.real.env:SO101RealEnv", disable_env_checker=True)
