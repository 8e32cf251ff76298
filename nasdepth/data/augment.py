"""Image augmentation for training batches only, applied to a whole batch on the device.

torchvision ``transforms.v2`` applied to a batch tensor draws one set of random parameters
per call, so every image of the batch would get the same flip, crop and angle. These are the
same transforms (``RandomHorizontalFlip(p)``, ``RandomCrop(size, padding)``,
``RandomRotation(degrees)``, ``ColorJitter(brightness, contrast, saturation)``) with the
parameters drawn per sample, vectorized, so a batch costs a few tensor ops and no Python
loop. The engine calls :func:`augment_batch` on training batches before standardization and
never on validation or test data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nasdepth.data.augment_config import AugmentConfig

__all__ = ["AugmentConfig", "augment_batch"]


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """A randomly augmented copy of the batch ``x`` (``(N, C, L)`` or ``(N, C, H, W)``)."""
    n = x.shape[0]
    dev = x.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=gen, device=dev) * (high - low) + low

    view = (n,) + (1,) * (x.dim() - 1)
    if cfg.flip:
        flip = torch.rand(n, generator=gen, device=dev) < cfg.flip
        x = torch.where(flip.view(view), x.flip(-1), x)
    if cfg.crop_padding:
        x = _random_crop(x, cfg.crop_padding, gen)
    if cfg.rotation and x.dim() == 4:
        angle = uniform(-cfg.rotation, cfg.rotation) * (math.pi / 180)
        cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1),
                             torch.stack([sin, cos, zero], 1)], 1).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.color_jitter and x.dim() == 4:
        s = cfg.color_jitter
        x = x * uniform(1 - s, 1 + s).view(view)  # brightness
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * uniform(1 - s, 1 + s).view(view) + mean  # contrast
        if x.shape[1] == 3:
            grey = x.mean(dim=1, keepdim=True)
            x = (x - grey) * uniform(1 - s, 1 + s).view(view) + grey  # saturation
    return x


def _random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad the last one or two dims by ``pad`` and cut the original size back out at a
    random integer offset per sample (gather by index: exact pixels, no interpolation)."""
    n, dev = x.shape[0], x.device
    spatial = x.shape[2:]
    padded = F.pad(x, [pad, pad] * len(spatial))
    idx_n = torch.arange(n, device=dev)
    offsets = [torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=dev) for _ in spatial]
    if len(spatial) == 1:
        cols = offsets[0][:, None] + torch.arange(spatial[0], device=dev)  # (N, L)
        out = padded[idx_n[:, None], :, cols]  # (N, L, C)
        return out.permute(0, 2, 1).contiguous()
    rows = offsets[0][:, None] + torch.arange(spatial[0], device=dev)  # (N, H)
    cols = offsets[1][:, None] + torch.arange(spatial[1], device=dev)  # (N, W)
    out = padded[idx_n[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()
