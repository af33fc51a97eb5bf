"""Texture pools of the randomised scene: procedural families and the user's own photos.

Textures cannot be created once a model is compiled (the renderer uploads them when its
context is made), so every texture an episode may show is added to the spec at build time and
an episode only switches which one a material uses (`Randomizer`). Procedural textures are
MuJoCo builtins (checker, gradient, speckled flat) or small NumPy images (smooth noise, wood
grain), each family in a few colour variants drawn from a fixed seed: the same config builds
the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mujoco
import numpy as np

TEXTURE_FAMILIES = ("checker", "gradient", "dots", "noise", "grain")
TEXTURE_SIZE = 128  # px per side of a procedural texture (tiles: its scale is the material's texrepeat)
IMAGE_MAX_SIDE = 512  # px: user photos are downsized to this (renderer memory and upload time)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
COLOR_MARGIN = 0.3  # RGB distance a texture colour keeps from every object colour

Colors = Sequence[Sequence[float]]


POOL_PREFIX = "dr_"  # every pool texture's name starts with it
PLAIN_TEXTURE = f"{POOL_PREFIX}plain"  # white: the textured materials' placeholder


def texture_name(family: str, variant: int) -> str:
    return f"{POOL_PREFIX}{family}_{variant}"


def image_texture_name(kind: str, index: int) -> str:
    """`kind` is "table" or "background"."""
    return f"{POOL_PREFIX}{kind}_image_{index}"


def image_files(folder: str | Path | None) -> list[Path]:
    """The photos of a user folder, in a fixed order (their index is their texture's)."""
    if folder is None:
        return []
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"image folder {folder} has no {'/'.join(IMAGE_SUFFIXES)} files")
    return files


def random_color(rng: np.random.Generator, avoid: Colors = (), margin: float = COLOR_MARGIN) -> np.ndarray:
    """An RGB colour of any hue, moderately saturated like most surfaces, at least `margin` away
    from each colour of `avoid` (if one is found in 100 draws)."""
    import colorsys

    for _ in range(100):
        rgb = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.75), rng.uniform(0.15, 0.95)))
        if all(np.linalg.norm(rgb - np.asarray(a)) > margin for a in avoid):
            break
    return rgb


def _periodic_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Smooth noise in 0..1 that tiles (Gaussian low-pass in Fourier space); `scale` in px."""
    freq = np.fft.fftfreq(size)
    fx, fy = np.meshgrid(freq, freq)
    spectrum = np.fft.fft2(rng.standard_normal((size, size))) * np.exp(-2 * (np.pi * scale) ** 2 * (fx**2 + fy**2))
    field = np.fft.ifft2(spectrum).real
    return (field - field.min()) / max(np.ptp(field), 1e-9)


def noise_image(rng: np.random.Generator, avoid: Colors = ()) -> np.ndarray:
    """Two colours blended by smooth noise: stone, concrete, a stained desk."""
    a, b = random_color(rng, avoid), random_color(rng, avoid)
    t = _periodic_noise(rng, TEXTURE_SIZE, rng.uniform(2, 8))[..., None]
    return (255 * (a * (1 - t) + b * t)).astype(np.uint8)


def grain_image(rng: np.random.Generator, avoid: Colors = ()) -> np.ndarray:
    """Wavy stripes with fine streaks: wood grain, in random colours."""
    dark, light = random_color(rng, avoid), random_color(rng, avoid)
    x = np.arange(TEXTURE_SIZE) / TEXTURE_SIZE
    warp = _periodic_noise(rng, TEXTURE_SIZE, 10) * rng.uniform(0.5, 1.5)
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (int(rng.integers(3, 9)) * x[None, :] + warp))
    streaks = _periodic_noise(rng, TEXTURE_SIZE, 1.0)
    t = np.clip(rings**2 * 0.8 + 0.2 * streaks, 0, 1)[..., None]
    return (255 * (dark * (1 - t) + light * t)).astype(np.uint8)


def load_image(path: Path) -> np.ndarray:
    """A photo as RGB uint8, its longer side at most IMAGE_MAX_SIDE."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    scale = IMAGE_MAX_SIDE / max(bgr.shape[:2])
    if scale < 1:
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[..., ::-1])


def _add_image(spec: mujoco.MjSpec, name: str, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    texture = spec.add_texture(name=name, type=mujoco.mjtTexture.mjTEXTURE_2D, width=width, height=height,
                               nchannel=3)
    texture.data = np.ascontiguousarray(image).tobytes()


def _add_builtin(spec: mujoco.MjSpec, name: str, family: str, rng: np.random.Generator, avoid: Colors) -> None:
    rgb1, rgb2 = random_color(rng, avoid), random_color(rng, avoid)
    builtin = {"checker": mujoco.mjtBuiltin.mjBUILTIN_CHECKER, "gradient": mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
               "dots": mujoco.mjtBuiltin.mjBUILTIN_FLAT}[family]
    texture = spec.add_texture(name=name, type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=builtin,
                               width=TEXTURE_SIZE, height=TEXTURE_SIZE, rgb1=rgb1.tolist(), rgb2=rgb2.tolist())
    if family == "dots":  # a speckled laminate: flat colour with random marks of the second colour
        texture.mark = mujoco.mjtMark.mjMARK_RANDOM
        texture.random = float(rng.uniform(0.01, 0.1))
        texture.markrgb = rgb2.tolist()


def add_texture_pool(spec: mujoco.MjSpec, families: Sequence[str], variants: int, seed: int,
                     avoid: Colors = (), table_images: str | Path | None = None,
                     background_images: str | Path | None = None) -> None:
    """Add `variants` textures of each procedural family, one texture per user photo, and a plain
    white one that the textured materials carry until an episode picks theirs."""
    _add_image(spec, PLAIN_TEXTURE, np.full((8, 8, 3), 255, np.uint8))
    unknown = set(families) - set(TEXTURE_FAMILIES)
    if unknown:
        raise ValueError(f"unknown texture families {sorted(unknown)}; known: {TEXTURE_FAMILIES}")
    for family in families:
        for k in range(variants):
            # Seeded per (family, variant): a variant keeps its colours whatever other families are built.
            family_rng = np.random.default_rng([seed, TEXTURE_FAMILIES.index(family), k])
            name = texture_name(family, k)
            if family in ("noise", "grain"):
                _add_image(spec, name, (noise_image if family == "noise" else grain_image)(family_rng, avoid))
            else:
                _add_builtin(spec, name, family, family_rng, avoid)
    for kind, folder in (("table", table_images), ("background", background_images)):
        for i, path in enumerate(image_files(folder)):
            _add_image(spec, image_texture_name(kind, i), load_image(path))


def set_pool_texture_filter(renderer: mujoco.Renderer, model: mujoco.MjModel,
                            blend_mip_levels: bool = False) -> list[int]:
    """Have `renderer` sample each pool texture from its nearest mipmap level (GL_LINEAR_MIPMAP_NEAREST),
    or with `blend_mip_levels` blend the two nearest as MuJoCo does (GL_LINEAR_MIPMAP_LINEAR; for
    benchmarks); returns the texture ids set.

    On a software renderer the blend is a third of what a textured surface adds to a frame; the frames
    differ by under 0.1 of 255 on average (docs/randomization.md, "Texture filtering"). Only pool
    textures: a texture of the scene itself would keep MuJoCo's filter. Uses the renderer's GL context
    and texture handles, which mujoco.Renderer keeps in private attributes."""
    from OpenGL import GL

    ids = [i for i in range(model.ntex) if model.tex(i).name.startswith(POOL_PREFIX)
           and model.tex_type[i] == mujoco.mjtTexture.mjTEXTURE_2D]
    if not ids:
        return ids
    mode = GL.GL_LINEAR_MIPMAP_LINEAR if blend_mip_levels else GL.GL_LINEAR_MIPMAP_NEAREST
    renderer._gl_context.make_current()
    for i in ids:
        GL.glBindTexture(GL.GL_TEXTURE_2D, int(renderer._mjr_context.texture[i]))
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, mode)
    GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
    return ids
