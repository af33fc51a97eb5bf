"""One table of env ids: registered with Gymnasium on `import so101lab`."""

from __future__ import annotations

import gymnasium as gym

from so101lab.contract import CONTROL_HZ

# env id -> "module:class"; each task is one module under so101lab.envs.tasks.
ENV_IDS: dict[str, str] = {
    "so101lab/PickCube-v0": "so101lab.envs.tasks.pick_cube:PickCubeEnv",
    "so101lab/PickPlace-v0": "so101lab.envs.tasks.pick_place:PickPlaceEnv",
    "so101lab/StackCubes-v0": "so101lab.envs.tasks.stack_cubes:StackCubesEnv",
    "so101lab/SortCubes-v0": "so101lab.envs.tasks.sort_cubes:SortCubesEnv",
}
SIM_ENV_IDS = tuple(ENV_IDS)
REAL_ENV_ID = "so101lab/Real-v0"
EPISODE_SECONDS = 10  # default episode length; tasks may override with max_episode_steps


def register_envs() -> None:
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, max_episode_steps=EPISODE_SECONDS * CONTROL_HZ,
                         disable_env_checker=True)
