"""One table of env ids: registered with Gymnasium on `import so101lab`."""

from __future__ import annotations

import gymnasium as gym

from so101lab.contract import CONTROL_HZ

# env id -> ("module:class", episode length in seconds); each task is one module under
# so101lab.envs.tasks. Lengths leave a scripted expert about twice the time it needs.
ENV_IDS: dict[str, tuple[str, int]] = {
    "so101lab/PickCube-v0": ("so101lab.envs.tasks.pick_cube:PickCubeEnv", 10),
    "so101lab/PickPlace-v0": ("so101lab.envs.tasks.pick_place:PickPlaceEnv", 12),
    "so101lab/StackCubes-v0": ("so101lab.envs.tasks.stack_cubes:StackCubesEnv", 12),
    "so101lab/SortCubes-v0": ("so101lab.envs.tasks.sort_cubes:SortCubesEnv", 20),
}
SIM_ENV_IDS = tuple(ENV_IDS)


def register_envs() -> None:
    """The sim tasks, each also in the robustness benchmark's held-out conditions
    (`so101lab/PickCube-texture-v0`, ...: so101lab/envs/robustness.py), and `so101lab/Real-v0`
    (same spaces and units: one changed env id)."""
    from so101lab.envs.robustness import register_conditions
    from so101lab.real import register_real_env

    register_real_env()
    for env_id, (entry_point, seconds) in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=seconds * CONTROL_HZ,
                         disable_env_checker=True)
        register_conditions(env_id)
