"""One registry of model builders, filled by the `register_model` decorator (as in timm).

A builder is a function `name(num_classes=200, **options) -> TinyvizModel`; its name is the
model's name and the first line of its docstring is the model's description.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinyviz.errors import ConfigError, UnknownModelError
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


def check_options(name: str, options: dict[str, Any], num_classes: int = 200) -> None:
    """Refuse options the builder does not take or values it cannot use, in one line.

    Builders take `**options` and pass them down, so the only faithful check is to build:
    on PyTorch's meta device no memory is allocated and no weights are read (milliseconds).
    """
    spec(name)
    try:
        key = json.dumps(options, sort_keys=True)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: model options must be plain JSON values") from None
    problem = _build_problem(name, key, num_classes)
    if problem:
        raise ConfigError(f"{name} cannot be built with options {key}: {problem}")


@functools.lru_cache(maxsize=256)
def _build_problem(name: str, options_json: str, num_classes: int) -> str:
    import torch

    options = json.loads(options_json)
    if spec(name).pretrained:
        options["pretrained"] = False
    try:
        with torch.device("meta"):
            spec(name).builder(num_classes=num_classes, **options)
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return ""
