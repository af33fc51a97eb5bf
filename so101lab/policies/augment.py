"""Training-time image augmentation shared by ACT and SmolVLA: random shift (a crop of a padded
image) and colour jitter, per sample and camera, drawn from the step's seeded generator.

Both are off by default for SmolVLA, as LeRobot's `image_transforms` are; ACT keeps its 4 px
shift (so101lab's ACT has always trained with it) and has colour jitter off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(images: Tensor, pixels: int, generator: torch.Generator | None = None) -> Tensor:
    """Translate each image [..., C, H, W] by up to `pixels` in x and y (edge-replicated borders)."""
    if pixels <= 0:
        return images
    shape = images.shape
    flat = images.reshape(-1, *shape[-3:])
    n, _, h, w = flat.shape
    padded = F.pad(flat.float() if not flat.is_floating_point() else flat, (pixels,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * pixels + 1, (2, n), generator=generator).tolist()
    out = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (x, y) in enumerate(zip(dx, dy))])
    return out.to(images.dtype).reshape(shape)


def color_jitter(images: Tensor, amount: float, generator: torch.Generator | None = None) -> Tensor:
    """Brightness, contrast and saturation each scaled by 1 +- `amount`, plus a per-channel gain of
    1 +- amount / 2 (white balance), per image; float images [..., 3, H, W] in 0..1."""
    if amount <= 0:
        return images
    shape = images.shape
    flat = images.reshape(-1, *shape[-3:])
    n = flat.shape[0]
    u = (torch.rand(n, 6, generator=generator) * 2 - 1).to(flat.device)
    brightness, contrast, saturation = (1 + amount * u[:, :3]).unbind(1)
    gain = 1 + 0.5 * amount * u[:, 3:]
    grey = (flat * torch.tensor([0.299, 0.587, 0.114], device=flat.device)[:, None, None]).sum(1, keepdim=True)
    out = grey + saturation[:, None, None, None] * (flat - grey)
    mean = grey.mean(dim=(2, 3), keepdim=True)
    out = mean + contrast[:, None, None, None] * (out - mean)
    out = out * brightness[:, None, None, None] * gain[:, :, None, None]
    return out.clamp(0, 1).reshape(shape)
