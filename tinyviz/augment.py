"""Batch augmentation as tensor ops on the training device.

On a GPU the whole training set lives in device memory, so augmentation must run there too:
a DataLoader with CPU workers would be the bottleneck. Every function takes a float batch
`(N, 3, H, W)` in [0, 1] and a `torch.Generator` on the batch's device, so a run is
reproducible from its seed. Per-batch scalars (mixing ratios) come from a NumPy generator on
the host, which costs no device synchronisation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import AugmentConfig


def augment(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Geometric then photometric augmentation of one batch."""
    if cfg.rotate > 0 or cfg.crop > 0:
        x = affine(x, cfg, gen)
    elif cfg.flip or cfg.translate > 0:
        x = flip_translate(x, cfg.flip, cfg.translate, gen)
    if cfg.brightness > 0 or cfg.contrast > 0:
        x = brightness_contrast(x, cfg.brightness, cfg.contrast, gen)
    return x


def _uniform(n: int, lo: float, hi: float, like: torch.Tensor, gen) -> torch.Tensor:
    return torch.rand(n, device=like.device, generator=gen) * (hi - lo) + lo


def flip_translate(x: torch.Tensor, flip: bool, shift: int, gen) -> torch.Tensor:
    """Random horizontal flip and integer shift in one gather, with reflection at the edges.

    Integer shifts move pixels exactly (no interpolation blur), which is what the seeds'
    Keras `width_shift_range` and the usual pad-and-crop do.
    """
    n, _, h, w = x.shape
    dev = x.device
    rows = torch.arange(h, device=dev).expand(n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    if flip:
        flipped = torch.rand(n, device=dev, generator=gen) < 0.5
        cols = torch.where(flipped[:, None], w - 1 - cols, cols)
    if shift > 0:
        dy = torch.randint(-shift, shift + 1, (n, 1), device=dev, generator=gen)
        dx = torch.randint(-shift, shift + 1, (n, 1), device=dev, generator=gen)
        rows = _reflect(rows + dy, h)
        cols = _reflect(cols + dx, w)
    idx_n = torch.arange(n, device=dev)[:, None, None]
    out = x[idx_n, :, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)  # channels-last memory, as the models want on a GPU


def _reflect(i: torch.Tensor, size: int) -> torch.Tensor:
    i = torch.where(i < 0, -i, i)
    return torch.where(i >= size, 2 * (size - 1) - i, i)


def affine(x: torch.Tensor, cfg: AugmentConfig, gen) -> torch.Tensor:
    """Flip, rotation, shift and seed 004's corner crops as one resampling per image."""
    n, _, h, w = x.shape
    dev = x.device
    angle = _uniform(n, -cfg.rotate, cfg.rotate, x, gen) * (math.pi / 180)
    scale = torch.ones(n, device=dev)
    tx = _uniform(n, -1, 1, x, gen) * (2 * cfg.translate / w)
    ty = _uniform(n, -1, 1, x, gen) * (2 * cfg.translate / h)
    if cfg.crop > 0:
        cropped = torch.rand(n, device=dev, generator=gen) < 0.5
        s = cfg.crop / w
        corner_x = torch.where(torch.rand(n, device=dev, generator=gen) < 0.5, -1.0, 1.0)
        corner_y = torch.where(torch.rand(n, device=dev, generator=gen) < 0.5, -1.0, 1.0)
        scale = torch.where(cropped, s, 1.0)
        tx = torch.where(cropped, corner_x * (1 - s), tx)
        ty = torch.where(cropped, corner_y * (1 - s), ty)
    fx = torch.ones(n, device=dev)
    if cfg.flip:
        fx = torch.where(torch.rand(n, device=dev, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * fx, -sin, tx], 1),
                         torch.stack([sin * fx, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)


def brightness_contrast(x: torch.Tensor, brightness: float, contrast: float, gen) -> torch.Tensor:
    """Random contrast around each image's mean, then a random brightness offset."""
    n = x.shape[0]
    if contrast > 0:
        c = _uniform(n, 1 - contrast, 1 + contrast, x, gen).view(n, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean
    if brightness > 0:
        x = x + _uniform(n, -brightness, brightness, x, gen).view(n, 1, 1, 1)
    return x.clamp(0, 1)


def mix(x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator,
        rng: np.random.Generator):
    """Mixup or CutMix of a batch with a shuffled copy of itself.

    Returns `(x, y_a, y_b, lam)`; the loss is `lam * CE(y_a) + (1 - lam) * CE(y_b)`.
    Batches left unmixed come back with `lam = 1`.
    """
    modes = [m for m, a in (("mixup", cfg.mixup), ("cutmix", cfg.cutmix)) if a > 0]
    if not modes or rng.random() >= cfg.mix_prob:
        return x, y, y, 1.0
    mode = modes[rng.integers(len(modes))]
    alpha = cfg.mixup if mode == "mixup" else cfg.cutmix
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], device=x.device, generator=gen)
    if mode == "mixup":
        return x * lam + x[perm] * (1 - lam), y, y[perm], lam
    h, w = x.shape[-2:]
    cut = math.sqrt(1 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, y, y[perm], lam
