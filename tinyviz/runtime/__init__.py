"""Where code runs: the device and its precision, torchrun's processes, shared-model locks."""

from .device import autocast, environment, pick_device

__all__ = ["autocast", "environment", "pick_device"]
