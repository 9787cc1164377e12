"""Why B and not A: what makes the model answer B for images of class A (a confusion cell).

Three answers, each from the logit DIFFERENCE z_B - z_A rather than from z_B alone (a map
of z_B also lights up everything that makes the image a cat at all, which tabby and
Egyptian cat share):

- `contrastive_map`: a saliency map of z_B - z_A (any method of `saliency`, through a small
  wrapper model whose one output is the difference): the pixels that tip the balance to B.
- `channel_contributions`: our models end in ONE linear layer, z = W f + b, so
  z_B - z_A = sum_d f_d (W_Bd - W_Ad) + (b_B - b_A) exactly: each penultimate channel d
  pushes towards B by f_d (W_Bd - W_Ad). Averaged over the cell's images, the largest
  ones are the channels that make the difference (their top validation images show what
  they respond to).
- `nearest_training`: the training images of A and of B nearest to an image in feature
  space (`train_features` computes the two classes' features on demand).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..runtime.locks import model_lock
from . import embed, runinfo, saliency


@dataclass(frozen=True, eq=False)
class LinearHead:
    """The classifier's last layer as arrays: logits = features @ weight.T + bias."""

    name: str
    weight: np.ndarray  # (C, D) float32
    bias: np.ndarray  # (C,) float32


def final_linear(model: nn.Module) -> LinearHead:
    """The model's final linear layer, checked to BE its head (`forward_head` is linear).

    Looked for among `head_modules` (the last `nn.Linear` there), else the model's last
    `nn.Linear`; then `forward_head` of two random feature vectors is compared with the
    layer's own affine map, so a head with more in it (a hidden layer) is refused rather
    than explained wrongly.
    """
    modules = dict(model.named_modules())
    heads = [h for h in getattr(model, "head_modules", ()) if isinstance(modules.get(h), nn.Linear)]
    name = heads[-1] if heads else None
    if name is None:
        linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("the model has no linear layer")
        name = linears[-1]
    layer = modules[name]
    w = layer.weight.detach().float()
    b = layer.bias.detach().float() if layer.bias is not None else torch.zeros(w.shape[0])
    probe = torch.randn(2, w.shape[1], generator=torch.Generator().manual_seed(0))
    with model_lock(model), torch.inference_mode():
        was_training = model.training
        model.eval()
        try:
            head = model.forward_head(probe.to(w.device)).float().cpu()
        finally:
            model.train(was_training)
    affine = probe @ w.cpu().T + b.cpu()
    if head.shape != affine.shape or not torch.allclose(head, affine, rtol=1e-3, atol=1e-3):
        raise ValueError(f"the model's head is more than its last linear layer ({name})")
    return LinearHead(name, w.cpu().numpy(), b.cpu().numpy())


class LogitDifference(nn.Module):
    """`net` with one output per image: logit of `b` minus logit of `a` (shape (N, 1)).

    Names the wrapped net's layers (`net.` + its names) so Grad-CAM finds its layer. Its
    mode is the net's: the explainer restores the wrapper's mode afterwards, and a new
    module starts in training mode, which would leave a shared model training.
    """

    def __init__(self, net: nn.Module, a: int, b: int) -> None:
        super().__init__()
        self.net, self.a, self.b = net, int(a), int(b)
        self.training = net.training
        layer = getattr(net, "gradcam_layer", None)
        self.gradcam_layer = f"net.{layer}" if layer else None
        self.channel_layers = tuple(f"net.{n}" for n in getattr(net, "channel_layers", ()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        return (z[:, self.b] - z[:, self.a]).unsqueeze(1)


def contrastive_map(
    model: nn.Module,
    x: torch.Tensor,
    a: int,
    b: int,
    method: str = "gradcam",
    *,
    layer: str | None = None,
    **params,
) -> saliency.Attribution:
    """The saliency map of z_b - z_a on `x` (1 x 3 x H x W): where the image says B, not A.

    Holds the shared model's lock for the whole call (the wrapper is a new object, so
    `saliency.attribute`'s own lock would not keep other sessions off the model).
    """
    if a == b:
        raise ValueError("a contrast needs two different classes")
    wrapper = LogitDifference(model, a, b)
    with model_lock(model):
        return saliency.attribute(
            wrapper, x, 0, method, layer=f"net.{layer}" if layer else None, **params
        )


@dataclass(frozen=True, eq=False)
class Contributions:
    """How each penultimate channel pushes images from class a towards class b."""

    a: int
    b: int
    features: np.ndarray  # (N, D) float32 f
    per_image: np.ndarray  # (N, D) float32: f_d * (W_bd - W_ad)
    weight_diff: np.ndarray  # (D,) W_b - W_a
    bias_diff: float  # b_b - b_a

    @property
    def mean(self) -> np.ndarray:
        """(D,) the mean push of each channel over the images."""
        return self.per_image.mean(0) if len(self.per_image) else np.zeros(len(self.weight_diff))

    def logit_difference(self) -> np.ndarray:
        """(N,) z_b - z_a of each image, rebuilt from the channels (exact for a linear head)."""
        return self.per_image.sum(1) + self.bias_diff

    def top(self, k: int = 8) -> np.ndarray:
        """The `k` channels that push towards b most on average, strongest first."""
        m = self.mean
        k = min(k, len(m))
        top = np.argpartition(-m, k - 1)[:k] if k else np.zeros(0, np.int64)
        return top[np.argsort(-m[top], kind="stable")].astype(np.int64)


def channel_contributions(features: np.ndarray, head: LinearHead, a: int, b: int) -> Contributions:
    """Each channel's push towards `b` rather than `a`, for each row of `features` (N, D)."""
    f = np.asarray(features, np.float32)
    if f.ndim != 2 or f.shape[1] != head.weight.shape[1]:
        raise ValueError(
            f"features of shape {f.shape} do not fit a head of {head.weight.shape[1]} inputs"
        )
    diff = (head.weight[b] - head.weight[a]).astype(np.float32)
    return Contributions(int(a), int(b), f, f * diff, diff, float(head.bias[b] - head.bias[a]))


def cell_contributions(model: nn.Module, images_u8: np.ndarray, a: int, b: int) -> Contributions:
    """`channel_contributions` of a confusion cell's images (true a, answered b), from their
    exact features (a few images: one forward pass)."""
    return channel_contributions(image_features(model, images_u8), final_linear(model), a, b)


def image_features(model: nn.Module, images_u8: np.ndarray) -> np.ndarray:
    """(N, D) float32 exact penultimate features of a few images (a cell's)."""
    return runinfo.penultimate(model, images_u8)


def top_images_of_channel(features: np.ndarray, channel: int, k: int = 6) -> np.ndarray:
    """Rows of `features` with the largest value of `channel`, largest first."""
    column = np.asarray(features[:, channel], np.float32)
    k = min(k, len(column))
    if k <= 0:
        return np.zeros(0, np.int64)
    top = np.argpartition(-column, k - 1)[:k]
    return top[np.argsort(-column[top], kind="stable")].astype(np.int64)


@dataclass(frozen=True, eq=False)
class Nearest:
    """The nearest training images of one class: training indices and cosine distances."""

    cls: int
    indices: np.ndarray
    distances: np.ndarray


def nearest_training(
    query: np.ndarray, train_feats: np.ndarray, train_idx: np.ndarray, cls: int, k: int = 6
) -> Nearest:
    """The `k` training images (of `train_idx`, features `train_feats`) nearest to `query`."""
    if not len(train_feats):
        return Nearest(cls, np.zeros(0, np.int64), np.zeros(0, np.float32))
    rows, dist = embed.neighbours(train_feats, np.asarray(query, np.float32), k=k)
    return Nearest(cls, np.asarray(train_idx)[rows].astype(np.int64), dist)
