"""The smallest convolutional baseline of the seed projects."""

from __future__ import annotations

from typing import Any

from tinyviz.models.feedforward import FeedForwardNet
from tinyviz.models.registry import register_model


@register_model(family="cnn", source="001, 003")
def simple_cnn(num_classes: int = 200, dropout: float = 0.2, **options: Any) -> FeedForwardNet:
    """Two 3x3 conv layers (32 channels), a max pool and a 1024-unit fully connected layer."""
    return FeedForwardNet(
        num_classes, trunk=(32, 32, "M"), hidden=(1024,), dropout=dropout, **options
    )
