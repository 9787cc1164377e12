"""A reduced Inception-v3 for 64x64 inputs (seeds 000 and 004).

The factorised modules of Szegedy et al., "Rethinking the Inception Architecture" (2016):
Fig. 5 (5x5 as two 3x3) at 32x32, Fig. 6 (nxn as 1xn then nx1) at 16x16, Fig. 7 (parallel
1x3 and 3x1) at 8x8, with "inception dim" grid reductions between them. Every conv is
conv -> BN -> ReLU (seed 004: BN before every ReLU). Widths are about half of Inception-v3's
and no branch is narrower than 32 channels, so the GPU is kept busy with few, wide kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tinyviz.models.base import TinyvizModel
from tinyviz.models.layers import Concat, ConvBNReLU
from tinyviz.models.preprocess import make_normalize
from tinyviz.models.registry import register_model

Built = tuple[nn.Module, int]  # a module and its number of output channels


def chain(
    cin: int, widths: Sequence[int], kernels: Sequence[Any], stride: int = 1
) -> nn.Sequential:
    """Consecutive ConvBNReLUs; only the last one is strided, so a branch reduces the grid once."""
    layers = []
    for i, (width, kernel) in enumerate(zip(widths, kernels, strict=True)):
        last = i == len(widths) - 1
        layers.append(ConvBNReLU(cin, width, kernel, stride if last else 1))
        cin = width
    return nn.Sequential(*layers)


class PoolProjection(nn.Sequential):
    """The pool branch, avgpool 3x3 -> 1x1 conv -> BN -> ReLU, computed as conv, pool, BN, ReLU.

    A bias-free 1x1 conv and an average pool are both linear, so they commute; pooling the
    narrow projected map instead of the wide input is the same function at a fraction of the
    memory traffic (average pooling was a third of the GPU time the other way round).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=False)


def fig5(cin: int, b1: int, b3: tuple[int, int], b33: tuple[int, int], pool: int) -> Built:
    """1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | avgpool -> 1x1."""
    module = Concat(
        b1x1=ConvBNReLU(cin, b1, 1),
        b3x3=chain(cin, b3, (1, 3)),
        b3x3dbl=chain(cin, (b33[0], b33[1], b33[1]), (1, 3, 3)),
        pool=PoolProjection(cin, pool),
    )
    return module, b1 + b3[1] + b33[1] + pool


def fig6(cin: int, mid: int, out: int, n: int) -> Built:
    """1x1 | 1x1 -> 1xn -> nx1 | 1x1 -> nx1 -> 1xn -> nx1 -> 1xn | avgpool -> 1x1; 4 x out."""
    row, col = (1, n), (n, 1)
    module = Concat(
        b1x1=ConvBNReLU(cin, out, 1),
        bnxn=chain(cin, (mid, mid, out), (1, row, col)),
        bnxn_dbl=chain(cin, (mid, mid, mid, mid, out), (1, col, row, col, row)),
        pool=PoolProjection(cin, out),
    )
    return module, 4 * out


def split_1x3_3x1(cin: int, width: int) -> Concat:
    return Concat(b1x3=ConvBNReLU(cin, width, (1, 3)), b3x1=ConvBNReLU(cin, width, (3, 1)))


def fig7(cin: int, b1: int, b3: int, b33: tuple[int, int], pool: int) -> Built:
    """1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x3 -> (1x3, 3x1) | avgpool -> 1x1."""
    module = Concat(
        b1x1=ConvBNReLU(cin, b1, 1),
        b3x3=nn.Sequential(ConvBNReLU(cin, b3, 1), split_1x3_3x1(b3, b3)),
        b3x3dbl=nn.Sequential(chain(cin, b33, (1, 3)), split_1x3_3x1(b33[1], b33[1])),
        pool=PoolProjection(cin, pool),
    )
    return module, b1 + 2 * b3 + 2 * b33[1] + pool


def grid_reduction(cin: int, b3: int, b33: tuple[int, int]) -> Built:
    """Halve the grid, widen the channels: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | maxpool/2 (Fig. 10)."""
    module = Concat(
        b3x3=ConvBNReLU(cin, b3, 3, stride=2),
        b3x3dbl=chain(cin, (b33[0], b33[1], b33[1]), (1, 3, 3), stride=2),
        pool=nn.MaxPool2d(3, stride=2, padding=1),
    )
    return module, b3 + b33[1] + cin


def factorised_grid_reduction(cin: int, b3: tuple[int, int], bn: int, n: int) -> Built:
    """1x1 -> 3x3/2 | 1x1 -> 1xn -> nx1 -> 3x3/2 | maxpool/2."""
    module = Concat(
        b3x3=chain(cin, b3, (1, 3), stride=2),
        bnxn=chain(cin, (bn, bn, bn, bn), (1, (1, n), (n, 1), 3), stride=2),
        pool=nn.MaxPool2d(3, stride=2, padding=1),
    )
    return module, b3[1] + bn + cin


def stem() -> Built:
    """conv3x3-32, conv3x3-64, maxpool 2 (64 -> 32), conv1x1-80, conv3x3-128."""
    layers = nn.Sequential(
        ConvBNReLU(3, 32),
        ConvBNReLU(32, 64),
        nn.MaxPool2d(2),
        ConvBNReLU(64, 80, 1),
        ConvBNReLU(80, 128),
    )
    return layers, 128


class InceptionV3Like(TinyvizModel):
    """stem, 2 x Fig. 5 (32x32), reduction, 3 x Fig. 6 (16x16), reduction, 2 x Fig. 7 (8x8)."""

    channel_layers = (
        "stem", "mixed_32a", "mixed_32b", "reduce_16", "mixed_16a", "mixed_16b", "mixed_16c",
        "reduce_8", "mixed_8a", "mixed_8b",
    )  # fmt: skip
    gradcam_layer = "mixed_8b"

    def layer_title(self, name: str) -> str:
        """Stages at 32, 16 and 8 pixels of Inception modules, with reductions between."""
        titles = {"stem": "Stem (5 convs)", "reduce_16": "Reduction 1", "reduce_8": "Reduction 2"}
        if name in titles:
            return titles[name]
        if name.startswith("mixed_"):
            stage = {"32": 1, "16": 2, "8": 3}[name[6:-1]]
            return f"Stage {stage}, module {ord(name[-1]) - ord('a') + 1}"
        return super().layer_title(name)

    def __init__(
        self, num_classes: int = 200, *, n: int = 3, dropout: float = 0.2, norm: str = "channel"
    ) -> None:
        super().__init__()
        if n % 2 == 0:
            raise ValueError(f"n must be odd (1xn convs keep the grid size), got {n}")
        self.normalize = make_normalize(norm)
        self.stem, c = stem()
        self.mixed_32a, c = fig5(c, 64, (48, 64), (64, 96), 32)
        self.mixed_32b, c = fig5(c, 64, (48, 64), (64, 96), 64)
        self.reduce_16, c = grid_reduction(c, 192, (64, 96))
        self.mixed_16a, c = fig6(c, 96, 144, n)
        self.mixed_16b, c = fig6(c, 112, 144, n)
        self.mixed_16c, c = fig6(c, 112, 144, n)
        self.reduce_8, c = factorised_grid_reduction(c, (128, 192), 128, n)
        self.mixed_8a, c = fig7(c, 160, 192, (224, 192), 96)
        self.mixed_8b, c = fig7(c, 160, 192, (224, 192), 96)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.normalize(x))
        x = self.reduce_16(self.mixed_32b(self.mixed_32a(x)))
        x = self.reduce_8(self.mixed_16c(self.mixed_16b(self.mixed_16a(x))))
        x = self.mixed_8b(self.mixed_8a(x))
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))


@register_model(family="inception", source="000, 004")
def inception_v3_like(num_classes: int = 200, **options: Any) -> InceptionV3Like:
    """Reduced Inception-v3: factorised modules, BN before every ReLU, global average pool."""
    return InceptionV3Like(num_classes, **options)
