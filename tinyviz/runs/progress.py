"""The live progress of a training job, as one dataclass the writer and every reader share.

The trainer (`tinyviz.training.monitor`) writes `progress.json` at most once a second; the
job manager (`tinyviz.runs.jobs`) and the Train page read it back. One schema for all three,
so a field renamed on one side cannot silently read as missing on the other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from pydantic import TypeAdapter

from .. import io
from ..config import STRICT
from ..errors import CheckpointError
from .folder import EpochMetrics, RunFolder, parse

Status = Literal["running", "done", "failed", "stopped"]
FINISHED = ("done", "failed", "stopped")


@dataclass(frozen=True)
class TrainProgress:
    """Where a training process is: written by it, read by whoever watches it."""

    __pydantic_config__ = STRICT

    status: Status
    pid: int
    updated: float
    started: float
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    images_per_s: float = 0.0
    eta_s: float = 0.0
    message: str = ""
    last: EpochMetrics | None = None

    @property
    def fraction(self) -> float:
        return min(self.step / self.total_steps, 1.0) if self.total_steps else 0.0


_ADAPTER = TypeAdapter(TrainProgress)


def write_progress(folder: RunFolder, progress: TrainProgress) -> None:
    io.write_json(folder.progress, dataclasses.asdict(progress))


def read_progress(folder: RunFolder) -> TrainProgress | None:
    """The last progress written, or None when there is none (or it cannot be read)."""
    try:
        data = io.read_bytes(folder.progress, max_bytes=io.MAX_JSON, inside=folder.path)
        return parse(_ADAPTER, data, folder.progress)
    except CheckpointError:
        return None
