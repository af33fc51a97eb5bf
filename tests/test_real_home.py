"""Real-v0 starts every episode where the sim starts: the home move, on the virtual arm."""

import gymnasium as gym
import numpy as np
import pytest

from so101lab.contract import CONTROL_DT, OBS_STATE, lerobot_to_radians
from so101lab.envs.base import HOME_POSE
from so101lab.real import REAL_ENV_ID, register_real_env
from so101lab.real.env import HOME_NOISE, HomeMove
from so101lab.real.errors import HardwareError
from so101lab.real.virtual_world import VirtualWorld

# Far from home: arm stretched forward and up, turned, wrist rolled, gripper shut or wide open.
FAR_POSES = {
    "stretched": [40.0, -20.0, -30.0, 0.0, 80.0, 0.0],
    "turned_folded": [-60.0, -95.0, 95.0, 90.0, -70.0, 90.0],
}


@pytest.fixture(scope="module")
def world():
    with VirtualWorld("PickCube", seed=0, env_kwargs={"visual": "primitive"}) as world:
        yield world


class FarStart:
    """Episode hooks of a scene whose arm was left at ``pose`` (LeRobot units), held there by its servos."""

    def __init__(self, world: VirtualWorld, pose):
        self.world, self.pose = world, np.asarray(pose, dtype=np.float32)

    def reset(self, seed=None) -> str:
        import mujoco

        task = self.world.reset(seed)
        sim = self.world.sim
        with self.world.physics.lock:  # the arm was left there: the servos hold that pose
            sim.data.qpos[sim.qpos_adr] = lerobot_to_radians(self.pose)
            sim.data.qvel[:] = 0.0
            mujoco.mj_forward(sim.model, sim.data)
            sim.servos.reset(sim.data)
        self.world._hold_pose()
        return task

    def is_success(self) -> bool:
        return self.world.is_success()


def make(world, pose, **kwargs):
    register_real_env()
    return gym.make(REAL_ENV_ID, port=world.port, calibration=world.calibration(),
                    episode_hooks=FarStart(world, pose), **kwargs).unwrapped


def test_sim_resets_lie_within_the_home_noise():
    sim = gym.make("so101lab/PickCube-v0", obs_mode="state", visual="primitive")
    starts = np.array([sim.reset(seed=s)[0][OBS_STATE] for s in range(8)])
    sim.close()
    # The sim's start region (allowing the settling steps' sag) is what HomeMove aims at.
    assert np.all(np.abs(starts - HOME_POSE) <= HOME_NOISE + 1.5), np.abs(starts - HOME_POSE).max(0)


@pytest.mark.parametrize("far", FAR_POSES)
def test_reset_moves_a_far_arm_home_slowly_and_at_reduced_torque(world, far):
    home = HomeMove(speed=90.0)
    env = make(world, FAR_POSES[far], home=home)
    sent, torque_limits = [], []
    send = env.arm.send

    def watched_send(goal):  # what goes to the motors, and the torque they may use meanwhile
        torque_limits.append([m.get("Torque_Limit") for m in world.arm.motors])
        sent.append(send(goal))
        return sent[-1]

    env.arm.send = watched_send
    try:
        obs, _ = env.reset(seed=4)
        assert np.all(np.abs(obs[OBS_STATE] - HOME_POSE) <= HOME_NOISE + home.tolerance), obs[OBS_STATE]
        start = np.asarray(FAR_POSES[far])
        assert np.abs(start - HOME_POSE).max() > 60  # it really came from far away
        steps = np.abs(np.diff(np.array(sent), axis=0)).max()
        # Minimum-jerk path: peak speed 1.875x the mean speed; the mean is `speed`.
        assert steps <= 1.875 * home.speed * CONTROL_DT + 0.5, steps
        assert np.all(np.array(torque_limits) <= 500)
        assert all(m.get("Torque_Limit") == 1000 for m in world.arm.motors)  # restored after the move
        # A second reset finds the arm home already: no move, the same start.
        env.arm.send = send
        env.hooks = world
        world.reset(1)
        assert env.move_home(home) is False
    finally:
        env.close()


def test_home_move_is_configurable_and_skippable(world):
    far = np.asarray(FAR_POSES["stretched"], dtype=np.float32)
    env = make(world, far, home=None)
    try:
        obs, _ = env.reset(seed=0)
        assert np.abs(obs[OBS_STATE] - far).max() < 5  # left where it was
    finally:
        env.close()
    env = make(world, far)
    try:
        obs, _ = env.reset(seed=0, options={"home": False})
        assert np.abs(obs[OBS_STATE] - far).max() < 5
        elsewhere = (0.0, -60.0, 30.0, 30.0, 0.0, 10.0)
        env.home = HomeMove(pose=elsewhere, noise=0.0, speed=120.0)
        obs, _ = env.reset(seed=0)
        assert np.abs(obs[OBS_STATE] - elsewhere).max() <= env.home.tolerance
    finally:
        env.close()
    with pytest.raises(ValueError, match="fraction"):
        HomeMove(torque=2.0)


def test_an_arm_that_cannot_arrive_stops_with_torque_off(world):
    env = make(world, FAR_POSES["stretched"], home=HomeMove(speed=120.0, torque=0.01, settle_seconds=0.5))
    with pytest.raises(HardwareError, match="did not reach the home pose"):
        env.reset(seed=0)
    assert not world.arm.torque_enabled().any()
    env.close()
