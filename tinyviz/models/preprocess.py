"""Input preprocessing that lives inside the model.

Every model takes [0, 1] pixels. Keeping normalisation (and, for transfer models, resizing)
inside the network means a checkpoint carries everything needed to go from pixels to logits,
and attribution methods explain the pixels the user actually sees.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

TINY_IMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD = (0.2770, 0.2691, 0.2821)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORM_MODES = ("channel", "image")


def _as_nchw(values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Shape per-channel values (3,) or an image (3, H, W) so they broadcast over a batch."""
    tensor = torch.as_tensor(values, dtype=torch.float32)
    if tensor.dim() == 1:
        return tensor.view(1, -1, 1, 1)
    return tensor.unsqueeze(0) if tensor.dim() == 3 else tensor


class Normalize(nn.Module):
    """Subtract a mean (per channel or a mean image) and divide by a per-channel std.

    `mean` and `std` are buffers, so the statistics the trainer measures on the data are
    saved with the checkpoint. `fixed` marks transfer models, whose statistics must stay the
    ones their pretrained weights were trained with.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: Sequence[float] = TINY_IMAGENET_MEAN,
        std: Sequence[float] = TINY_IMAGENET_STD,
        *,
        image_size: int | None = None,
        fixed: bool = False,
    ) -> None:
        super().__init__()
        mean_t = _as_nchw(mean)
        if image_size is not None:
            mean_t = mean_t.expand(1, 3, image_size, image_size).clone()
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", _as_nchw(std))
        self.fixed = fixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean
        if mean.shape[-1] > 1 and mean.shape[-2:] != x.shape[-2:]:
            # A mean image meets a crop of another size: resample it rather than fail.
            mean = F.interpolate(mean, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (x - mean) / self.std

    @torch.no_grad()
    def set_stats(self, mean: Sequence[float] | torch.Tensor, std: Sequence[float]) -> bool:
        """Copy data statistics into the buffers; returns False (and keeps them) when fixed."""
        if self.fixed:
            return False
        self.mean.copy_(_as_nchw(mean).to(self.mean))
        self.std.copy_(_as_nchw(std).to(self.std))
        return True

    def extra_repr(self) -> str:
        return f"mean_shape={tuple(self.mean.shape)}, fixed={self.fixed}"


def make_normalize(norm: str = "channel", image_size: int = 64) -> Normalize:
    """Tiny ImageNet normalisation: `channel` (mean per channel) or `image` (mean image)."""
    if norm == "channel":
        return Normalize()
    if norm == "image":
        return Normalize(image_size=image_size)
    raise ValueError(f"norm must be one of {NORM_MODES}, got {norm!r}")


class Resize(nn.Module):
    """Bilinear resize to a square `size`, so transfer models see a resolution near their own."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"
