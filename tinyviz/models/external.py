"""A model trained elsewhere, wrapped so that it is a `TinyvizModel` like the zoo's.

Every tinyviz model takes [0, 1] RGB pixels in NCHW and does its own preprocessing, and
the explainers rely on a split into penultimate features and a linear head, and on named
layers with (N, C, h, w) outputs. A network from torchvision, timm, ONNX, Keras or the
user's own code has none of that, so `ExternalModel` adds it around any `nn.Module`:

- `Preprocess` resizes, reorders the channels (RGB or BGR), normalises and, for Keras,
  turns the batch channels-last, as the run's config.json says (`Preprocessing`).
- The head is the network's final linear layer (`find_layers`: the last `nn.Linear` whose
  output is the network's output). Its input, caught by a hook during the forward pass, is
  `forward_features`; `forward_head` applies that layer. A Keras `Dense` becomes a real
  `nn.Linear` copy (`head`), so the contrastive and sanity code see the head they expect,
  and a softmax after it is left out: the head gives logits.
- The inspectable layers are found by one hooked forward pass (`find_layers`): for each
  resolution, the last module to finish with a 4-D output there, which is the end of a
  stage (a torchvision `layer2`, a timm `stages.1`). Keras outputs are channels-last, so a
  Keras layer is shown through an `NCHWView` module: the layer's hook routes its output
  through the view as NCHW and back, so hooks on the view see (and may change) the maps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import ConfigDict
from torch import nn

from tinyviz.models.base import TinyvizModel
from tinyviz.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

STRICT = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)
NORMALIZATIONS = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "tf": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    # pixels 0-255, as Keras' image_dataset_from_directory gives them to a model that
    # rescales them itself (a `Rescaling(1/255)` layer first)
    "255": ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255)),
}
PROBE = 64  # the side of the blank image the layers are found with (the data set's size)


@dataclass(frozen=True)
class Preprocessing:
    """What a network trained elsewhere expects, from [0, 1] RGB pixels: stored in the run.

    `mean` and `std` are in units of the [0, 1] pixel (a model trained on 0-255 pixels has
    std 1/255); `size` 0 leaves the images at the data set's size.
    """

    __pydantic_config__ = STRICT

    size: int = 0
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channels: Literal["rgb", "bgr"] = "rgb"
    layout: Literal["nchw", "nhwc"] = "nchw"

    def __post_init__(self) -> None:
        if not 0 <= self.size <= 1024:
            raise ValueError(f"input size must be 0 (as given) to 1024 pixels, not {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("normalisation needs 3 means and 3 positive standard deviations")

    def describe(self) -> str:
        """'resized to 224 (bicubic), ImageNet normalisation, RGB, NCHW' for a page."""
        size = f"resized to {self.size} ({self.interpolation})" if self.size else "size as given"
        named = next((k for k, v in NORMALIZATIONS.items() if v == (self.mean, self.std)), "custom")
        norm = {
            "imagenet": "ImageNet normalisation",
            "tf": "(x - 0.5) / 0.5 normalisation",
            "none": "pixels 0-1",
            "255": "pixels 0-255",
        }.get(named, "custom normalisation")
        return f"{size}, {norm}, {self.channels.upper()}, {self.layout.upper()}"


def parse_normalize(text: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """`imagenet`, `tf`, `none`, `255` or `M1,M2,M3:S1,S2,S3` as (mean, std); ValueError if
    not."""
    if text in NORMALIZATIONS:
        return NORMALIZATIONS[text]
    mean, sep, std = text.partition(":")
    try:
        m = tuple(float(v) for v in mean.split(","))
        s = tuple(float(v) for v in std.split(","))
    except ValueError:
        m = s = ()
    if not sep or len(m) != 3 or len(s) != 3 or min(s) <= 0:
        raise ValueError(
            "--normalize wants imagenet, tf, none, 255 or M1,M2,M3:S1,S2,S3 (positive S), "
            f"not {text!r}"
        )
    return m, s


class Preprocess(nn.Module):
    """[0, 1] RGB NCHW pixels to what the network was trained on (`Preprocessing`)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, p: Preprocessing) -> None:
        super().__init__()
        self.p = p
        self.register_buffer("mean", torch.tensor(p.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(p.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.p.size
        if size and x.shape[-2:] != (size, size):
            mode = self.p.interpolation
            corners = None if mode == "nearest" else False
            x = F.interpolate(x, size=(size, size), mode=mode, align_corners=corners)
        if self.p.channels == "bgr":
            x = x.flip(1)
            x = (x - self.mean.flip(1)) / self.std.flip(1)
        else:
            x = (x - self.mean) / self.std
        return x.permute(0, 2, 3, 1) if self.p.layout == "nhwc" else x

    def extra_repr(self) -> str:
        return self.p.describe()


class NCHWView(nn.Module):
    """A channels-last layer's output seen as NCHW: what hooks on this module see."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def route(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        """The forward hook put on the channels-last layer (a bound method, so a deep copy of
        the model routes through the copy's view)."""
        return self(output.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


@dataclass(frozen=True)
class Layers:
    """What one hooked pass found: the head (a module name, "" if none) and the maps."""

    head: str
    channel_layers: tuple[str, ...]


class ExternalModel(TinyvizModel):
    """Any classifier network as a `TinyvizModel` (see the module's docstring).

    `net` is the network; `layers` its head and inspectable layers (module names inside
    `net`, found by `find_layers`); `keras` marks a Keras model, whose layers are not torch
    submodules (they are reached through `keras_layers`); `order` reorders the outputs
    when there is no linear head whose rows could be reordered instead.
    """

    def __init__(
        self,
        net: nn.Module,
        preprocessing: Preprocessing,
        layers: Layers,
        *,
        title: str = "",
        keras: bool = False,
        order: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self.preprocess = Preprocess(preprocessing)
        self.net = net
        self.title = title
        self.keras = keras
        self.maps = nn.ModuleDict()
        modules = keras_layers(net) if keras else dict(net.named_modules())
        missing = [n for n in (layers.head, *layers.channel_layers) if n and n not in modules]
        if missing:
            raise ValueError(f"the network has no layer {missing[0]!r}")
        self.layers = layers  # names inside `net`, looked up at each call (`_layer`)
        self.head: nn.Module | None = None
        if keras:  # random seeds' state is named by a per-process counter: not weights
            self.register_state_dict_post_hook(_drop_seed_state)
            self.register_load_state_dict_post_hook(_ignore_seed_state)
        if keras and layers.head:
            self.head = _linear_from_dense(self._head_layer)
        names = []
        for name in layers.channel_layers:
            if keras:
                self.maps[_key(name)] = NCHWView()
                names.append(f"maps.{_key(name)}")
            else:
                names.append(f"net.{name}")
        self.source_names = dict(zip(names, layers.channel_layers, strict=True))
        self.channel_layers = tuple(names)
        self.gradcam_layer = names[-1] if names else None
        if self.head is not None:
            self.head_modules = ("head",)
        else:
            self.head_modules = (f"net.{layers.head}",) if layers.head else ()
        if order:
            self.register_buffer("order", torch.tensor(order, dtype=torch.long), persistent=False)
        else:
            self.order = None

    @property
    def _head_layer(self):
        return self._layer(self.layers.head) if self.layers.head else None

    def _layer(self, name: str):
        """A layer of `net` by name, looked up now: a deep copy of a Keras model makes new
        layer objects (and drops their hooks), so no reference to one is kept."""
        if self.keras:
            return keras_layers(self.net)[name]
        child = self.net._modules.get(name)  # ONNX graphs: flat, names may hold dots
        return child if child is not None else self.net.get_submodule(name)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """The network on preprocessed `x`; a Keras model's maps pass through their views
        (hooked for this call only, which also survives deep copies)."""
        if not self.keras:
            return self.net(self.preprocess(x))
        handles = [
            self._layer(name).register_forward_hook(self.maps[_key(name)].route)
            for name in self.layers.channel_layers
        ]
        try:
            return self.net(self.preprocess(x))
        finally:
            for h in handles:
                h.remove()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's input (penultimate features); the logits when there is no head."""
        if self._head_layer is None:
            return self._run(x)
        owner, caught = threading.get_ident(), []

        def catch(module, inputs, output) -> None:
            if threading.get_ident() == owner and not caught:
                caught.append(inputs[0])

        handle = self._head_layer.register_forward_hook(catch)
        try:
            self._run(x)
        finally:
            handle.remove()
        if not caught:
            raise RuntimeError("the forward pass did not reach the head")
        return caught[0].flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            logits = self.head(features)
        elif self._head_layer is not None:
            logits = self._head_layer(features)
        else:
            logits = features
        return logits if self.order is None else logits.index_select(1, self.order)

    def layer_title(self, name: str) -> str:
        """'Layer 3 of 5: layer3' (the network's own name for it, shortened)."""
        if name in self.channel_layers:
            own = self.source_names.get(name, name)
            own = own if len(own) <= 40 else "…" + own[-39:]
            return (
                f"Layer {self.channel_layers.index(name) + 1} of {len(self.channel_layers)}: {own}"
            )
        return super().layer_title(name)

    @torch.no_grad()
    def reorder_classes(self, order: list[int]) -> bool:
        """Make output j the network's output `order[j]`, by reordering the head's rows.

        Returns False when there is no linear head to reorder (then `order` must be given to
        the constructor and is applied to the logits)."""
        head = self.head if self.head is not None else self._head_layer
        if not isinstance(head, nn.Linear):
            return False
        index = torch.tensor(order, dtype=torch.long, device=head.weight.device)
        head.weight.copy_(head.weight.index_select(0, index))
        if head.bias is not None:
            head.bias.copy_(head.bias.index_select(0, index))
        return True


def _seed_state(key: str) -> bool:
    return "seed_generator" in key


def _drop_seed_state(module, state_dict, prefix, local_metadata) -> None:
    for key in [k for k in state_dict if _seed_state(k)]:
        del state_dict[key]


def _ignore_seed_state(module, incompatible) -> None:
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if not _seed_state(k)]
    incompatible.unexpected_keys[:] = [
        k for k in incompatible.unexpected_keys if not _seed_state(k)
    ]


def _key(name: str) -> str:
    return name.replace(".", "_") or "layer"


def keras_layers(model) -> dict:
    """A Keras model's layers by name, nested models' layers included ('outer/inner')."""
    found: dict = {}

    def walk(m, prefix: str) -> None:
        for layer in getattr(m, "layers", ()):
            name = f"{prefix}{layer.name}"
            found[name] = layer
            if getattr(layer, "layers", None):
                walk(layer, name + "/")

    walk(model, "")
    return found


def _linear_from_dense(dense) -> nn.Linear:
    """A Keras `Dense` as an `nn.Linear` with the same weights (its activation left out)."""
    kernel = dense.kernel.value.detach()
    use_bias = getattr(dense, "bias", None) is not None
    linear = nn.Linear(kernel.shape[0], kernel.shape[1], bias=use_bias)
    with torch.no_grad():
        linear.weight.copy_(kernel.T.float().cpu())
        if use_bias:
            linear.bias.copy_(dense.bias.value.detach().float().cpu())
    return linear


# ------------------------------------------------------------------ finding the layers


def find_layers(
    net: nn.Module, preprocessing: Preprocessing, *, keras: bool = False, size: int = PROBE
) -> Layers:
    """The head and the inspectable layers of `net`, from one forward pass with hooks.

    The head is the last linear layer (`nn.Linear`, or a Keras `Dense`) to run whose output
    has as many values per image as the network's output. The maps are, for each spatial
    resolution above 1 x 1, the module that finished last with a 4-D output of that
    resolution: where a stage ends (modules finish after their children, so that is the
    stage, not its last convolution).
    """
    modules = keras_layers(net) if keras else {n: m for n, m in net.named_modules() if n}
    order: list[tuple[str, tuple[int, ...], bool]] = []
    owner = threading.get_ident()

    def hook_for(name: str, module):
        def hook(mod, inputs, output) -> None:
            if threading.get_ident() == owner and isinstance(output, torch.Tensor):
                order.append((name, tuple(output.shape), _is_linear(module)))

        return hook

    handles = [m.register_forward_hook(hook_for(n, m)) for n, m in modules.items()]
    x = Preprocess(preprocessing)(torch.zeros(2, 3, size, size))
    try:
        with torch.inference_mode():
            out = net(x)
    finally:
        for h in handles:
            h.remove()
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ValueError("the network's output is not one row of class scores per image")
    classes = out.shape[1]
    heads = [n for n, s, linear in order if linear and len(s) == 2 and s[1] == classes]
    last_at: dict[tuple[int, int], str] = {}
    for name, shape, _ in order:
        if len(shape) == 4:
            hw = (shape[1], shape[2]) if keras else (shape[2], shape[3])
            if hw != (1, 1):
                last_at.pop(hw, None)
                last_at[hw] = name
    return Layers(heads[-1] if heads else "", tuple(_in_order(last_at, order)))


def _in_order(last_at: dict, order: list) -> list[str]:
    finished = {name: i for i, (name, _, _) in enumerate(order)}
    return sorted(set(last_at.values()), key=lambda n: finished[n])


def _is_linear(module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return type(module).__name__ == "Dense" and hasattr(module, "kernel")


def output_check(model: ExternalModel, size: int = PROBE) -> str:
    """'' when the wrapper's logits explain the network's output, else why not.

    The network may end at the head (logits) or in a softmax after it (Keras' `Dense(...,
    activation="softmax")`); anything else after the head would be explained wrongly.
    """
    if model._head_layer is None:
        return ""
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = model._run(x).float()
        logits = model.forward_head(model.forward_features(x)).float()
    if model.order is not None:
        out = out.index_select(1, model.order)
    if torch.allclose(out, logits, atol=1e-4, rtol=1e-3):
        return ""
    if torch.allclose(out, logits.softmax(1), atol=1e-5, rtol=1e-3):
        return ""
    return "the network does more after its last linear layer than a softmax"
