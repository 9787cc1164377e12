"""Batches from a split held whole on the training device.

Tiny ImageNet's training set is 1.2 GB as uint8: it fits in any training GPU's memory, so we
copy it there once and make batches by indexing, with no DataLoader workers in the hot path.
On the CPU the same code runs on CPU tensors.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class DeviceSplit:
    """A split's uint8 NHWC images and int64 labels as tensors on one device."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, device: torch.device, limit: int = 0
    ) -> None:
        if limit:
            images, labels = _balanced_subset(images, labels, limit)
        self.images = torch.from_numpy(np.array(images, dtype=np.uint8)).to(device)  # own copy
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.device = device

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images at `idx` as float NCHW in [0, 1] (channels-last in memory) with labels."""
        return to_float(self.images[idx]), self.labels[idx]

    def epoch(
        self,
        batch_size: int,
        gen: torch.Generator | None = None,
        drop_last: bool = True,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass in random order (or in order when `gen` is None).

        `shard=(rank, processes)`: this process's share of an order every process draws
        alike (same generator seed), as distributed training needs.
        """
        n = len(self)
        if gen is None:
            order = torch.arange(n, device=self.device)
        else:
            order = torch.randperm(n, device=self.device, generator=gen)
        rank, shards = shard
        if shards > 1:
            order = order[: n - n % shards][rank::shards]
            n = len(order)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            yield self.batch(order[start : start + batch_size])

    def steps(self, batch_size: int, drop_last: bool = True, shards: int = 1) -> int:
        n = len(self) // shards
        return n // batch_size if drop_last and n >= batch_size else -(-n // batch_size)


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC to float NCHW in [0, 1]; the permuted view keeps channels-last memory."""
    return images_u8.permute(0, 3, 1, 2).float().div_(255)


def to_model_input(rgb: np.ndarray) -> torch.Tensor:
    """`H x W x 3` (or `N x H x W x 3`) uint8 to a `1 x 3 x H x W` (`N x ...`) float in [0, 1].

    Models normalise internally, so this is only layout and scale.
    """
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim not in (3, 4) or a.shape[-1] != 3:
        raise ValueError(f"expected H x W x 3 uint8, got {a.dtype} {a.shape}")
    batch = a[None] if a.ndim == 3 else a
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2), np.float32) / 255)


def _balanced_subset(images: np.ndarray, labels: np.ndarray, limit: int):
    """The first `limit` images taken round-robin over classes, so every class is present."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    rank = np.empty(len(labels), dtype=np.int64)
    counts = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(len(labels)) - np.repeat(starts, counts)
    keep = np.sort(np.lexsort((labels, rank))[:limit])
    return images[keep], labels[keep]
