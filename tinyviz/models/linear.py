"""Pixel-level baselines from seed 001: logistic regression and a one-hidden-layer MLP."""

from __future__ import annotations

from typing import Any

from tinyviz.models.feedforward import FeedForwardNet
from tinyviz.models.registry import register_model


@register_model(family="linear", source="001")
def logreg(num_classes: int = 200, **options: Any) -> FeedForwardNet:
    """Multiclass logistic regression on the 12288 normalised pixels."""
    return FeedForwardNet(num_classes, **options)


@register_model(family="mlp", source="001")
def mlp(
    num_classes: int = 200, hidden: int = 1024, dropout: float = 0.2, **options: Any
) -> FeedForwardNet:
    """One hidden fully connected layer (1024 ReLU units) on the pixels."""
    return FeedForwardNet(num_classes, hidden=(hidden,), dropout=dropout, **options)
