"""VGG-style networks of the seed projects: stacks of 3x3 convs and max pools, then fc layers."""

from __future__ import annotations

from typing import Any

from tinyviz.models.feedforward import FeedForwardNet
from tinyviz.models.registry import register_model

VGG_LIKE = (32, 32, "M", 64, 64, "M", 128, 128, "M")
VGG_BN = (64, 64, "M", 128, "M", 256, 256, "M")


@register_model(family="vgg", source="001")
def vgg_like(num_classes: int = 200, dropout: float = 0.2, **options: Any) -> FeedForwardNet:
    """Three blocks of two 3x3 convs (32, 64, 128 channels) and a 1024-unit fc layer."""
    return FeedForwardNet(num_classes, trunk=VGG_LIKE, hidden=(1024,), dropout=dropout, **options)


@register_model(family="vgg", source="000, 003")
def vgg_bn(num_classes: int = 200, dropout: float = 0.5, **options: Any) -> FeedForwardNet:
    """Five batch-normalised 3x3 convs (64 to 256 channels), fc 1024 and fc 512."""
    return FeedForwardNet(
        num_classes, trunk=VGG_BN, bn=True, hidden=(1024, 512), dropout=dropout, **options
    )
