"""Saliency maps with captum: which pixels or regions made the model pick a class.

Six methods, each answering a slightly different question (see `METHODS`). Every call
returns an `Attribution` whose `heat` is a 64 x 64 float32 map in [0, 1], ready for
`tinyviz.demo.heatmaps.overlay`; the page does the drawing.

Models are shared between dashboard sessions (one cached object per run, used from several
threads), and captum adds hooks to a model while it explains it. So each call holds
`model_lock(model)`, runs the model in eval mode, and removes any hook that is still on the
model afterwards, even when captum raised halfway.

Defaults are picked for a ResNet-18 (width 64, 64 x 64 input) on a 2-core CPU. Gradient,
guided backprop and Grad-CAM cost one backward pass; SmoothGrad (16 noisy copies, 8 per
batch), Integrated Gradients (32 steps, 16 per batch) and Occlusion (81 overlapping 16 x 16
patches, 27 per batch; 8 x 8 patches moved by 4 px give a finer map at several times the
cost) cost tens of passes, so the page estimates a method's time (`tinyviz.explain.speed`)
before it starts a slow one. The measured times are in bench/results/docstring_timings.md
(`bench/app_speed.py` measures them).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from captum._utils.common import _register_backward_hook
from captum.attr import (
    GuidedBackprop,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import nn

from ..errors import PredictError
from ..runtime.locks import model_lock

PERCENTILE = 99.0  # heat is scaled so this percentile maps to 1: one hot pixel can't wash it out
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")

# captum announces guided backprop's hooks on every call; we remove them (and say so above).
# Installed once at import: changing filters per call (catch_warnings) is not thread-safe.
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU", category=UserWarning)


@dataclass(frozen=True)
class Method:
    """An attribution method as the page lists it, with its default parameters."""

    name: str
    label: str
    shows: str
    defaults: Mapping[str, Any] = field(default_factory=dict)


def _method(name: str, label: str, shows: str, **defaults: Any) -> Method:
    return Method(name, label, shows, MappingProxyType(defaults))


METHODS: tuple[Method, ...] = (
    _method(
        "gradient",
        "Vanilla gradient",
        "pixels whose slightest change moves the class score most (fast, speckled)",
    ),
    _method(
        "smoothgrad",
        "SmoothGrad",
        "the gradient averaged over noisy copies of the image: the same question, less speckle",
        nt_samples=16,
        stdevs=0.15,
        batch_size=8,
        seed=0,
    ),
    _method(
        "integrated_gradients",
        "Integrated Gradients",
        "each pixel's share of the score gained on the way from a black image to this "
        "one (the shares add up to the difference)",
        n_steps=32,
        internal_batch_size=16,
    ),
    _method(
        "gradcam",
        "Grad-CAM",
        "the coarse regions of a late layer whose features raise the class score",
    ),
    _method(
        "guided_backprop",
        "Guided backprop",
        "edges and textures that push the class score up (sharp, but barely class-specific)",
    ),
    _method(
        "occlusion",
        "Occlusion",
        "how much the class score drops when a grey patch hides each part of the image",
        window=16,
        stride=6,
        baseline=0.5,
        perturbations_per_eval=27,
    ),
)
_BY_NAME = {m.name: m for m in METHODS}


@dataclass(frozen=True, eq=False)
class Attribution:
    """One saliency map.

    `heat` (H x W float32 in [0, 1]): pixel methods take the absolute value, max over colour
    channels; Grad-CAM and Occlusion keep the positive evidence; all are divided by their
    99th percentile and clipped. `signed` (H x W float32): the raw map, colour channels
    summed (for Grad-CAM the upsampled map, for Occlusion the score drop), for a
    blue-white-red overlay. `delta`: Integrated Gradients' completeness error
    (sum of attributions minus f(x) - f(black)), None for other methods.
    """

    method: str
    target: int
    heat: np.ndarray
    signed: np.ndarray
    seconds: float
    params: Mapping[str, Any]
    layer: str | None = None
    delta: float | None = None

    @property
    def label(self) -> str:
        return _BY_NAME[self.method].label


def method_info(name: str) -> Method:
    """The `Method` called `name`; the error lists the known names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (known: {', '.join(_BY_NAME)})") from None


# --------------------------------------------------------------------------- entry


def attribute(
    model: nn.Module,
    x: torch.Tensor,
    target: int,
    method: str,
    *,
    layer: str | None = None,
    **params: Any,
) -> Attribution:
    """Explain `model`'s score for class `target` on `x` (1 x 3 x H x W, floats in [0, 1]).

    `params` override the method's defaults (unknown names raise `TypeError`); `layer` is
    the module Grad-CAM looks at (default: the model's `gradcam_layer`).
    """
    spec = method_info(method)
    unknown = set(params) - set(spec.defaults)
    if unknown:
        raise TypeError(
            f"{method} takes no parameter {', '.join(sorted(unknown))} "
            f"(it takes: {', '.join(spec.defaults) or 'none'})"
        )
    options = {**spec.defaults, **params}
    x = _check_input(x, target)
    with model_lock(model), _prepared(model):
        start = time.perf_counter()
        x = x.to(_device(model)).requires_grad_(True)  # captum warns if it has to do this
        signed, heat, used_layer, delta = _RUNNERS[method](model, x, target, layer, options)
        seconds = time.perf_counter() - start
    heat_np = _frozen(robust_unit(heat.detach().float().cpu().numpy()))
    return Attribution(
        method,
        target,
        heat_np,
        _frozen(signed),
        seconds,
        MappingProxyType(options),
        used_layer,
        delta,
    )


# ------------------------------------------------------------------------ runners

Result = tuple[torch.Tensor, torch.Tensor, str | None, float | None]  # signed, heat, layer, delta


def _gradient(model, x, target, layer, o) -> Result:
    grads = Saliency(model).attribute(x, target=target, abs=False)
    return _pixel_maps(grads) + (None, None)


def _smoothgrad(model, x, target, layer, o) -> Result:
    # captum draws the noise from torch's global generator: fork it so maps are repeatable
    # and other users of the generator are not disturbed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(o["seed"])
        grads = NoiseTunnel(Saliency(model)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=o["nt_samples"],
            nt_samples_batch_size=o["batch_size"],
            stdevs=o["stdevs"],
            target=target,
            abs=False,
        )
    return _pixel_maps(grads) + (None, None)


def _integrated_gradients(model, x, target, layer, o) -> Result:
    attrs, delta = IntegratedGradients(model).attribute(
        x,
        baselines=torch.zeros_like(x),
        target=target,
        n_steps=o["n_steps"],
        internal_batch_size=o["internal_batch_size"],
        return_convergence_delta=True,
    )
    return _pixel_maps(attrs) + (None, float(delta.sum()))


def _gradcam(model, x, target, layer, o) -> Result:
    name = layer or getattr(model, "gradcam_layer", None)
    if not name:
        raise PredictError("Grad-CAM needs a convolutional layer, and this model has none")
    module = _submodule(model, name)
    cam = LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    cam = cam[0].sum(0).clamp_min(0)  # bilinear can't go negative, but rounding can
    return cam, cam, name, None


class _GuidedBackprop(GuidedBackprop):
    """captum's guided backprop, with ReLU6 guided too. captum hooks `nn.ReLU` alone, so on
    EfficientNet-Lite (ReLU6 throughout) its maps were exactly the vanilla gradient's (and
    the sanity check's figures the same). The same hook is right for ReLU6: the gradient it
    gets is already zero outside (0, 6), and it keeps only the positive part."""

    def _register_hooks(self, module: nn.Module) -> None:
        super()._register_hooks(module)
        if isinstance(module, nn.ReLU6):  # a Hardtanh, not a ReLU, for captum's test
            self.backward_hooks.extend(_register_backward_hook(module, self._backward_hook, self))


def _guided_backprop(model, x, target, layer, o) -> Result:
    grads = _GuidedBackprop(model).attribute(x, target=target)
    return _pixel_maps(grads) + (None, None)


def _occlusion(model, x, target, layer, o) -> Result:
    window, stride = int(o["window"]), int(o["stride"])
    channels, height, width = x.shape[1:]
    if (
        stride < 1
        or window > min(height, width)
        or (height - window) % stride
        or (width - window) % stride
    ):
        raise ValueError(
            f"an occlusion window of {window} px moved by {stride} px does not "
            f"tile a {height} x {width} image (the last patch must reach the edge)"
        )
    drop = Occlusion(model).attribute(
        x,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=float(o["baseline"]),
        target=target,
        perturbations_per_eval=int(o["perturbations_per_eval"]),
    )
    signed = drop[0, 0]  # a window spans every colour channel: all three hold the same map
    return signed, signed.clamp_min(0), None, None


_RUNNERS: dict[str, Callable[..., Result]] = {
    "gradient": _gradient,
    "smoothgrad": _smoothgrad,
    "integrated_gradients": _integrated_gradients,
    "gradcam": _gradcam,
    "guided_backprop": _guided_backprop,
    "occlusion": _occlusion,
}


# ------------------------------------------------------------------------ helpers


def _pixel_maps(attrs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, C, H, W) attributions to (signed: channel sum, heat: |.| max over channels)."""
    return attrs[0].sum(0), attrs[0].abs().amax(0)


def _frozen(t: torch.Tensor | np.ndarray) -> np.ndarray:
    a = t.detach().float().cpu().numpy() if torch.is_tensor(t) else t
    a = np.array(a, dtype=np.float32)
    a.flags.writeable = False
    return a


def robust_unit(a: np.ndarray, percentile: float = PERCENTILE) -> np.ndarray:
    """Scale a non-negative map so its `percentile` is 1, clipped to [0, 1] (zeros stay zeros)."""
    a = np.nan_to_num(np.asarray(a, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    scale = float(np.percentile(a, percentile))
    if scale <= 0:
        scale = float(a.max())
    return np.clip(a / scale, 0, 1).astype(np.float32) if scale > 0 else np.zeros_like(a)


def _check_input(x: torch.Tensor, target: int) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"expected a 1 x 3 x H x W tensor, got {shape}")
    if int(target) != target or target < 0:
        raise ValueError(f"target must be a class index, not {target!r}")
    return x.detach().float()


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"the model has no layer {name!r}") from None


@contextmanager
def _prepared(model: nn.Module) -> Iterator[None]:
    """Eval mode, gradients on (even inside a caller's inference mode), no hooks left after."""
    was_training = model.training
    before = _hook_ids(model)
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        _remove_new_hooks(model, before)
        model.train(was_training)


def _hook_ids(model: nn.Module) -> dict[int, dict[str, set]]:
    return {id(m): {d: set(getattr(m, d, {})) for d in _HOOK_DICTS} for m in model.modules()}


def _remove_new_hooks(model: nn.Module, before: dict[int, dict[str, set]]) -> None:
    """A safety net under captum's own clean-up: drop hooks added since `before`."""
    for m in model.modules():
        old = before.get(id(m), {})
        for d in _HOOK_DICTS:
            hooks = getattr(m, d, None)
            if hooks:
                for key in set(hooks) - old.get(d, set()):
                    del hooks[key]
