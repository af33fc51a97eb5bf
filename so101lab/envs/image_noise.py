"""Camera-level corruptions of the observation images: colour jitter, blur, JPEG artefacts, pixel noise.

What a real USB camera adds and a renderer does not. Applied to the images the env returns
(what a policy sees and a dataset records), never to `render()`. Each episode draws, per camera,
a colour transform, a blur, whether and how hard to JPEG-compress, and a noise level; each step
then shifts a noise field drawn once per env by a random offset, which costs two saturating adds
instead of a million normal draws per frame (scripts/bench_env.py measures the total).

OpenCV runs on one thread in a process whose env corrupts images: its thread pool, on top of the
software renderer's threads, oversubscribed the cores and busy-waited, which cost more CPU than the
corruptions themselves (docs/randomization.md, "OpenCV threads"). The setting is process-wide.
The cameras' frames are corrupted in parallel threads instead, one per camera.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

NOISE_MARGIN = 32  # px of the noise field beyond the image: 33 x 33 shifts of it


@dataclass(frozen=True)
class CameraCorruption:
    """One episode's corruption of one camera."""

    color: np.ndarray | None  # 3x4 affine map of RGB in 0..255, or None
    blur_sigma: float  # px; 0: none
    jpeg_quality: int | None
    noise_std: float  # in 0..255 units; 0: none


def color_matrix(brightness: float, contrast: float, saturation: float, hue: float) -> np.ndarray:
    """3x4 affine RGB map: saturation about the luma, hue rotation about the grey axis (radians),
    contrast about mid-grey, then a brightness gain."""
    luma = np.array([0.299, 0.587, 0.114])
    sat = saturation * np.eye(3) + (1 - saturation) * np.tile(luma, (3, 1))
    axis = np.ones(3) / np.sqrt(3)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.cos(hue) * np.eye(3) + np.sin(hue) * cross + (1 - np.cos(hue)) * np.outer(axis, axis)
    linear = brightness * contrast * rot @ sat
    offset = brightness * (1 - contrast) * 127.5 * np.ones(3)
    return np.hstack([linear, offset[:, None]]).astype(np.float32)


class ImageNoise:
    """Draws each episode's corruptions and applies them to each observed frame."""

    def __init__(self, color: float, blur: float, blur_prob: float, jpeg_quality: tuple[int, int],
                 jpeg_prob: float, noise: float):
        self.color, self.blur, self.blur_prob = color, blur, blur_prob
        self.jpeg_quality, self.jpeg_prob, self.noise = jpeg_quality, jpeg_prob, noise
        self.enabled = bool(color or (blur and blur_prob) or jpeg_prob or noise)
        if self.enabled:
            import cv2

            cv2.setNumThreads(1)
        self._episode: dict[str, CameraCorruption] = {}
        self._pool: ThreadPoolExecutor | None = None  # made at the first multi-camera frame with corruptions
        self._rng = np.random.default_rng(0)
        self._fields: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # (h, w) -> normal field's +/- parts
        self._scaled: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # camera -> this episode's noise (+, -)

    def start_episode(self, rng: np.random.Generator, cameras: tuple[str, ...]) -> None:
        """Draw this episode's corruption of each camera (in the given order)."""
        self._episode, self._scaled = {}, {}
        if not self.enabled:
            return
        for camera in cameras:  # the same draws whatever the settings: one option never shifts another
            jitter, hue = rng.uniform(-1, 1, 3), rng.uniform(-1, 1)
            blur_draw, blur, jpeg_draw, quality, noise = rng.random(5)
            lo, hi = self.jpeg_quality
            self._episode[camera] = CameraCorruption(
                color=color_matrix(*(1 + self.color * jitter), self.color * hue) if self.color else None,
                blur_sigma=0.3 + blur * (self.blur - 0.3) if blur_draw < self.blur_prob and self.blur > 0.3 else 0.0,
                jpeg_quality=int(lo + quality * (hi - lo + 1 - 1e-9)) if jpeg_draw < self.jpeg_prob else None,
                noise_std=noise * self.noise * 255,
            )
        self._rng = np.random.default_rng(rng.integers(2**63))

    def apply(self, camera: str, image: np.ndarray) -> np.ndarray:
        """The corrupted frame of one camera (`apply_all` with one frame)."""
        return self.apply_all({camera: image})[camera]

    def apply_all(self, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each camera's corrupted frame, the cameras in parallel threads (OpenCV releases the GIL):
        up to about a point of wall time per step on 2 cores (docs/randomization.md, "OpenCV threads").
        Random draws happen here, in camera order, so the bytes do not depend on the threads.

        Works in place on a frame that is writable and C-contiguous (the env passes the renderer's
        fresh frames, which nothing else holds; others are copied first), because a new 1 MB array
        per operation cost more in page faults than the operations themselves."""
        jobs = []
        for camera, image in frames.items():
            corruption = self._episode.get(camera)
            if corruption is not None and not (image.flags.writeable and image.flags.c_contiguous):
                image = np.array(image, order="C")
            jobs.append((corruption, image, self._noise_window(camera, corruption, image.shape[:2])))
        if len(jobs) > 1 and self._episode:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=len(jobs) - 1, thread_name_prefix="image-noise")
            futures = [self._pool.submit(_corrupt, *job) for job in jobs[:-1]]
            images = [*(f.result() for f in futures), _corrupt(*jobs[-1])]
        else:
            images = [_corrupt(*job) for job in jobs]
        return dict(zip(frames, images, strict=True))

    def close(self) -> None:
        """Stop the threads (a later frame starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _noise_window(self, camera: str, corruption: CameraCorruption | None,
                      size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
        """This step's noise of `camera` (its positive and negative part), a random window of the field."""
        if corruption is None or corruption.noise_std < 0.5:
            return None
        height, width = size
        up, down = self._noise_fields(camera, height, width, corruption.noise_std)
        dy, dx = self._rng.integers(0, NOISE_MARGIN + 1, 2)
        window = (slice(dy, dy + height), slice(dx, dx + width))
        return up[window], down[window]

    def _noise_fields(self, camera: str, height: int, width: int, std: float) -> tuple[np.ndarray, np.ndarray]:
        """This episode's noise of `camera`, as its positive and its negative part (uint8 each)."""
        import cv2

        if camera not in self._scaled:
            key = (height, width)
            if key not in self._fields:  # drawn once per size from a fixed seed; episodes differ by scale and shift
                rng = np.random.default_rng([height, width])
                field = rng.standard_normal((height + NOISE_MARGIN, width + NOISE_MARGIN, 3), dtype=np.float32)
                self._fields[key] = (np.maximum(field, 0), np.maximum(-field, 0))
            positive, negative = self._fields[key]
            # Scale, round and saturate in one pass each (30x faster than NumPy's round/clip/astype, same bytes).
            self._scaled[camera] = (cv2.convertScaleAbs(positive, alpha=std), cv2.convertScaleAbs(negative, alpha=std))
        return self._scaled[camera]


def _corrupt(corruption: CameraCorruption | None, image: np.ndarray,
             noise: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """One frame through one episode's corruption of its camera, in place where the operation allows."""
    if corruption is None:
        return image
    import cv2

    if corruption.color is not None:
        image = cv2.transform(image, corruption.color, dst=image)  # saturates to 0..255
    if corruption.blur_sigma:
        # Sigma in px of a 480-line image, so a setting blurs as much at every image size.
        image = cv2.GaussianBlur(image, (0, 0), corruption.blur_sigma * image.shape[0] / 480, dst=image)
    if corruption.jpeg_quality is not None:
        # Channel swaps by cvtColor: a reversed view made the encoder copy it, 2.8x the codec's own time.
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR, dst=image)
        _, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, corruption.jpeg_quality])
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
    if noise is not None:
        up, down = noise
        # Saturating adds of the field's positive and negative parts: clip(image + noise) without int16 copies.
        image = cv2.subtract(cv2.add(image, up, dst=image), down, dst=image)
    return image
