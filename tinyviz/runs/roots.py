"""Where runs are looked for, and which folders a dashboard visitor may add.

The roots are the shipped `checkpoints/` (`TINYVIZ_CHECKPOINTS`), the Train page's `runs/`
(`TINYVIZ_RUNS_DIR`) and any folders named in `TINYVIZ_RUNS` (separated by the path
separator). A visitor at a poster can add a run folder in the sidebar, but only one inside
these roots: the server's other folders are not theirs to read, unless whoever started the
server allows it (`TINYVIZ_ALLOW_ANY_RUN_FOLDER=1`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError
from .folder import Run

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ALLOW_ANY = "TINYVIZ_ALLOW_ANY_RUN_FOLDER"


def checkpoints_dir() -> Path:
    return Path(os.environ.get("TINYVIZ_CHECKPOINTS") or PROJECT_ROOT / "checkpoints")


def runs_dir() -> Path:
    """Where the Train page puts new runs and its job lock."""
    return Path(os.environ.get("TINYVIZ_RUNS_DIR") or PROJECT_ROOT / "runs")


def configured_roots() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("TINYVIZ_RUNS", "").split(os.pathsep) if p]
    return [checkpoints_dir(), runs_dir(), *extra]


def allow_any() -> bool:
    return os.environ.get(ALLOW_ANY, "").strip().lower() in ("1", "true", "yes")


def check_addable(text: str) -> Path:
    """The folder a visitor typed, if it exists and lies inside a configured root."""
    if not text.strip():
        raise CheckpointError("type a folder")
    path = Path(text.strip()).expanduser()
    if not path.is_absolute():
        path = PROJECT_ROOT / path
    path = path.resolve()
    if not path.is_dir():
        raise CheckpointError(f"no such folder: {text.strip()}")
    roots = [r.resolve() for r in configured_roots()]
    if not allow_any() and not any(path == r or r in path.parents for r in roots):
        names = ", ".join(str(r) for r in roots)
        raise CheckpointError(
            f"only folders inside the run roots can be added ({names}); "
            f"the server can allow any with {ALLOW_ANY}=1"
        )
    return path


def best_runs(runs: list[Run]) -> list[Run]:
    """The best transfer run and the best from-scratch run (by `Run.score`), if any."""
    picks = []
    for transfer in (True, False):
        group = [r for r in runs if r.transfer == transfer]
        if group:
            picks.append(max(group, key=lambda r: r.top1))
    return picks or list(runs[:1])


def full_names(runs: list[Run]) -> dict[str, str]:
    """wnid -> all WordNet names of the class, from the runs' own class lists."""
    names: dict[str, str] = {}
    for run in runs:
        names.update(zip(run.wnids, run.full_names, strict=True))
    return names


def where(run_path: Path) -> str:
    """The folder holding a run, as a visitor may read it: inside the project its path from
    there ("checkpoints"), elsewhere its last two parts ("…/lab/runs"), never a full path."""
    folder = Path(run_path).absolute().parent
    try:
        return str(folder.relative_to(PROJECT_ROOT))
    except ValueError:
        parts = folder.parts[-2:]
        return "…/" + "/".join(parts) if len(folder.parts) > 2 else str(folder)
