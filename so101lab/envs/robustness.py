"""The robustness benchmark's scenes: the randomisation a policy trains under and the held-out shifts.

Every held-out condition is the nominal scene (no visual randomisation, physics randomised as
usual) plus one shift that the training randomisation never samples:

- ``texture``: the table in the wood-grain family, which training never draws;
- ``lighting``: the key light at 40 % and warm (training: +-30 % and +-10 % per channel), the headlight halved;
- ``camera``: the front camera moved 2 cm and turned 3 deg (training: +-1 cm per axis, +-1.7 deg);
- ``distractors``: three distractors (training: at most two);
- ``background``: room photos on the walls that no training episode shows (one of four per episode).

Room "photos" are drawn by `room_image` from a seed (training seeds 0-7, held-out seeds 1000-1003) and
cached as PNGs, so the benchmark needs no downloads; a user's own photos go in through
``DomainRandomization(background_images=..., table_images=...)`` the same way.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np

from so101lab.contract import CONTROL_HZ
from so101lab.envs.randomization import DomainRandomization
from so101lab.envs.textures import TEXTURE_FAMILIES

HELD_OUT_FAMILY = "grain"
TRAIN_BACKGROUND_SEEDS = tuple(range(8))
HELD_OUT_BACKGROUND_SEEDS = (1000, 1001, 1002, 1003)  # several: one photo is a thin test of a shift
CAMERA_SHIFT = 0.02  # m
CAMERA_TURN = 3.0  # deg
LIGHT_GAIN, LIGHT_TINT = 0.4, (1.0, 0.8, 0.55)


def room_image(seed: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A stand-in photo of a room (RGB uint8): wall, window, shelves of books, a door, a poster."""
    import cv2

    rng = np.random.default_rng([seed, 17])
    h, w = size
    wall = rng.uniform(0.35, 0.95, 3)
    shade = np.linspace(1.0, rng.uniform(0.6, 0.9), h)[:, None, None]
    image = (255 * wall * shade * np.ones((h, w, 3))).astype(np.uint8)

    def box(x0: float, y0: float, bw: float, bh: float, rgb) -> None:
        cv2.rectangle(image, (int(x0 * w), int(y0 * h)), (int((x0 + bw) * w), int((y0 + bh) * h)),
                      [int(255 * c) for c in rgb], -1)

    for _ in range(int(rng.integers(1, 4))):  # windows, doors, posters
        x, y = rng.uniform(0, 0.8), rng.uniform(0, 0.5)
        bw, bh = rng.uniform(0.1, 0.3), rng.uniform(0.15, 0.5)
        box(x, y, bw, bh, rng.uniform(0.1, 1.0, 3))
        box(x + 0.01, y + 0.015, bw - 0.02, bh - 0.03, rng.uniform(0.2, 1.0, 3))
    for _ in range(int(rng.integers(1, 3))):  # shelves of books
        x, y, bw = rng.uniform(0, 0.6), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.4)
        box(x, y, bw, 0.02, rng.uniform(0.2, 0.6, 3))
        bx = x
        while bx < x + bw - 0.02:
            book_w, book_h = rng.uniform(0.01, 0.03), rng.uniform(0.06, 0.12)
            box(bx, y - book_h, book_w, book_h, rng.uniform(0.05, 0.95, 3))
            bx += book_w + 0.002
    return cv2.GaussianBlur(image, (0, 0), 1.0)


def background_folder(name: str, seeds: tuple[int, ...]) -> Path:
    """A cached folder of `room_image`s (written once, atomically: parallel workers may ask at once)."""
    import cv2

    root = Path(os.environ.get("SO101LAB_CACHE", Path.home() / ".cache" / "so101lab")) / "backgrounds" / name
    root.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = root / f"room_{seed:04d}.png"
        if not path.exists():
            tmp = root / f".room_{seed:04d}.{os.getpid()}.png"
            cv2.imwrite(str(tmp), room_image(seed)[..., ::-1])
            tmp.replace(path)
    return root


def training_randomization() -> DomainRandomization:
    """What the randomised policy trains under: every visual aspect, none of the held-out shifts."""
    return DomainRandomization(
        light_intensity=0.3, light_color=0.1, extra_lights=2,
        table_texture=0.8, floor_texture=0.8, wall_texture=0.8,
        texture_families=tuple(f for f in TEXTURE_FAMILIES if f != HELD_OUT_FAMILY),
        background_images=background_folder("train", TRAIN_BACKGROUND_SEEDS),
        distractors=(0, 2), camera_position=0.01, camera_rotation=0.03, camera_fov=0.03,
        image_jpeg_prob=0.2,  # pinned: the default's went to 0.1 for speed; the benchmark's demos used 0.2
    )  # fmt: skip


def nominal_randomization() -> DomainRandomization:
    """The nominal scene: no visual randomisation, the physics randomised as in training."""
    return DomainRandomization().without_visual()


def _dim_warm_light(env) -> None:
    model = env.model
    base = env.randomizer.base_lights
    model.light_diffuse[base] *= LIGHT_GAIN * np.array(LIGHT_TINT)
    model.vis.headlight.diffuse[:] *= 0.5


def _moved_front_camera(env) -> None:
    model = env.model
    cam = model.camera("front").id
    model.cam_pos[cam] += CAMERA_SHIFT * np.array([0.0, 0.8, 0.6])  # 1.6 cm sideways, 1.2 cm up
    turn = np.zeros(4)
    mujoco.mju_axisAngle2Quat(turn, np.array([0.0, 0.0, 1.0]), np.radians(CAMERA_TURN))  # about the vertical
    mujoco.mju_mulQuat(model.cam_quat[cam], turn, model.cam_quat[cam].copy())


@dataclass(frozen=True)
class Condition:
    """One evaluation scene: a randomisation config and an edit of the nominal model."""

    description: str
    randomization: Callable[[], DomainRandomization]
    edit: Callable[[object], None] | None = None


def _texture() -> DomainRandomization:
    return dataclasses.replace(nominal_randomization(), table_texture=1.0, texture_families=(HELD_OUT_FAMILY,))


def _distractors() -> DomainRandomization:
    return dataclasses.replace(nominal_randomization(), distractors=(3, 3))


def _background() -> DomainRandomization:
    folder = background_folder("held_out", HELD_OUT_BACKGROUND_SEEDS)
    return dataclasses.replace(nominal_randomization(), wall_texture=1.0, texture_families=(),
                               background_images=folder)


CONDITIONS: dict[str, Condition] = {
    "nominal": Condition("the nominal scene", nominal_randomization),
    "texture": Condition(f"table texture of a held-out family ({HELD_OUT_FAMILY})", _texture),
    "lighting": Condition(f"key light at {LIGHT_GAIN:.0%}, warm {LIGHT_TINT}, headlight halved",
                          nominal_randomization, _dim_warm_light),
    "camera": Condition(f"front camera moved {CAMERA_SHIFT * 100:.0f} cm and turned {CAMERA_TURN:.0f} deg",
                        nominal_randomization, _moved_front_camera),
    "distractors": Condition("three distractors", _distractors),
    "background": Condition("room photos never seen in training on the walls", _background),
}


def make_condition_env(condition: str, task: str = "so101lab/PickCube-v0", **kwargs) -> gym.Env:
    """The task's env in one of CONDITIONS (the unwrapped env; gym.make adds the time limit)."""
    from gymnasium.envs.registration import load_env_creator

    from so101lab.envs.registration import ENV_IDS

    spec = CONDITIONS[condition]
    env = load_env_creator(ENV_IDS[task][0])(randomization=spec.randomization(), **kwargs)
    if spec.edit is not None:
        spec.edit(env)
        env.randomizer.rebase()
    return env


def condition_env_id(task: str, condition: str) -> str:
    return task.replace("-v0", f"-{condition}-v0")


def register_conditions(task: str = "so101lab/PickCube-v0") -> dict[str, str]:
    """Register an env id per condition of `task` (done for every task on `import so101lab`); condition -> id."""
    from so101lab.envs.registration import ENV_IDS

    ids = {}
    for condition in CONDITIONS:
        env_id = ids[condition] = condition_env_id(task, condition)
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=f"{__name__}:make_condition_env",
                         kwargs={"condition": condition, "task": task},
                         max_episode_steps=ENV_IDS[task][1] * CONTROL_HZ, disable_env_checker=True)
    return ids
