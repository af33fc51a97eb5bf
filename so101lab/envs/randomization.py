"""Domain randomisation of the SO-101 scenes: seeded, configurable, undone at every reset.

Each reset restores the nominal model, then perturbs it with the env's seeded generator, so
episodes are independent and `reset(seed=s)` reproduces one exactly. Physics (friction, masses,
servo gains) draws from the episode's generator; everything visual draws from streams derived
from it without consuming it, one stream per aspect, so switching a visual option on or off
changes neither the physics, the object poses, nor any other visual aspect of an episode.

Elements an episode may switch on (textures, spare lights, distractor slots) are added to the
model when it is built (`add_randomized_elements`, called by `build_model`), and only those the
config can use: `DomainRandomization.none()` builds the plain scene. docs/randomization.md lists
every option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from so101lab.assets.look import ARM_COLORS, ROBOT_BODIES
from so101lab.envs.distractors import Distractors, Footprint, add_distractor_slots
from so101lab.envs.image_noise import ImageNoise
from so101lab.envs.servo import ServoParams
from so101lab.envs.textures import (
    PLAIN_TEXTURE,
    TEXTURE_FAMILIES,
    add_texture_pool,
    image_files,
    image_texture_name,
    texture_name,
)

SURFACES = ("table", "floor", "wall")  # materials of scene.xml that take textures
EXTRA_LIGHT_BOX = ((-0.3, 0.9), (-0.8, 0.8), (0.4, 1.4))  # m: where spare lights stand
LIGHT_TARGET_BOX = ((0.0, 0.35), (-0.2, 0.2), (0.0, 0.0))  # m: the table area they point at
_TEX_RGB = mujoco.mjtTextureRole.mjTEXROLE_RGB
# One generator per visual aspect, each seeded from the episode: toggling one leaves the others' draws alone.
_ASPECTS = ("lights", "extra_lights", "surfaces", "arm", "cameras", "distractors", "image")


def extra_light_name(i: int) -> str:
    return f"dr_light_{i}"


@dataclass(frozen=True)
class DomainRandomization:
    """How much each aspect varies per episode. Zero (or a (1, 1) scale, an empty folder) turns an aspect off.

    Object poses are randomised by the tasks themselves (their placement regions).
    """

    object_color: float = 0.08  # +- jitter of each RGB channel around the named colour
    light_intensity: float = 0.25  # +- relative change of the key light and headlight
    light_direction: float = 0.15  # +- change of each key light direction component (steep: shadows in the map)
    table_color: float = 0.12  # +- jitter of the table RGB tint (over its texture, when textured)
    camera_position: float = 0.01  # +- metres on each axis of the fixed cameras
    camera_rotation: float = 0.03  # +- radians about each axis of the fixed cameras
    friction_scale: tuple[float, float] = (0.8, 1.2)  # of every object and finger sliding friction
    object_mass_scale: tuple[float, float] = (0.7, 1.4)
    servo_gain_scale: tuple[float, float] = (0.9, 1.1)  # of the servo stiffness kp
    servo_damping_scale: tuple[float, float] = (0.8, 1.2)  # of the joint damping
    # --- lights ---
    light_position: float = 0.1  # +- metres on each axis of the key light's position
    light_color: float = 0.1  # +- relative change of each RGB channel of the key light, headlight and spare lights
    extra_lights: int = 2  # spare lights without shadows built in; each episode switches on 0..this many
    extra_light_intensity: float = 0.35  # brightest diffuse of a spare light (the key light's is 0.7)
    # --- surfaces ---
    # 0.4 each and JPEG at 0.1: 12 % of pixel-mode step time on a software renderer, against 18 % at 0.7 and
    # 0.2 (docs/randomization.md; 0.25 measured no cheaper).
    table_texture: float = 0.4  # probability per episode that the table shows a texture (else its plain colour)
    floor_texture: float = 0.4  # the same for the floor
    wall_texture: float = 0.4  # the same for the wall behind the arm (the background)
    texture_families: tuple[str, ...] = TEXTURE_FAMILIES  # procedural families a textured surface draws from
    texture_variants: int = 4  # colour variants built per family
    texture_scale: tuple[float, float] = (2.0, 10.0)  # tiles per metre of a procedural texture
    texture_seed: int = 0  # seeds the variants' colours (the same config builds the same textures)
    table_images: Path | None = None  # folder of photos of the user's table: one more table "family"
    background_images: Path | None = None  # folder of photos of the user's room: one more wall "family"
    # --- objects and arm ---
    distractors: tuple[int, int] = (0, 0)  # (min, max) distractor objects per episode
    arm_colors: tuple[str, ...] = ()  # printed-part colours (look.ARM_COLORS) to draw from; () keeps the env's
    arm_color: float = 0.05  # +- jitter of the printed parts' RGB
    camera_fov: float = 0.03  # +- relative change of every camera's field of view (focal length)
    # --- observation images (applied to the returned images, not to render()) ---
    image_color: float = 0.08  # +- brightness, contrast, saturation (relative) and hue (radians) per camera
    image_blur: float = 1.0  # largest Gaussian blur sigma, px of a 480-line image
    image_blur_prob: float = 0.3  # probability per episode and camera of a blur
    image_jpeg_quality: tuple[int, int] = (40, 90)  # JPEG quality range
    image_jpeg_prob: float = 0.1  # probability per episode and camera of JPEG artefacts
    image_noise: float = 0.015  # largest std of the Gaussian pixel noise, fraction of full scale

    def __post_init__(self) -> None:
        for name in ("object_color", "light_intensity", "light_direction", "table_color", "camera_position",
                     "camera_rotation", "light_position", "light_color", "extra_light_intensity", "arm_color",
                     "camera_fov", "image_color", "image_blur", "image_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("table_texture", "floor_texture", "wall_texture", "image_blur_prob", "image_jpeg_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in 0..1, got {getattr(self, name)}")
        if self.extra_lights < 0 or self.texture_variants < 1:
            raise ValueError(f"extra_lights must be >= 0 and texture_variants >= 1, got {self.extra_lights} "
                             f"and {self.texture_variants}")
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ValueError(f"distractors must be (min, max) with 0 <= min <= max, got {self.distractors}")
        if not 0 < self.texture_scale[0] <= self.texture_scale[1]:
            raise ValueError(f"texture_scale must satisfy 0 < low <= high, got {self.texture_scale}")
        if not 1 <= self.image_jpeg_quality[0] <= self.image_jpeg_quality[1] <= 100:
            raise ValueError(f"image_jpeg_quality must be (low, high) within 1..100, got {self.image_jpeg_quality}")
        unknown = set(self.texture_families) - set(TEXTURE_FAMILIES)
        if unknown:
            raise ValueError(f"unknown texture_families {sorted(unknown)}; known: {TEXTURE_FAMILIES}")
        unknown = set(self.arm_colors) - set(ARM_COLORS)
        if unknown:
            raise ValueError(f"unknown arm_colors {sorted(unknown)}; known: {sorted(ARM_COLORS)}")

    @classmethod
    def none(cls) -> DomainRandomization:
        """No randomisation at all: the nominal scene every episode (object poses still vary)."""
        return cls(friction_scale=(1.0, 1.0), object_mass_scale=(1.0, 1.0), servo_gain_scale=(1.0, 1.0),
                   servo_damping_scale=(1.0, 1.0)).without_visual()

    def without_visual(self) -> DomainRandomization:
        """This config with every visual aspect off: the nominal look, the physics still randomised."""
        return dataclasses.replace(self, **VISUAL_OFF)

    @property
    def textured(self) -> bool:
        return bool(self.table_texture or self.floor_texture or self.wall_texture)


VISUAL_OFF = dict(
    object_color=0.0, light_intensity=0.0, light_direction=0.0, table_color=0.0, camera_position=0.0,
    camera_rotation=0.0, light_position=0.0, light_color=0.0, extra_lights=0, table_texture=0.0,
    floor_texture=0.0, wall_texture=0.0, table_images=None, background_images=None, distractors=(0, 0),
    arm_colors=(), arm_color=0.0, camera_fov=0.0, image_color=0.0, image_blur=0.0, image_blur_prob=0.0,
    image_jpeg_prob=0.0, image_noise=0.0,
)


def add_randomized_elements(spec: mujoco.MjSpec, config: DomainRandomization, avoid_colors: Sequence = ()) -> None:
    """Add to a scene spec (before compiling) what `config` may switch on: textures, spare lights, distractors.

    `avoid_colors` are the object colours no texture may take. None of these elements has mass or
    degrees of freedom; parked distractors touch nothing (tests/test_randomization.py).
    """
    if config.textured:
        add_texture_pool(spec, config.texture_families, config.texture_variants, config.texture_seed, avoid_colors,
                         config.table_images if config.table_texture else None,
                         config.background_images if config.wall_texture else None)
        probability = {"table": config.table_texture, "floor": config.floor_texture, "wall": config.wall_texture}
        for surface in SURFACES:
            plain = spec.material(surface)
            if plain is not None and probability[surface]:
                _add_textured_twin(spec, plain, textured_material_name(surface))
    for i in range(config.extra_lights):
        spec.worldbody.add_light(name=extra_light_name(i), type=mujoco.mjtLightType.mjLIGHT_SPOT, pos=[0, 0, 1],
                                 dir=[0, 0, -1], cutoff=60, exponent=2, castshadow=False, active=False,
                                 diffuse=[0, 0, 0], specular=[0, 0, 0])
    add_distractor_slots(spec, config.distractors[1])


def textured_material_name(surface: str) -> str:
    return f"dr_{surface}"


def _add_textured_twin(spec: mujoco.MjSpec, plain: mujoco.MjsMaterial, name: str) -> None:
    """A copy of a surface's material that carries a texture. A textured episode points the surface's
    geoms at it; a plain one leaves them on the untextured material, which a software renderer draws
    about 15 % faster than a white texture. (A material cannot drop its texture instead: switched back
    to none, it keeps drawing the last one in MuJoCo's renderer, seen with mujoco 4.0.1.)"""
    twin = spec.add_material(name=name)
    for field in ("rgba", "emission", "specular", "shininess", "reflectance", "metallic", "roughness"):
        setattr(twin, field, getattr(plain, field))
    textures = list(twin.textures)
    textures[_TEX_RGB] = PLAIN_TEXTURE
    twin.textures = textures


def _uniform(rng: np.random.Generator, scale: tuple[float, float]) -> float:
    lo, hi = scale
    if lo > hi or lo <= 0:
        raise ValueError(f"scale range {scale} must satisfy 0 < low <= high")
    return float(rng.uniform(lo, hi))


def _visual_key(rng: np.random.Generator) -> int:
    """A seed drawn from a copy of `rng` moved far ahead: `rng` itself is not consumed."""
    bit_generator = rng.bit_generator
    if hasattr(bit_generator, "jumped"):
        ahead = bit_generator.jumped()
    else:
        ahead = type(bit_generator)()
        ahead.state = bit_generator.state
    return int(np.random.Generator(ahead).integers(2**63))


def _id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    return mujoco.mj_name2id(model, kind, name)


class Randomizer:
    """Applies a `DomainRandomization` to one MjModel; object colours are set by the tasks."""

    def __init__(self, model: mujoco.MjModel, config: DomainRandomization, object_geoms: list[int],
                 fixed_cameras: list[int], arm_rgb: Sequence[float] | None = None,
                 cameras: tuple[str, ...] = ()):
        """`arm_rgb` is the printed parts' nominal colour; `cameras` the observed cameras (image noise)."""
        self.model = model
        self.config = config
        self.object_geoms = np.array(object_geoms, dtype=int)
        self.fixed_cameras = np.array(fixed_cameras, dtype=int)
        self.cameras = cameras
        self.table_material = model.geom_matid[model.geom("table").id]
        self.friction_geoms = np.flatnonzero(model.geom_contype > 0)
        extra = {_id(model, mujoco.mjtObj.mjOBJ_LIGHT, extra_light_name(i)) for i in range(config.extra_lights)}
        self.extra_lights = np.array(sorted(extra), dtype=int)
        self.base_lights = np.array([i for i in range(model.nlight) if i not in extra], dtype=int)
        self.surfaces = self._surface_textures()
        self.nominal_arm_rgb = None if arm_rgb is None else np.asarray(arm_rgb, dtype=float)
        self.arm_rgb = self.nominal_arm_rgb
        self.printed_material = _id(model, mujoco.mjtObj.mjOBJ_MATERIAL, "so101_printed")
        self.printed_geoms = self._printed_geoms()
        self.distractors = Distractors(model, config.distractors) if config.distractors[1] else None
        self.image_noise = ImageNoise(config.image_color, config.image_blur, config.image_blur_prob,
                                      config.image_jpeg_quality, config.image_jpeg_prob, config.image_noise)
        self.distractor_bodies = [] if self.distractors is None else self.distractors.bodies.tolist()
        self._distractor_rng = np.random.default_rng(0)
        self.rebase()

    def rebase(self) -> None:
        """Take the model as it stands as the nominal scene (after an edit: a calibrated camera, a shifted light)."""
        self._nominal = {
            name: getattr(self.model, name).copy()
            for name in ("light_diffuse", "light_dir", "light_pos", "light_active", "mat_rgba", "mat_texid",
                         "geom_matid", "mat_texrepeat", "mat_texuniform", "cam_pos", "cam_quat", "cam_fovy",
                         "cam_intrinsic", "geom_friction", "geom_rgba", "geom_type", "geom_size", "geom_rbound",
                         "geom_aabb", "body_mass", "body_inertia", "body_pos", "body_quat")
        }
        self._nominal_headlight = self.model.vis.headlight.diffuse.copy()

    def _surface_textures(self) -> dict[str, tuple[np.ndarray, int, dict[str, list[int]]]]:
        """Per surface that may be textured: its geoms, its textured material and the texture ids of each family."""
        c, m = self.config, self.model
        images = {"table": ("table", c.table_images), "wall": ("background", c.background_images)}
        surfaces = {}
        for surface in SURFACES:
            plain = _id(m, mujoco.mjtObj.mjOBJ_MATERIAL, surface)
            textured = _id(m, mujoco.mjtObj.mjOBJ_MATERIAL, textured_material_name(surface))
            if plain < 0 or textured < 0:
                continue
            families = {f: [m.texture(texture_name(f, k)).id for k in range(c.texture_variants)]
                        for f in c.texture_families}
            if surface in images:
                kind, folder = images[surface]
                files = image_files(folder)
                if files:
                    families["image"] = [m.texture(image_texture_name(kind, i)).id for i in range(len(files))]
            if families:
                surfaces[surface] = (np.flatnonzero(m.geom_matid == plain), textured, families)
        return surfaces

    def _printed_geoms(self) -> np.ndarray:
        """The primitive look's printed parts: geoms of the robot's bodies in the printed colour."""
        if self.nominal_arm_rgb is None:
            return np.zeros(0, dtype=int)
        m = self.model
        robot = [_id(m, mujoco.mjtObj.mjOBJ_BODY, b) for b in ROBOT_BODIES]
        on_robot = np.isin(m.geom_bodyid, robot)
        printed = np.abs(m.geom_rgba[:, :3] - self.nominal_arm_rgb).max(axis=1) < 1e-6
        return np.flatnonzero(on_robot & printed)

    def restore(self) -> None:
        for name, value in self._nominal.items():
            getattr(self.model, name)[:] = value
        self.model.vis.headlight.diffuse[:] = self._nominal_headlight
        self.arm_rgb = self.nominal_arm_rgb
        if self.distractors is not None:
            self.distractors.restore()

    def apply(self, rng: np.random.Generator, servo: ServoParams) -> ServoParams:
        """Restore the nominal scene, perturb it, and return the servo parameters to use."""
        self.restore()
        key = _visual_key(rng)
        streams = {aspect: np.random.default_rng([key, i]) for i, aspect in enumerate(_ASPECTS)}
        self._lights(streams["lights"])
        self._extra_lights(streams["extra_lights"])
        self._surfaces(streams["surfaces"])
        self._arm(streams["arm"])
        self._cameras(streams["cameras"])
        self._distractor_rng = streams["distractors"]
        self.image_noise.start_episode(streams["image"], self.cameras)
        c, m = self.config, self.model
        m.geom_friction[self.friction_geoms, 0] *= _uniform(rng, c.friction_scale)
        for body in np.unique(m.geom_bodyid[self.object_geoms]):
            scale = _uniform(rng, c.object_mass_scale)
            m.body_mass[body] *= scale
            m.body_inertia[body] *= scale
        return dataclasses.replace(
            servo,
            kp_per_p=servo.kp_per_p * _uniform(rng, c.servo_gain_scale),
            damping=servo.damping * _uniform(rng, c.servo_damping_scale),
        )

    # Each aspect draws the same numbers whatever its amplitudes, so one option's setting never shifts another's.
    def _lights(self, rng: np.random.Generator) -> None:
        c, m, lights = self.config, self.model, self.base_lights
        gain, head_gain = 1 + c.light_intensity * rng.uniform(-1, 1, 2)
        tint = 1 + c.light_color * rng.uniform(-1, 1, 3)
        m.light_diffuse[lights] *= gain * tint
        m.vis.headlight.diffuse[:] *= head_gain * tint
        m.light_dir[lights] += c.light_direction * rng.uniform(-1, 1, (len(lights), 3))
        m.light_dir[lights, 2] = -np.abs(m.light_dir[lights, 2])  # keep lights pointing down
        m.light_pos[lights] += c.light_position * rng.uniform(-1, 1, (len(lights), 3))

    def _extra_lights(self, rng: np.random.Generator) -> None:
        c, m = self.config, self.model
        active = int(rng.integers(0, len(self.extra_lights) + 1))
        for i, light in enumerate(self.extra_lights):
            pos = np.array([rng.uniform(*r) for r in EXTRA_LIGHT_BOX])
            target = np.array([rng.uniform(*r) for r in LIGHT_TARGET_BOX])
            gain = rng.uniform(0.1, 1.0) * c.extra_light_intensity
            tint = 1 + c.light_color * rng.uniform(-1, 1, 3)
            m.light_pos[light], m.light_dir[light] = pos, (target - pos) / np.linalg.norm(target - pos)
            m.light_diffuse[light] = gain * tint
            m.light_active[light] = i < active

    def _surfaces(self, rng: np.random.Generator) -> None:
        c, m = self.config, self.model
        table_tint = c.table_color * rng.uniform(-1, 1, 3)
        m.mat_rgba[self.table_material, :3] = np.clip(m.mat_rgba[self.table_material, :3] + table_tint, 0, 1)
        probability = {"table": c.table_texture, "floor": c.floor_texture, "wall": c.wall_texture}
        for surface in SURFACES:
            draw, pick, variant, scale = rng.random(), rng.random(), rng.random(), rng.uniform(*c.texture_scale)
            if surface not in self.surfaces or draw >= probability[surface]:
                continue
            geoms, material, families = self.surfaces[surface]
            family = sorted(families)[int(pick * len(families))]
            textures = families[family]
            m.geom_matid[geoms] = material
            m.mat_texid[material, _TEX_RGB] = textures[int(variant * len(textures))]
            if family == "image":  # a photo spans the surface's face once; patterns tile at a random scale
                m.mat_texuniform[material], m.mat_texrepeat[material] = 0, (1.0, 1.0)
            else:
                m.mat_texuniform[material], m.mat_texrepeat[material] = 1, (scale, scale)
            # The texture carries the colour; the table keeps its tint jitter over it.
            base = np.ones(3) + (table_tint if surface == "table" else 0)
            m.mat_rgba[material, :3] = np.clip(base, 0, 1)

    def _arm(self, rng: np.random.Generator) -> None:
        c, m = self.config, self.model
        pick, jitter = rng.random(), rng.uniform(-1, 1, 3)
        if self.nominal_arm_rgb is None:
            return
        named = c.arm_colors[int(pick * len(c.arm_colors))] if c.arm_colors else None
        base = np.array(ARM_COLORS[named]) if named else self.nominal_arm_rgb
        self.arm_rgb = np.clip(base + c.arm_color * jitter, 0, 1)
        if self.printed_material >= 0:
            m.mat_rgba[self.printed_material, :3] = self.arm_rgb
        m.geom_rgba[self.printed_geoms, :3] = self.arm_rgb

    def _cameras(self, rng: np.random.Generator) -> None:
        c, m = self.config, self.model
        for cam in range(m.ncam):
            shift, axis = rng.uniform(-1, 1, 3), rng.normal(size=3)
            angle, zoom = rng.uniform(-1, 1), 1 + c.camera_fov * rng.uniform(-1, 1)
            if cam in self.fixed_cameras:
                m.cam_pos[cam] += c.camera_position * shift
                if c.camera_rotation:
                    delta = np.zeros(4)
                    mujoco.mju_axisAngle2Quat(delta, axis, c.camera_rotation * angle)
                    mujoco.mju_mulQuat(m.cam_quat[cam], delta, m.cam_quat[cam].copy())
            if m.cam_sensorsize[cam, 1] > 0:  # intrinsics from a camera file: the focal length
                m.cam_intrinsic[cam, :2] /= zoom
            else:
                m.cam_fovy[cam] = np.degrees(2 * np.arctan(np.tan(np.radians(m.cam_fovy[cam]) / 2) * zoom))

    def place_distractors(self, data: mujoco.MjData, task_bodies: Sequence[int], tcp_xy: np.ndarray) -> int:
        """After the task placed its objects (and `mj_forward`): put this episode's distractors on the table."""
        if self.distractors is None:
            return 0
        m = self.model
        footprints = []
        for body in task_bodies:
            geoms = np.flatnonzero(m.geom_bodyid == body)
            radius = max(np.linalg.norm(m.geom_pos[g, :2]) + m.geom_rbound[g] for g in geoms)
            footprints.append(Footprint(data.xpos[body, :2].copy(), float(radius),
                                        [m.geom_rgba[g, :3].copy() for g in geoms]))
        cameras = [data.cam_xpos[cam].copy() for cam in self.fixed_cameras]
        return self.distractors.place(self._distractor_rng, footprints, cameras, tcp_xy)

    def jitter_color(self, rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
        """A named colour with this episode's jitter (tasks colour their objects with it)."""
        # Drawn even at zero amplitude: the episode's later draws (object poses) do not depend on it.
        return np.clip(np.asarray(rgb) + self.config.object_color * rng.uniform(-1, 1, 3), 0, 1)


def preset(name: str) -> DomainRandomization:
    """A named configuration (`so101lab collect --randomization`): see PRESETS."""
    if name not in PRESETS:
        raise ValueError(f"unknown randomization preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]()


def _robust_training() -> DomainRandomization:
    from so101lab.envs.robustness import training_randomization

    return training_randomization()


PRESETS: dict[str, Callable[[], DomainRandomization]] = {
    "default": DomainRandomization,
    "none": DomainRandomization.none,
    "no-visual": lambda: DomainRandomization().without_visual(),
    "robust-train": _robust_training,  # the robustness benchmark's training scenes (so101lab/envs/robustness.py)
}
