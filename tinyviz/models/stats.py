"""Model size and cost, for the comparison tables."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def param_count(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def flops_per_image(model: nn.Module, input_size: int = 64) -> int:
    """FLOPs of one forward pass on one `input_size` image (a multiply-add counts as 2).

    Runs in eval mode, so BatchNorm statistics are untouched, and restores every module's
    mode afterwards.
    """
    param = next(model.parameters())
    x = torch.rand(1, 3, input_size, input_size, device=param.device, dtype=param.dtype)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for module, training in modes.items():
            module.training = training
    return int(counter.get_total_flops())
