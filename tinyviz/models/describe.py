"""The inspectable layers of a model, named for a student: stage, block, resolution, channels.

Module names (`_blocks.15`, `layer4`) are the code's; a visitor understands "Stage 7, block
1 · 7×7 · 320 channels". The stage and block come from the model (`layer_title`), the
resolution and channel count from one forward pass of a blank 64 x 64 image with a hook on
every layer, so they are what the model really computes (EfficientNet resizes its input, so
its maps are larger than 64 x 64 would suggest).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import nn

from tinyviz.runtime.locks import model_lock

INPUT = 64


@dataclass(frozen=True)
class LayerInfo:
    """One inspectable layer: its module `name` and what a page shows for it."""

    name: str
    title: str
    resolution: tuple[int, int]
    channels: int

    @property
    def label(self) -> str:
        h, w = self.resolution
        return f"{self.title} · {h}×{w} · {self.channels} channels"


def inspectable(model: nn.Module) -> list[str]:
    """The channel layers, then the Grad-CAM layer when it is not one of them."""
    names = list(getattr(model, "channel_layers", ()))
    cam = getattr(model, "gradcam_layer", None)
    return names + ([cam] if cam and cam not in names else [])


def describe_layers(model: nn.Module, size: int = INPUT) -> list[LayerInfo]:
    """`LayerInfo` of every inspectable layer, in the model's order ([] for none).

    The model may be shared between dashboard sessions: the pass holds its `model_lock`,
    the hooks act only in this thread, and the model's train/eval mode is restored.
    """
    names = inspectable(model)
    if not names:
        return []
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"the model has no layer {missing[0]!r}")
    shapes = _output_shapes(model, [modules[n] for n in names], size)
    title = getattr(model, "layer_title", lambda n: n)
    return [
        LayerInfo(name, title(name), (int(s[-2]), int(s[-1])), int(s[1]))
        for name, s in zip(names, shapes, strict=True)
    ]


def _output_shapes(model: nn.Module, modules: list[nn.Module], size: int) -> list[torch.Size]:
    shapes: dict[int, torch.Size] = {}
    owner = threading.get_ident()

    def hook_for(i: int):
        def hook(mod, inputs, output) -> None:
            if threading.get_ident() == owner and i not in shapes:
                shapes[i] = output.shape

        return hook

    device = next(model.parameters()).device
    x = torch.zeros(1, 3, size, size, device=device)
    with model_lock(model):
        handles = [m.register_forward_hook(hook_for(i)) for i, m in enumerate(modules)]
        was_training = model.training
        try:
            model.eval()
            with torch.inference_mode():
                model(x)
        finally:
            model.train(was_training)
            for h in handles:
                h.remove()
    if len(shapes) != len(modules):
        raise ValueError("a layer was not reached by the forward pass")
    bad = [s for s in shapes.values() if len(s) != 4]
    if bad:
        raise ValueError(f"an inspectable layer has an output of shape {tuple(bad[0])}")
    return [shapes[i] for i in range(len(modules))]


def part_title(model: nn.Module, name: str) -> str:
    """A visitor's name for a module, or for a group of modules joined by "+" (the layer
    groups of `explain.sanity`): the model's `layer_title` where it has one, else what the
    group is for ("Classifier", "Stem (first layers)"). The module name stays the code's,
    for help texts."""
    parts = name.split("+")
    titled = getattr(model, "layer_title", None)
    if titled is not None and len(parts) == 1:
        title = titled(name)
        if title != name:
            return title
    heads = tuple(getattr(model, "head_modules", ()))
    if all(any(p == h or p.startswith(h + ".") for h in heads) for p in parts):
        return "Classifier (the last layer)"
    if name == "stem":
        return "Stem (the first layers)"
    return "Layers between the last block and the classifier"
