"""so101lab's tasks as a LeRobot env: `lerobot-eval --env.type=so101lab --env.task=PickCube-v0`.

Imported by LeRobot >= 0.6 at start-up (its plugin discovery imports installed distributions named
`lerobot_env_*`), or named with `--env.discover_packages_path=lerobot_env_so101lab`. Importing it
registers the `so101lab` env type; so101lab (MuJoCo) is imported only when an env is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig

# so101lab's contract (so101lab/contract.py) in LeRobot's terms; not imported from there so that
# registering the env type does not start MuJoCo.
STATE_DIM = 6
TASKS = ("PickCube-v0", "PickPlace-v0", "StackCubes-v0", "SortCubes-v0")


@EnvConfig.register_subclass("so101lab")
@dataclass
class SO101LabEnv(EnvConfig):
    """An so101lab sim task: joint state, the cameras' pixels, the instruction as the task string,
    success from ``info["is_success"]``. Actions: absolute joint targets (degrees, gripper 0..100)."""

    task: str | None = "PickCube-v0"
    fps: int = 30
    episode_length: int | None = None  # control steps; None: the task's own (10 to 20 s)
    cameras: str = "front,wrist"  # comma-separated camera names of the scene
    observation_height: int = 480
    observation_width: int = 640
    visual: str | None = None  # "mesh" or "primitive"; None: so101lab's default
    shadows: bool = True  # False renders ~3x faster on a CPU renderer
    render_mode: str = "rgb_array"  # videos: the cameras side by side
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"--env.task must be one of {TASKS}, got {self.task!r}")
        if not self.camera_names:
            raise ValueError("--env.cameras names no camera")
        self.features = {
            "action": PolicyFeature(type=FeatureType.ACTION, shape=(STATE_DIM,)),
            "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,)),
        }
        self.features_map = {"action": "action", "agent_pos": "observation.state"}
        for cam in self.camera_names:
            shape = (self.observation_height, self.observation_width, 3)
            self.features[f"pixels/{cam}"] = PolicyFeature(type=FeatureType.VISUAL, shape=shape)
            self.features_map[f"pixels/{cam}"] = f"observation.images.{cam}"

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.cameras.split(",") if c.strip())

    @property
    def package_name(self) -> str:
        return "so101lab"  # importing it registers the gym ids so101lab/<task>

    @property
    def gym_kwargs(self) -> dict:
        return {
            "cameras": self.camera_names,
            "image_size": (self.observation_height, self.observation_width),
            "render_mode": self.render_mode,
            "visual": self.visual,
            "shadows": self.shadows,
            "max_episode_steps": self.episode_length,
        }
