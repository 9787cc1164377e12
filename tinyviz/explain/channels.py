"""Single channels of a model: which validation images excite them, and where (seed 002).

Each channel's strongest images come from the same stored pass as the rest of
`tinyviz.explain.analysis` (one pass per checkpoint, minutes on a CPU, kept as each
channel's top `analysis.TOP_CHANNEL` images); looking them up is then an index. A
gradient map is computed live, for a handful of images: the gradient of the channel's
strongest response with respect to the input pixels, i.e. the pixels the neuron is
sensitive to.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.batches import to_float
from ..runtime.locks import model_lock
from . import analysis

REDUCTIONS = ("max", "mean")


def channel_tops(
    run_dir: Path,
    data,
    *,
    device: str = "cpu",
    progress: analysis.Progress | None = None,
    limit: int = 0,
) -> dict[str, analysis.ChannelTops]:
    """`{layer: ChannelTops}` for every layer of `model.channel_layers`: each channel's
    strongest validation images (rows as in `analysis.val_outputs`) and mean response.

    Computed with the rest of the analysis when it is not stored (pages read
    `Analysis.channels` of a stored one instead).
    """
    folder = analysis.compute(run_dir, data, device=device, progress=progress, limit=limit)
    return analysis.read(folder).channels


def top_images(tops: analysis.ChannelTops, channel: int, k: int = 6) -> np.ndarray:
    """Rows of the `k` images with the strongest response of `channel`, strongest first."""
    return tops.rows[channel, :k].astype(np.int64)


def top_values(tops: analysis.ChannelTops, channel: int, k: int = 6) -> np.ndarray:
    """The channel's spatial maximum on each of its `top_images`."""
    return tops.values[channel, :k].astype(np.float32)


def channel_summary(tops: analysis.ChannelTops) -> np.ndarray:
    """Mean over images of each channel's maximum, (C,) float32: for "most active channels"."""
    return np.asarray(tops.mean, np.float32)


def class_purity(tops: analysis.ChannelTops, labels: np.ndarray, k: int = 50) -> np.ndarray:
    """(C,) float32: the share of each channel's `k` strongest images that are of one class.

    The most common class among them counts; 1.0 means a channel that fires for one class
    only (a striking channel to show first), 1/k one that fires for anything.
    """
    top = tops.rows[:, :k]
    if top.shape[1] == 0:
        return np.zeros(tops.channels, np.float32)
    classes = np.asarray(labels)[top]  # (C, k)
    counts = [np.bincount(row).max() for row in classes]
    return np.asarray(counts, np.float32) / top.shape[1]


def channel_gradients(
    model: nn.Module, images_u8: np.ndarray, layer: str, channel: int, *, reduce: str = "max"
) -> np.ndarray:
    """`(k, H, W)` float32 in [0, 1]: how strongly each pixel moves the channel's response.

    The response is the channel's spatial max (or mean) on each image; the map is the
    absolute input gradient, max over colour channels, scaled per image to a maximum of 1.
    The forward pass stops at `layer` (a hook raises), so early layers cost little. The model
    is shared between dashboard sessions, so the hook is added under `model_lock(model)`
    and only acts in this thread.
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, not {reduce!r}")
    module = dict(model.named_modules()).get(layer)
    if module is None:
        raise ValueError(f"the model has no layer {layer!r}")
    device = next(model.parameters()).device
    with torch.inference_mode(False), torch.enable_grad():  # even if a caller turned them off
        x = to_float(torch.from_numpy(np.array(images_u8, np.uint8)).to(device))
        x = x.contiguous().requires_grad_(True)
        with model_lock(model):
            act = _activation(model, module, x)
        if not 0 <= channel < act.shape[1]:
            raise ValueError(f"{layer} has {act.shape[1]} channels, not channel {channel}")
        flat = act[:, channel].flatten(1)
        response = flat.amax(1) if reduce == "max" else flat.mean(1)
        (grad,) = torch.autograd.grad(response.sum(), x)  # images are independent in eval mode
    return _normalise(grad.abs().amax(1).cpu().numpy())


class _Reached(Exception):
    """Raised by the hook once the layer's output is caught: the rest need not run."""


def _activation(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    caught: list[torch.Tensor] = []
    owner = threading.get_ident()

    def hook(mod, inputs, output) -> None:
        if threading.get_ident() == owner:
            caught.append(output)
            raise _Reached

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    if not caught:
        raise ValueError("the layer was not reached by the forward pass")
    return caught[0]


def _normalise(maps: np.ndarray) -> np.ndarray:
    top = maps.reshape(len(maps), -1).max(1)
    return (maps / np.where(top > 0, top, 1)[:, None, None]).astype(np.float32)
