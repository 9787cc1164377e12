"""Every error tinyviz raises on purpose, under one base class.

Each carries a one-line message meant for the person at the keyboard (the command line
prints `error: <message>`, the dashboard shows it in the page), never a traceback. Catching
`TinyvizError` catches all of them; the subclasses say which layer refused.
"""

from __future__ import annotations


class TinyvizError(Exception):
    """A problem the user can act on, described in one line."""


class DataError(TinyvizError):
    """The data set is missing, incomplete or broken."""


class CheckpointError(TinyvizError):
    """A run folder or weights file that cannot be used."""


class TrainingError(TinyvizError):
    """Training stopped for a reason the user must act on (divergence, bad resume)."""


class Stopped(TinyvizError):
    """The run was asked to stop (SIGTERM from the dashboard's Stop button)."""


class JobError(TinyvizError):
    """A background job that cannot be started, resumed or stopped."""


class ImageError(TinyvizError):
    """An upload we cannot use."""


class PredictError(TinyvizError, ValueError):
    """Models, classes or snapshots that do not fit together."""


class UnknownModelError(TinyvizError, KeyError, ValueError):
    """A model name nobody registered; a KeyError and a ValueError, with a plain message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(TinyvizError, ValueError):
    """A training or evaluation setting out of its range, found before any work starts."""
