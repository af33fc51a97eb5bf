"""Real-v0 on the virtual arm (MuJoCo world, real pty, virtual cameras): contract and safety."""

import gymnasium as gym
import numpy as np
import pytest

import so101lab  # noqa: F401
from so101lab.contract import OBS_PIXELS, OBS_STATE
from so101lab.real import REAL_ENV_ID, register_real_env
from so101lab.real.errors import BusError, CameraError
from so101lab.real.virtual_world import VirtualWorld

SIZE = (96, 128)


@pytest.fixture(scope="module")
def world():
    with VirtualWorld("PickCube", seed=0) as world:
        yield world


def make(world, cameras=("front", "wrist"), **kwargs):
    register_real_env()
    cams = cameras if isinstance(cameras, dict) else {c: world.camera(c, *SIZE) for c in cameras}
    return gym.make(REAL_ENV_ID, port=world.port, calibration=world.calibration(), cameras=cams,
                    image_size=SIZE, episode_hooks=world, **kwargs)


class Camera:
    """A camera source that fails on its n-th read (as a stalled camera or a Ctrl-C would)."""

    def __init__(self, inner, fail_at: int, exc: BaseException):
        self.inner, self.fail_at, self.exc, self.reads = inner, fail_at, exc, 0

    def read(self):
        self.reads += 1
        if self.reads >= self.fail_at:
            raise self.exc
        return self.inner.read()

    def close(self):
        self.inner.close()


def test_same_spaces_keys_and_units_as_sim(world):
    sim = gym.make("so101lab/PickCube-v0", cameras=("front", "wrist"), image_size=SIZE)
    env = make(world)
    try:
        assert env.observation_space == sim.observation_space
        assert env.action_space == sim.action_space
        # The follower configuration written over serial (P 16, gripper at half torque) reaches
        # the servo model of the virtual arm, matching the sim's own servos.
        np.testing.assert_array_equal(world.sim.servos.p_gains, sim.unwrapped.servos.p_gains)
        np.testing.assert_allclose(world.sim.servos.torque_limit, sim.unwrapped.servos.torque_limit)
        obs, info = env.reset(seed=3)
        assert set(obs) == {OBS_STATE, OBS_PIXELS} and set(obs[OBS_PIXELS]) == {"front", "wrist"}
        assert env.observation_space.contains(obs)
        assert info["task"] == world.sim.task and info["is_success"] is False
        # The serial state in LeRobot units equals the sim's joint positions (to a tick, plus what
        # the settling arm moves between the serial read and this look at the sim).
        np.testing.assert_allclose(obs[OBS_STATE], world.sim.joint_positions, atol=1.0)
        target = obs[OBS_STATE] + np.array([8, 5, -5, 5, 10, 10], dtype=np.float32)
        for _ in range(20):
            obs, _, _, truncated, info = env.step(target)
        np.testing.assert_allclose(obs[OBS_STATE], target, atol=2.5)
        assert env.observation_space.contains(obs) and not truncated
        assert info["sent_action"].shape == (6,)
    finally:
        env.close()
        sim.close()
    assert not world.arm.torque_enabled().any()


def test_targets_are_capped_per_step_and_clipped_to_calibrated_limits(world):
    env = make(world, cameras=(), max_relative_target=4.0)
    try:
        obs, _ = env.reset(seed=1)
        _, _, _, _, info = env.step(obs[OBS_STATE] + 30)
        np.testing.assert_allclose(info["sent_action"][:5] - obs[OBS_STATE][:5], 4.0, atol=0.15)
        env.unwrapped.arm.max_relative_target = None
        _, _, _, _, info = env.step(np.full(6, 1e4, dtype=np.float32))
        high = env.action_space.high
        assert np.all(info["sent_action"] <= high + 0.1)
    finally:
        env.close()


@pytest.mark.parametrize("failure", ["bad_action", "camera_stall", "ctrl_c", "overload", "motor_lost"])
def test_torque_is_off_after_every_failure_path(world, failure):
    front = world.camera("front", *SIZE)
    exc = KeyboardInterrupt() if failure == "ctrl_c" else CameraError("camera front stalled")
    cams = {"front": Camera(front, 4, exc)} if failure in ("camera_stall", "ctrl_c") else {}
    env = make(world, cameras=cams)
    expected = {"bad_action": ValueError, "camera_stall": CameraError, "ctrl_c": KeyboardInterrupt,
                "overload": BusError, "motor_lost": BusError}[failure]
    try:
        obs, _ = env.reset(seed=2)
        assert world.arm.torque_enabled().all()
        with pytest.raises(expected):
            for _ in range(6):
                if failure == "bad_action":
                    env.step(np.array([0, 0, np.nan, 0, 0, 0]))
                if failure == "overload":
                    world.arm.faults.overload = {"shoulder_lift"}
                if failure == "motor_lost":
                    world.arm.motor("wrist_flex").connected = False
                env.step(obs[OBS_STATE])
    finally:
        world.arm.faults.overload = set()
        world.arm.connect_all()
        world.arm.motor("wrist_flex").set("Torque_Enable", 0)
    # Every motor still on the bus is released; a motor that fell off the bus cannot be reached.
    reachable = [m for m in world.arm.motors if not (failure == "motor_lost" and m.name == "wrist_flex")]
    assert not any(m.get("Torque_Enable") for m in reachable), failure
    with pytest.raises(RuntimeError, match="closed"):
        env.step(obs[OBS_STATE])
    env.close()  # idempotent


def test_garbage_collected_env_turns_torque_off(world):
    env = make(world, cameras=())
    env.reset()
    assert world.arm.torque_enabled().all()
    del env
    import gc

    gc.collect()
    assert not world.arm.torque_enabled().any()


def test_missing_calibration_or_camera_fails_before_moving(world):
    register_real_env()
    with pytest.raises(Exception, match="calibrate"):
        gym.make(REAL_ENV_ID, port=world.port, calibration=None)
    with pytest.raises(CameraError, match="find-cameras"):
        gym.make(REAL_ENV_ID, port=world.port, calibration=world.calibration(),
                 cameras={"front": "/dev/video77"})
    assert not world.arm.torque_enabled().any()


def test_camera_file_sets_the_recorded_names_and_sizes(world, tmp_path):
    """Real-v0 given the camera file a sim env renders records the same names and sizes."""
    from so101lab.camera_file import MountedCamera, save_camera_file

    path = save_camera_file(tmp_path / "cams.json", [MountedCamera.from_fov("front", 64, 48, 40.0)])
    env = make(world, {"front": world.camera("front", 48, 64)}, camera_config=path)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"]["front"].shape == (48, 64, 3)
    assert env.observation_space["pixels"]["front"].shape == (48, 64, 3)
    env.close()
    sim = gym.make("so101lab/PickCube-v0", camera_config=path, visual="primitive")
    assert sim.observation_space["pixels"] == env.observation_space["pixels"]
    with pytest.raises(ValueError, match="delivers 96x128 but the camera file"):
        make(world, {"front": world.camera("front", 96, 128)}, camera_config=path)
    with pytest.raises(ValueError, match=r"\['wrist'\] are not in the camera file"):
        make(world, {"wrist": world.camera("wrist", 48, 64)}, camera_config=path)
