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

from ..config import AugmentConfig


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
        s = cfg.crop / 64  # pixels of a 64 px image: the same fraction at any image size
        corner_x = torch.where(torch.rand(n, device=dev, generator=gen) < 0.5, -1.0, 1.0)
        corner_y = torch.where(torch.rand(n, device=dev, generator=gen) < 0.5, -1.0, 1.0)
        scale = torch.where(cropped, s, 1.0)
        tx = torch.where(cropped, corner_x * (1 - s), tx)
        ty = torch.where(cropped, corner_y * (1 - s), ty)
    fx = torch.ones(n, device=dev)
    if cfg.flip:
        fx = torch.where(torch.rand(n, device=dev, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos * fx, -sin, tx], 1), torch.stack([sin * fx, cos, ty], 1)], 1
    )
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


def mix(
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: AugmentConfig,
    gen: torch.Generator,
    rng: np.random.Generator,
):
    """Mixup or CutMix of a batch with a shuffled copy of itself.

    Returns `(x, y_a, y_b, lam)`; the loss is `lam * CE(y_a) + (1 - lam) * CE(y_b)`.
    Batches left unmixed come back with `lam = 1`.
    """
    drawn = draw_mix(cfg, rng)
    if drawn is None:
        return x, y, y, 1.0
    mode, lam = drawn
    perm = torch.randperm(x.shape[0], device=x.device, generator=gen)
    x, lam = mix_with(x, x[perm], mode, lam, rng)
    return x, y, y[perm], lam


def draw_mix(cfg: AugmentConfig, rng: np.random.Generator) -> tuple[str, float] | None:
    """Whether to mix one batch, and how: `(mode, lam)`, or None to leave it as it is."""
    modes = [m for m, a in (("mixup", cfg.mixup), ("cutmix", cfg.cutmix)) if a > 0]
    if not modes or rng.random() >= cfg.mix_prob:
        return None
    mode = modes[rng.integers(len(modes))]
    alpha = cfg.mixup if mode == "mixup" else cfg.cutmix
    return mode, float(rng.beta(alpha, alpha))


def mix_with(
    x: torch.Tensor, other: torch.Tensor, mode: str, lam: float, rng: np.random.Generator
) -> tuple[torch.Tensor, float]:
    """`x` blended with (mixup) or pasted over by a box of (cutmix) `other`; returns the
    mixed batch and the fraction of `x` left (CutMix's box is clipped at the edges)."""
    if mode == "mixup":
        return x * lam + other * (1 - lam), lam
    h, w = x.shape[-2:]
    cut = math.sqrt(1 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = other[:, :, y0:y1, x0:x1]
    return x, 1 - (y1 - y0) * (x1 - x0) / (h * w)


def preview(
    image: np.ndarray, cfg: AugmentConfig, pool: np.ndarray, n: int = 8, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """`n` versions of one `64 x 64 x 3` uint8 image as training could make them.

    Each copy is augmented as in a batch; with mixup or CutMix on, each copy is then mixed
    (with probability `mix_prob`) with its own random partner from `pool` (N x 64 x 64 x 3
    uint8, e.g. the training images), augmented the same way. Training draws one mixing
    ratio per batch; here each copy draws its own, to show the range. Returns the images
    (`n x 64 x 64 x 3` uint8) and a caption for each ("" when unmixed).
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = augment(_floats(np.repeat(np.asarray(image)[None], n, 0)), cfg, gen)
    captions = [""] * n
    if (cfg.mixup > 0 or cfg.cutmix > 0) and len(pool):
        partners = np.asarray(pool[np.sort(rng.choice(len(pool), n))])
        other = augment(_floats(partners), cfg, gen)
        rows = []
        for i in range(n):
            drawn = draw_mix(cfg, rng)
            if drawn is None:
                rows.append(x[i : i + 1])
                continue
            mixed, lam = mix_with(x[i : i + 1], other[i : i + 1], drawn[0], drawn[1], rng)
            rows.append(mixed)
            captions[i] = f"{drawn[0]}: {lam:.0%} this image"
        x = torch.cat(rows)
    out = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return out.numpy(), captions


def _floats(images: np.ndarray) -> torch.Tensor:
    """`N x H x W x 3` uint8 to `N x 3 x H x W` floats in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
