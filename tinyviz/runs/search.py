"""The record of a random search (`search.json`): its trials and their scores.

Written by `tinyviz.training.search` after every trial, read by the Models page's search
view; one schema for both, parsed strictly like every run file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter

from .. import io
from ..config import STRICT
from .folder import parse

SEARCH = "search.json"


@dataclass(frozen=True)
class Trial:
    __pydantic_config__ = STRICT

    trial: int
    lr: float
    weight_decay: float
    val_top1: float
    run: str


@dataclass(frozen=True)
class SearchRecord:
    """A search over learning rate and weight decay for one model and recipe."""

    __pydantic_config__ = STRICT

    model: str
    epochs: int
    train_limit: int
    trials: tuple[Trial, ...]

    @property
    def best(self) -> Trial | None:
        return max(self.trials, key=lambda t: t.val_top1) if self.trials else None


_ADAPTER = TypeAdapter(SearchRecord)


def trial_rows(record: SearchRecord) -> list[dict]:
    """One row per trial for the Models page's scatter, the best one flagged."""
    best = record.best
    return [
        {**dataclasses.asdict(t), "best": best is not None and t.trial == best.trial}
        for t in record.trials
    ]


def write_search(folder: Path, record: SearchRecord) -> None:
    io.write_json(Path(folder) / SEARCH, dataclasses.asdict(record))


def read_search(folder: Path) -> SearchRecord:
    """The search recorded in `folder`; `CheckpointError` when missing or malformed."""
    path = Path(folder) / SEARCH
    return parse(_ADAPTER, io.read_bytes(path, max_bytes=io.MAX_JSON, inside=folder), path)


def find_searches(roots: list[Path]) -> list[tuple[Path, SearchRecord | str]]:
    """Every folder directly in (or being) a root that holds a search: (folder, record or
    the one-line reason it cannot be read)."""
    from ..errors import TinyvizError

    found, seen = [], set()
    for root in map(Path, roots):
        candidates = (
            [root]
            if (root / SEARCH).exists()
            else (
                sorted(p for p in root.iterdir() if (p / SEARCH).exists()) if root.is_dir() else []
            )
        )
        for folder in candidates:
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            try:
                found.append((folder, read_search(folder)))
            except TinyvizError as e:
                found.append((folder, str(e)))
    return found
