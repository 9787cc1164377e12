"""Building blocks shared by the convolutional families."""

from __future__ import annotations

import torch
from torch import nn


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else size


class ConvBNReLU(nn.Sequential):
    """conv -> [BatchNorm] -> ReLU, with its own ReLU instance.

    The ReLU is never shared or inplace: guided backprop and DeepLift hook each activation
    module and expect exactly one call per forward. With `bn` the conv has no bias (BN's
    shift replaces it). Padding defaults to "same" for odd kernels, including 1xn and nx1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        bn: bool = True,
    ) -> None:
        kernel = _pair(kernel_size)
        pad = (kernel[0] // 2, kernel[1] // 2) if padding is None else padding
        super().__init__()
        self.add_module(
            "conv", nn.Conv2d(in_channels, out_channels, kernel, stride, pad, bias=not bn)
        )
        if bn:
            self.add_module("bn", nn.BatchNorm2d(out_channels))
        self.add_module("relu", nn.ReLU(inplace=False))


class Concat(nn.ModuleDict):
    """Named parallel branches applied to the same input, concatenated along channels.

    The common shape of every Inception module; the branch names show up in layer paths.
    """

    def __init__(self, **branches: nn.Module) -> None:
        super().__init__(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.values()], dim=1)
