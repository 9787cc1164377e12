"""One registry of model builders, filled by the `register_model` decorator (as in timm).

A builder is a function `name(num_classes=200, **options) -> TinyvizModel`; its name is the
model's name and the first line of its docstring is the model's description.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinyviz.models.base import TinyvizModel

Builder = Callable[..., TinyvizModel]


@dataclass(frozen=True)
class ModelSpec:
    """What the app shows about a model before building it, and how to build it."""

    name: str
    family: str
    source: str
    description: str
    pretrained: bool
    builder: Builder


class UnknownModelError(KeyError, ValueError):
    """Raised for a name nobody registered; a KeyError and a ValueError, with a plain message."""

    def __str__(self) -> str:
        return str(self.args[0])


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    *, family: str, source: str, name: str | None = None
) -> Callable[[Builder], Builder]:
    """Register the decorated builder under its function name (or `name`).

    `pretrained` is read from the builder's signature: transfer builders take
    `pretrained: bool = True`. Registering a name twice is an error, so two files can never
    silently shadow each other.
    """

    def decorate(builder: Builder) -> Builder:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered")
        doc = inspect.getdoc(builder) or ""
        _REGISTRY[key] = ModelSpec(
            name=key,
            family=family,
            source=source,
            description=doc.splitlines()[0] if doc else key,
            pretrained="pretrained" in inspect.signature(builder).parameters,
            builder=builder,
        )
        return builder

    return decorate


def names() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_REGISTRY)


def spec(name: str) -> ModelSpec:
    """The spec of `name`; the error for an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(names())
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}") from None


def create(name: str, num_classes: int = 200, **options: Any) -> TinyvizModel:
    """Build model `name` with a `num_classes` head; unknown options raise TypeError."""
    return spec(name).builder(num_classes=num_classes, **options)
