"""Training augmentation: shapes and ranges kept, seeded, and ACT trains with it."""

from __future__ import annotations

import torch

from so101lab.policies.augment import color_jitter, random_shift


def _images() -> torch.Tensor:
    return torch.rand(2, 2, 3, 16, 24, generator=torch.Generator().manual_seed(0))


def test_shift_keeps_shape_and_dtype_and_is_seeded():
    images = (_images() * 255).to(torch.uint8)
    a = random_shift(images, 3, torch.Generator().manual_seed(1))
    b = random_shift(images, 3, torch.Generator().manual_seed(1))
    assert a.shape == images.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, images)
    assert random_shift(images, 0) is images


def test_color_jitter_stays_in_range_and_keeps_geometry():
    images = _images()
    out = color_jitter(images, 0.3, torch.Generator().manual_seed(2))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, images)
    assert torch.equal(out, color_jitter(images, 0.3, torch.Generator().manual_seed(2)))
    assert color_jitter(images, 0.0) is images
