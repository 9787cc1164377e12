"""The reduced GoogLeNet of seed 002: a 3x3 conv and four Inception (v1) modules.

Filter counts are the seed's table; every conv is conv -> BN -> ReLU as the seed describes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tinyviz.models.base import TinyvizModel
from tinyviz.models.layers import Concat, ConvBNReLU
from tinyviz.models.preprocess import make_normalize
from tinyviz.models.registry import register_model

# 1x1, (3x3 reduce, 3x3), (5x5 reduce, 5x5), pool projection: seed 002's table.
MODULES = (
    (32, (48, 64), (8, 16), 16),
    (32, (48, 64), (8, 16), 16),
    (64, (96, 128), (16, 32), 32),
    (80, (120, 160), (20, 40), 40),
)


def inception_v1(
    cin: int, b1: int, b3: tuple[int, int], b5: tuple[int, int], pool: int
) -> tuple[Concat, int]:
    """1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | maxpool 3x3 -> 1x1 (Szegedy et al. 2015, Fig. 2b)."""
    module = Concat(
        b1x1=ConvBNReLU(cin, b1, 1),
        b3x3=nn.Sequential(ConvBNReLU(cin, b3[0], 1), ConvBNReLU(b3[0], b3[1], 3)),
        b5x5=nn.Sequential(ConvBNReLU(cin, b5[0], 1), ConvBNReLU(b5[0], b5[1], 5)),
        pool=nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU(cin, pool, 1)),
    )
    return module, b1 + b3[1] + b5[1] + pool


class GoogLeNetLike(TinyvizModel):
    """conv3x3-128 (64 -> 62), pool 4/2 (30), inc1, pool (15), inc2, inc3, pool (8), inc4, GAP."""

    channel_layers = ("stem", "inception1", "inception2", "inception3", "inception4")
    gradcam_layer = "inception4"

    def layer_title(self, name: str) -> str:
        if name == "stem":
            return "Stem (3×3 conv)"
        if name.startswith("inception"):
            return f"Inception module {name.removeprefix('inception')}"
        return super().layer_title(name)

    def __init__(
        self, num_classes: int = 200, *, dropout: float = 0.4, norm: str = "channel"
    ) -> None:
        super().__init__()
        self.normalize = make_normalize(norm)
        self.stem = ConvBNReLU(3, 128, 3, padding=0)
        self.pool1 = nn.MaxPool2d(4, stride=2, ceil_mode=True)
        self.inception1, c = inception_v1(128, *MODULES[0])
        self.pool2 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception2, c = inception_v1(c, *MODULES[1])
        self.inception3, c = inception_v1(c, *MODULES[2])
        self.pool3 = nn.MaxPool2d(2, stride=2, ceil_mode=True)  # 15 -> 8, as in the seed's table
        self.inception4, c = inception_v1(c, *MODULES[3])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.stem(self.normalize(x)))
        x = self.pool2(self.inception1(x))
        x = self.pool3(self.inception3(self.inception2(x)))
        x = self.inception4(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))


@register_model(family="inception", source="002")
def googlenet_like(num_classes: int = 200, **options: Any) -> GoogLeNetLike:
    """Reduced GoogLeNet: a 3x3 conv (128 channels) and four Inception-v1 modules."""
    return GoogLeNetLike(num_classes, **options)
