"""Headless rendering for every test, whichever module imports mujoco first."""

import os

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")
