"""so101lab: a simulation-first research framework for the SO-101 arm and SmolVLA."""

import os as _os

# Headless machines render offscreen through EGL unless the user chose a backend.
if "MUJOCO_GL" not in _os.environ and not _os.environ.get("DISPLAY"):
    _os.environ["MUJOCO_GL"] = "egl"

from so101lab.envs.registration import register_envs as _register_envs

_register_envs()

__version__ = "0.1.0"
