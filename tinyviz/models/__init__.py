"""The tinyviz model zoo: one registry of Tiny ImageNet classifiers.

>>> model = create("resnet18", num_classes=200)
>>> names()  # every buildable name

Importing this package imports each family's module, whose `@register_model` builders fill
the registry.
"""

from tinyviz.models import (  # noqa: F401  (imported for their registrations)
    cnn,
    efficientnet,
    googlenet,
    inception,
    linear,
    resnet,
    tv_resnet,
    vgg,
)
from tinyviz.models.base import TinyvizModel
from tinyviz.models.preprocess import Normalize
from tinyviz.models.registry import (
    ModelSpec,
    check_options,
    create,
    names,
    register_model,
    spec,
)
from tinyviz.models.stats import flops_per_image, param_count

__all__ = [
    "ModelSpec",
    "Normalize",
    "TinyvizModel",
    "check_options",
    "create",
    "flops_per_image",
    "names",
    "param_count",
    "register_model",
    "spec",
]
