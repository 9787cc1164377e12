"""Run folders: their files (`folder`), weights (`weights`), scores (`evaluate`), copies
(`export`), training jobs (`jobs`), the leaderboard and the seeds' published figures.

The names most callers need are importable from here: `open_run`, `scan`, `list_runs`,
`Run`, `RunFolder`, `load_model`, `load_weights`, `save_weights`.
"""

from ..errors import CheckpointError
from .folder import (
    BrokenRun,
    Run,
    RunConfig,
    RunFolder,
    Scan,
    list_runs,
    open_run,
    scan,
    scan_fingerprint,
)
from .weights import build_model, load_model, load_state, load_weights, save_weights

__all__ = [
    "BrokenRun",
    "CheckpointError",
    "Run",
    "RunConfig",
    "RunFolder",
    "Scan",
    "build_model",
    "list_runs",
    "load_model",
    "load_state",
    "load_weights",
    "open_run",
    "save_weights",
    "scan",
    "scan_fingerprint",
]
