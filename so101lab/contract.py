"""The sim-to-real contract: joint names, units, keys and spaces shared by every part.

Sim envs, the real env, the dataset writer and the policy processors import these; nothing
else defines them. No MuJoCo import here, so hardware-only installs can use it.

Units are LeRobot's for the SO-101 (``use_degrees=True``): degrees for the five arm joints,
0..100 for the gripper over its calibrated range. Actions are absolute joint targets in the
same units. Control runs at 30 Hz.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)
ARM_JOINTS = JOINT_NAMES[:5]
NUM_JOINTS = len(JOINT_NAMES)
MOTOR_FEATURE_NAMES: list[str] = [f"{name}.pos" for name in JOINT_NAMES]

CONTROL_HZ = 30
CONTROL_DT = 1.0 / CONTROL_HZ

# Joint ranges of the SO-101 (rad), from the new-calibration model; zero is the calibrated mid pose.
JOINT_RANGES_RAD: dict[str, tuple[float, float]] = {
    "shoulder_pan": (-1.91986, 1.91986),
    "shoulder_lift": (-1.74533, 1.74533),
    "elbow_flex": (-1.69, 1.69),
    "wrist_flex": (-1.65806, 1.65806),
    "wrist_roll": (-2.74385, 2.84121),
    "gripper": (-0.17453, 1.74533),
}
GRIPPER_RANGE_RAD = JOINT_RANGES_RAD["gripper"]

# Fraction of full servo torque each follower joint may use (Max_Torque_Limit / 1000): LeRobot
# writes 500 for the gripper so that closing on an object does not overload it.
TORQUE_LIMIT: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 0.5)

# Observation keys (env side) and dataset feature keys (LeRobot side).
OBS_STATE = "agent_pos"
OBS_PIXELS = "pixels"
OBS_ENV_STATE = "environment_state"
FEATURE_STATE = "observation.state"
FEATURE_ACTION = "action"
FEATURE_ENV_STATE = "observation.environment_state"
FEATURE_IMAGE_PREFIX = "observation.images."
DEFAULT_CAMERAS: tuple[str, ...] = ("front", "wrist")
DEFAULT_IMAGE_SIZE: tuple[int, int] = (480, 640)  # (height, width), as the real arm's cameras
ROBOT_TYPE = "so101_follower"


def image_feature(camera: str) -> str:
    """Dataset feature key of a camera, e.g. ``observation.images.front``."""
    return f"{FEATURE_IMAGE_PREFIX}{camera}"


# LeRobot units are an affine map of joint angles: degrees for the arm, and the gripper's range
# stretched to 0..100. units = radians * UNIT_SCALE + UNIT_OFFSET.
_GRIPPER_SPAN = GRIPPER_RANGE_RAD[1] - GRIPPER_RANGE_RAD[0]
UNIT_SCALE: np.ndarray = np.array([180.0 / np.pi] * 5 + [100.0 / _GRIPPER_SPAN])
UNIT_OFFSET: np.ndarray = np.array([0.0] * 5 + [-GRIPPER_RANGE_RAD[0] * 100.0 / _GRIPPER_SPAN])


def radians_to_lerobot(q: np.ndarray) -> np.ndarray:
    """Joint angles (rad, model zero = calibrated mid pose) -> LeRobot units (deg, gripper 0..100)."""
    return np.asarray(q, dtype=np.float64) * UNIT_SCALE + UNIT_OFFSET


def lerobot_to_radians(x: np.ndarray) -> np.ndarray:
    """LeRobot units (deg, gripper 0..100) -> joint angles (rad); inverse of `radians_to_lerobot`."""
    return (np.asarray(x, dtype=np.float64) - UNIT_OFFSET) / UNIT_SCALE


_RANGES = np.array([JOINT_RANGES_RAD[n] for n in JOINT_NAMES])
ACTION_LOW: np.ndarray = radians_to_lerobot(_RANGES[:, 0]).astype(np.float32)
ACTION_HIGH: np.ndarray = radians_to_lerobot(_RANGES[:, 1]).astype(np.float32)


def joint_space() -> gym.spaces.Box:
    """Box of joint positions/targets in LeRobot units, bounded by the joint ranges."""
    return gym.spaces.Box(ACTION_LOW.copy(), ACTION_HIGH.copy(), dtype=np.float32)


@dataclass(frozen=True)
class CameraSpec:
    """A camera as policies and datasets see it: a name and an image size."""

    name: str
    height: int = DEFAULT_IMAGE_SIZE[0]
    width: int = DEFAULT_IMAGE_SIZE[1]

    def space(self) -> gym.spaces.Box:
        return gym.spaces.Box(0, 255, (self.height, self.width, 3), dtype=np.uint8)


def observation_space(cameras: tuple[CameraSpec, ...], env_state_dim: int | None = None) -> gym.spaces.Dict:
    """The observation space every SO-101 env (sim or real) exposes.

    ``agent_pos`` always; ``pixels`` when cameras are given; ``environment_state`` (sim only,
    privileged object state) when ``env_state_dim`` is given.
    """
    spaces: dict[str, gym.Space] = {OBS_STATE: gym.spaces.Box(-np.inf, np.inf, (NUM_JOINTS,), np.float32)}
    if cameras:
        spaces[OBS_PIXELS] = gym.spaces.Dict({c.name: c.space() for c in cameras})
    if env_state_dim is not None:
        spaces[OBS_ENV_STATE] = gym.spaces.Box(-np.inf, np.inf, (env_state_dim,), np.float32)
    return gym.spaces.Dict(spaces)
