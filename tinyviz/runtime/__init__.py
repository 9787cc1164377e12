"""Where code runs: the device and its precision, torchrun's processes, shared-model locks,
background jobs.

`pick_device`, `autocast` and `environment` are loaded on first use: they need torch, and
`runtime.background` (imported by every job's entry point) must not."""

from __future__ import annotations

__all__ = ["autocast", "environment", "pick_device"]


def __getattr__(name: str):
    if name in __all__:
        from . import device

        return getattr(device, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
