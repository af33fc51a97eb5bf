"""Domain randomisation: seeded, reproducible, and each option changes what it claims and nothing else.

Images are small and drawn with the primitive arm without shadows (a light's change then
reaches every lit pixel and nothing else); segmentation renders say which geom a pixel shows.
"""

from __future__ import annotations

import dataclasses

import cv2
import gymnasium as gym
import mujoco
import numpy as np
import pytest

import so101lab  # noqa: F401  (registers the envs)
from so101lab.assets.look import ARM_COLORS
from so101lab.envs import DomainRandomization, make_expert
from so101lab.envs.randomization import PRESETS, preset, textured_material_name
from so101lab.envs.textures import POOL_PREFIX, set_pool_texture_filter

NONE = DomainRandomization.none()
SIZE = (96, 128)


def _env(config: DomainRandomization, env_id: str = "so101lab/PickCube-v0", **kwargs):
    kwargs = {"visual": "primitive", "shadows": False, "image_size": SIZE, "randomization": config, **kwargs}
    return gym.make(env_id, **kwargs).unwrapped


def _frames(config: DomainRandomization, seed: int = 3, **kwargs) -> tuple[dict, object]:
    env = _env(config, **kwargs)
    obs, _ = env.reset(seed=seed)
    return obs, env


def _segmentation(env, camera: str) -> np.ndarray:
    """Geom id of every pixel of `camera` (-1: nothing)."""
    with mujoco.Renderer(env.model, *SIZE) as renderer:
        renderer.enable_segmentation_rendering()
        renderer.update_scene(env.data, camera)
        seg = renderer.render()
    return np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, seg[..., 0], -1)


def _geoms(env, names: list[str]) -> list[int]:
    return [env.model.geom(n).id for n in names]


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(int) - b.astype(int)).any(axis=-1)


def _state(env) -> np.ndarray:
    return np.concatenate([env.data.qpos, env.data.qvel])


# ---- reproducibility and physics ------------------------------------------------------------------

FULL = DomainRandomization(distractors=(1, 3), arm_colors=tuple(ARM_COLORS), table_texture=1.0, wall_texture=1.0,
                           image_blur_prob=1.0, image_jpeg_prob=1.0)


def test_same_seed_same_randomised_images():
    first, env = _frames(FULL, seed=7)
    again, _ = _frames(FULL, seed=7)
    env.reset(seed=8)
    env_obs, _ = env.reset(seed=7)  # the same env after another episode
    other, _ = _frames(FULL, seed=8)
    for camera in ("front", "wrist"):
        np.testing.assert_array_equal(first["pixels"][camera], again["pixels"][camera])
        np.testing.assert_array_equal(first["pixels"][camera], env_obs["pixels"][camera])
        assert _changed(first["pixels"][camera], other["pixels"][camera]).mean() > 0.3
    step_a = env.step(env.action_space.sample() * 0 + first["agent_pos"])[0]
    env.reset(seed=7)
    step_b = env.step(first["agent_pos"])[0]
    np.testing.assert_array_equal(step_a["pixels"]["front"], step_b["pixels"]["front"])  # per-step noise too


def test_none_builds_the_plain_scene_and_restores_it():
    env = _env(NONE)
    model = env.model
    names = [model.texture(i).name for i in range(model.ntex)] + [model.light(i).name for i in range(model.nlight)]
    assert not [n for n in names if n.startswith("dr_")]
    assert not [model.body(i).name for i in range(model.nbody) if model.body(i).name.startswith("dr_")]
    randomised = _env(FULL)
    nominal = randomised.model.cam_pos.copy(), randomised.model.mat_rgba.copy()
    randomised.reset(seed=1)
    assert not np.array_equal(randomised.model.mat_rgba, nominal[1])
    randomised.randomizer.restore()
    np.testing.assert_array_equal(randomised.model.cam_pos, nominal[0])
    np.testing.assert_array_equal(randomised.model.mat_rgba, nominal[1])


def _trajectory(config: DomainRandomization, seed: int, steps: int = 60) -> list[np.ndarray]:
    env = _env(config, obs_mode="state")
    obs, _ = env.reset(seed=seed)
    expert = make_expert(env)
    states = []
    for _ in range(steps):
        obs, *_ = env.step(expert.act(obs))
        states.append(_state(env))
    return states


def test_visual_randomisation_changes_no_physics():
    """Every visual option on (distractors off): the same trajectory as the nominal scene, bit for bit."""
    physics = ("friction_scale", "object_mass_scale", "servo_gain_scale", "servo_damping_scale")
    visual = dataclasses.replace(FULL, distractors=(0, 0), **{k: getattr(NONE, k) for k in physics})
    assert all(np.array_equal(a, b) for a, b in zip(_trajectory(NONE, 4), _trajectory(visual, 4), strict=True))


def test_parked_distractors_change_no_physics():
    config = dataclasses.replace(NONE, distractors=(0, 3))
    env = _env(config, obs_mode="state")
    seed = next(s for s in range(50) if (env.reset(seed=s), env.randomizer.distractors.placed)[1] == 0)
    assert all(np.array_equal(a, b) for a, b in zip(_trajectory(NONE, seed), _trajectory(config, seed), strict=True))


# ---- each option changes what it claims ---------------------------------------------------------


@pytest.mark.parametrize(("option", "surface"), [
    (dict(table_texture=1.0), ["table"]),
    (dict(table_color=0.3), ["table"]),
    (dict(wall_texture=1.0), ["wall", "wall_left", "wall_right", "wall_front"]),
    (dict(object_color=0.2), ["a_cube"]),
])  # fmt: skip
def test_surface_options_change_their_surface_only(option, surface):
    nominal, env = _frames(NONE)
    changed, _ = _frames(dataclasses.replace(NONE, **option))
    seg = _segmentation(env, "front")
    mask = np.isin(seg, _geoms(env, surface))
    diff = _changed(nominal["pixels"]["front"], changed["pixels"]["front"])
    assert diff.any() and not (diff & ~mask).any()
    np.testing.assert_array_equal(nominal["agent_pos"], changed["agent_pos"])


def test_floor_texture_changes_the_floor_geom_material_only():
    plain, env = _env(NONE), _env(dataclasses.replace(NONE, floor_texture=1.0))
    plain.reset(seed=2)
    env.reset(seed=2)
    floor = env.model.geom("floor").id
    textured = env.model.material(textured_material_name("floor")).id
    assert env.model.geom_matid[floor] == textured
    assert env.model.texture(env.model.mat_texid[textured, 1]).name.startswith("dr_")
    others, nmat = np.arange(env.model.ngeom) != floor, plain.model.nmat
    np.testing.assert_array_equal(env.model.geom_matid[others], plain.model.geom_matid[others])
    for name in ("mat_rgba", "mat_texid"):  # the scene's own materials, the plain floor's included
        np.testing.assert_array_equal(getattr(env.model, name)[:nmat], getattr(plain.model, name))
    for name in ("geom_rgba", "light_diffuse", "cam_pos"):
        np.testing.assert_array_equal(getattr(env.model, name), getattr(plain.model, name))


def test_an_untextured_episode_draws_the_plain_material():
    """A surface that may be textured but is not this episode is on its untextured material (the cheap one)."""
    env = _env(dataclasses.replace(NONE, table_texture=0.5))
    table = env.model.geom("table").id
    drawn = set()
    for seed in range(12):
        env.reset(seed=seed)
        drawn.add(env.model.material(env.model.geom_matid[table]).name)
    assert drawn == {"table", textured_material_name("table")}


def _min_filters(env) -> dict[str, int]:
    """The GL minification filter of each 2D texture in the env's renderer, by texture name."""
    from OpenGL import GL

    renderer = env._renderer
    renderer._gl_context.make_current()
    filters = {}
    for i in range(env.model.ntex):
        if env.model.tex_type[i] == mujoco.mjtTexture.mjTEXTURE_2D:
            GL.glBindTexture(GL.GL_TEXTURE_2D, int(renderer._mjr_context.texture[i]))
            filters[env.model.tex(i).name] = int(GL.glGetTexParameteriv(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER))
    return filters


def test_pool_textures_sample_one_mip_level_and_look_the_same():
    """The cheaper filter reaches every pool texture and changes the picture by a hair."""
    from OpenGL import GL

    env = _env(dataclasses.replace(NONE, table_texture=1.0, wall_texture=1.0), visual="mesh", image_size=(240, 320))
    obs, _ = env.reset(seed=4)
    filters = _min_filters(env)
    pool = {name for name in filters if name.startswith(POOL_PREFIX)}
    assert pool and all(filters[n] == GL.GL_LINEAR_MIPMAP_NEAREST for n in pool)
    # Against MuJoCo's own filter on the same frame: the table and wall are textured, the rest is identical.
    set_pool_texture_filter(env._renderer, env.model, blend_mip_levels=True)
    assert set(_min_filters(env).values()) == {GL.GL_LINEAR_MIPMAP_LINEAR}
    for camera, image in obs["pixels"].items():
        trilinear = env._render_camera(camera, *image.shape[:2])
        diff = np.abs(image.astype(int) - trilinear.astype(int))
        assert diff.mean() < 0.5, (camera, diff.mean())


def _write_image(folder, name: str, rgb: tuple[int, int, int]) -> None:
    folder.mkdir(exist_ok=True)
    image = np.zeros((60, 80, 3), np.uint8)
    image[:] = rgb
    image[20:40, 20:60] = (255, 255, 255)
    cv2.imwrite(str(folder / name), image[..., ::-1])


@pytest.mark.parametrize(("field", "surface"), [("table_images", ["table"]),
                                                ("background_images", ["wall", "wall_left", "wall_right",
                                                                       "wall_front"])])
def test_user_photos_show_on_their_surface_only(tmp_path, field, surface):
    _write_image(tmp_path / "photos", "a.png", (20, 160, 40))
    probability = "table_texture" if field == "table_images" else "wall_texture"
    config = dataclasses.replace(NONE, texture_families=(), **{field: tmp_path / "photos", probability: 1.0})
    nominal, env = _frames(NONE)
    changed, photo_env = _frames(config)
    textured = photo_env.model.material(textured_material_name(surface[0])).id
    assert photo_env.model.texture(photo_env.model.mat_texid[textured, 1]).name.endswith("image_0")
    mask = np.isin(_segmentation(env, "front"), _geoms(env, surface))
    diff = _changed(nominal["pixels"]["front"], changed["pixels"]["front"])
    assert diff.any() and not (diff & ~mask).any()


def test_missing_photo_folder_fails_in_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _env(dataclasses.replace(NONE, table_texture=1.0, table_images=tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no"):
        _env(dataclasses.replace(NONE, wall_texture=1.0, background_images=tmp_path / "empty"))


def test_arm_colour_changes_the_arm_and_follows_into_object_colours():
    config = dataclasses.replace(NONE, arm_colors=tuple(ARM_COLORS), arm_color=0.05)
    arms, env, arm_env = set(), _env(NONE), _env(config)
    for seed in range(12):
        nominal, changed = env.reset(seed=seed)[0], arm_env.reset(seed=seed)[0]
        # The arm, and the cube: its colour is drawn from those that stand apart from this arm's.
        mask = np.isin(_segmentation(env, "front"), np.flatnonzero(env.model.geom_bodyid != 0))
        diff = _changed(nominal["pixels"]["front"], changed["pixels"]["front"])
        assert not (diff & ~mask).any()
        np.testing.assert_array_equal(env.data.qpos, arm_env.data.qpos)
        rgb = arm_env.randomizer.arm_rgb
        arms.add(min(ARM_COLORS, key=lambda c: np.linalg.norm(np.subtract(ARM_COLORS[c], rgb))))
        assert all(np.linalg.norm(np.subtract(c, rgb)) > 0.3 for c in arm_env.colors.values())
    assert len(arms) >= 3


def test_lights_change_pixels_not_geometry_or_state():
    for option in (dict(light_intensity=0.5), dict(light_color=0.3), dict(light_position=0.3),
                   dict(light_direction=0.3), dict(extra_lights=2, extra_light_intensity=0.6)):
        nominal, env = _frames(NONE)
        changed, lit = _frames(dataclasses.replace(NONE, **option))
        assert _changed(nominal["pixels"]["front"], changed["pixels"]["front"]).mean() > 0.2, option
        np.testing.assert_array_equal(_segmentation(env, "front"), _segmentation(lit, "front"))
        np.testing.assert_array_equal(_state(env), _state(lit))


def test_extra_lights_switch_between_none_and_all():
    env = _env(dataclasses.replace(NONE, extra_lights=2))
    lights = env.randomizer.extra_lights
    active = set()
    for seed in range(20):
        env.reset(seed=seed)
        active.add(int(env.model.light_active[lights].sum()))
        assert not env.model.light_castshadow[lights].any()
    assert active == {0, 1, 2}


def test_camera_options_move_the_fixed_cameras_and_zoom_every_camera():
    env = _env(dataclasses.replace(NONE, camera_position=0.02, camera_rotation=0.05, camera_fov=0.1))
    nominal = {n: getattr(env.model, n).copy() for n in ("cam_pos", "cam_quat", "cam_fovy")}
    env.reset(seed=1)
    wrist, front = env.model.camera("wrist").id, env.model.camera("front").id
    assert not np.array_equal(env.model.cam_pos[front], nominal["cam_pos"][front])
    assert not np.array_equal(env.model.cam_quat[front], nominal["cam_quat"][front])
    np.testing.assert_array_equal(env.model.cam_pos[wrist], nominal["cam_pos"][wrist])  # rides on the gripper
    assert (env.model.cam_fovy != nominal["cam_fovy"]).all()
    assert np.abs(env.model.cam_fovy / nominal["cam_fovy"] - 1).max() < 0.12


# ---- distractors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["so101lab/PickCube-v0", "so101lab/PickPlace-v0"])
def test_distractors_stand_clear_of_the_task(env_id):
    config = dataclasses.replace(NONE, distractors=(3, 3))
    env = _env(config, env_id=env_id, obs_mode="state")
    model, data = env.model, env.data
    placed = []
    for seed in range(10):
        env.reset(seed=seed)
        placed.append(env.randomizer.distractors.placed)
        spare = env.randomizer.distractors.geoms[: env.randomizer.distractors.placed]
        for geom in spare:
            xy = data.geom_xpos[geom, :2]
            for body in env.task_bodies:
                body_geoms = np.flatnonzero(model.geom_bodyid == body)
                assert np.linalg.norm(xy - data.xpos[body, :2]) > model.geom_rbound[geom] + 0.02
                for g in body_geoms:  # colours never equal a task body's
                    assert np.linalg.norm(model.geom_rgba[geom, :3] - model.geom_rgba[g, :3]) > 0.3
            assert data.geom_xpos[geom, 2] < 0.06
        touching = {model.geom_bodyid[g] for c in data.contact[: data.ncon] for g in (c.geom1, c.geom2)}
        assert not touching & {model.geom_bodyid[g] for g in spare}  # nothing rests against them after settling
    assert np.mean(placed) > 2.5


def test_distractors_leave_the_expert_its_success():
    env = _env(dataclasses.replace(NONE, distractors=(3, 3)), obs_mode="state")
    wins = 0
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        expert = make_expert(env)
        for _ in range(200):
            obs, _, terminated, _, info = env.step(expert.act(obs))
            if terminated:
                break
        wins += info["is_success"]
    assert wins == 4


def test_distractors_change_their_own_pixels_only():
    nominal, _ = _frames(NONE, seed=5)
    changed, cluttered = _frames(dataclasses.replace(NONE, distractors=(3, 3)), seed=5)
    mask = np.isin(_segmentation(cluttered, "front"), cluttered.randomizer.distractors.geoms)
    diff = _changed(nominal["pixels"]["front"], changed["pixels"]["front"])
    assert mask.any() and not (diff & ~mask).any()


# ---- image-level corruptions ---------------------------------------------------------------------


@pytest.mark.parametrize("option", [dict(image_color=0.2), dict(image_blur=8.0, image_blur_prob=1.0),
                                    dict(image_jpeg_prob=1.0, image_jpeg_quality=(10, 20)),
                                    dict(image_noise=0.05)])
def test_image_corruptions_change_the_observation_not_the_state_or_render(option):
    nominal, env = _frames(NONE, render_mode="rgb_array")
    noisy, noisy_env = _frames(dataclasses.replace(NONE, **option), render_mode="rgb_array")
    for camera in ("front", "wrist"):
        assert _changed(nominal["pixels"][camera], noisy["pixels"][camera]).mean() > 0.05, (option, camera)
    np.testing.assert_array_equal(_state(env), _state(noisy_env))
    np.testing.assert_array_equal(env.render(), noisy_env.render())  # render() shows the clean scene


def test_pixel_noise_differs_per_step_and_repeats_per_seed():
    config = dataclasses.replace(NONE, image_noise=0.05)
    obs, env = _frames(config, seed=2)
    hold = obs["agent_pos"]
    first = [env.step(hold)[0]["pixels"]["front"] for _ in range(2)]
    assert _changed(first[0], first[1]).mean() > 0.3
    env.reset(seed=2)
    again = [env.step(hold)[0]["pixels"]["front"] for _ in range(2)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


def test_noise_and_jpeg_are_what_their_definitions_say():
    """The fast paths (saturating adds of a pre-scaled field; cvtColor channel swaps around the codec)
    give the same bytes as the plain definitions: clip(image + round(std * field)); a JPEG of the RGB frame."""
    from so101lab.envs.image_noise import NOISE_MARGIN, ImageNoise

    image = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8), (0, 0), 2)
    image[:4], image[-4:] = 0, 255  # saturation at both ends
    noise = ImageNoise(color=0.0, blur=0.0, blur_prob=0.0, jpeg_quality=(30, 30), jpeg_prob=0.0, noise=0.05)
    noise.start_episode(np.random.default_rng(3), ("front",))
    std = noise._episode["front"].noise_std
    field = np.random.default_rng([48, 64]).standard_normal((48 + NOISE_MARGIN, 64 + NOISE_MARGIN, 3),
                                                               dtype=np.float32)
    out = noise.apply("front", image.copy())  # apply works in place
    expected = [np.clip(image + np.round(field[dy:dy + 48, dx:dx + 64] * std), 0, 255).astype(np.uint8)
                for dy in range(NOISE_MARGIN + 1) for dx in range(NOISE_MARGIN + 1)]
    assert std > 0.5 and any(np.array_equal(out, e) for e in expected)

    jpeg = ImageNoise(color=0.0, blur=0.0, blur_prob=0.0, jpeg_quality=(30, 30), jpeg_prob=1.0, noise=0.0)
    jpeg.start_episode(np.random.default_rng(3), ("front",))
    _, buffer = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 30])
    np.testing.assert_array_equal(jpeg.apply("front", image.copy()), cv2.imdecode(buffer, cv2.IMREAD_COLOR)[..., ::-1])

    color_blur = ImageNoise(color=0.2, blur=1.0, blur_prob=1.0, jpeg_quality=(30, 30), jpeg_prob=0.0, noise=0.0)
    color_blur.start_episode(np.random.default_rng(3), ("front",))
    corruption = color_blur._episode["front"]
    sigma = corruption.blur_sigma * 48 / 480
    expected = cv2.GaussianBlur(cv2.transform(image, corruption.color), (0, 0), sigma)
    np.testing.assert_array_equal(color_blur.apply("front", image.copy()), expected)


def test_cameras_corrupted_in_parallel_give_the_bytes_of_one_at_a_time():
    from so101lab.envs.image_noise import ImageNoise

    rng = np.random.default_rng(0)
    frames = {camera: cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (0, 0), 2)
              for camera in ("front", "wrist", "side")}
    kwargs = dict(color=0.2, blur=1.0, blur_prob=1.0, jpeg_quality=(30, 60), jpeg_prob=0.5, noise=0.05)
    parallel, serial = ImageNoise(**kwargs), ImageNoise(**kwargs)
    for noise in (parallel, serial):
        noise.start_episode(np.random.default_rng(5), tuple(frames))
    for _ in range(3):  # each step draws new noise windows
        together = parallel.apply_all({camera: frame.copy() for camera, frame in frames.items()})
        assert list(together) == list(frames)
        for camera, frame in frames.items():
            np.testing.assert_array_equal(together[camera], serial.apply(camera, frame.copy()))
    assert parallel._pool is not None  # the frames did go through the threads


def test_image_corruptions_run_opencv_on_one_thread():
    """OpenCV's pool beside the renderer's threads oversubscribed the cores (docs/randomization.md,
    "OpenCV threads"); an env without corruptions leaves OpenCV's setting alone."""
    from so101lab.envs.image_noise import ImageNoise

    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        ImageNoise(color=0.0, blur=0.0, blur_prob=0.0, jpeg_quality=(30, 30), jpeg_prob=0.0, noise=0.0)
        assert cv2.getNumThreads() == 2
        ImageNoise(color=0.1, blur=0.0, blur_prob=0.0, jpeg_quality=(30, 30), jpeg_prob=0.0, noise=0.0)
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)


# ---- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(table_texture=1.5), "table_texture is a probability"),
    (dict(distractors=(3, 1)), "distractors must be"),
    (dict(texture_families=("marble",)), "unknown texture_families"),
    (dict(arm_colors=("pink",)), "unknown arm_colors"),
    (dict(image_jpeg_quality=(0, 50)), "image_jpeg_quality"),
    (dict(light_color=-0.1), "light_color must be >= 0"),
])  # fmt: skip
def test_bad_configs_fail_with_their_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DomainRandomization(**kwargs)


def test_presets():
    assert set(PRESETS) >= {"default", "none", "no-visual", "robust-train"}
    assert preset("none") == NONE
    no_visual = preset("no-visual")
    assert no_visual.friction_scale == DomainRandomization().friction_scale and no_visual.table_texture == 0
    with pytest.raises(ValueError, match="unknown randomization preset"):
        preset("nope")
