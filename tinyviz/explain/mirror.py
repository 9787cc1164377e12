"""Where a run's derived files are written: its own `analysis/`, or the cache for a shipped run.

The runs in `checkpoints/` ship with the repository, and a visitor's page view must not
change them (`git status` stays clean), nor can a read-only run folder take new files. So a
run inside the checkpoints root (`roots.checkpoints_dir`), or one whose folder this process
cannot write, is *shipped*: everything derived from it (maps, the analysis of another data
set, training features, the sanity check, calibrations, task locks and logs, speeds on
another device) goes to a mirror of the run under the cache root (`TINYVIZ_CACHE`):
`cache_root()/runs/<name>-<weights hash>/`, keyed by the weights' content, so replaced
weights get a fresh mirror and two copies of the same weights share one. What ships with
the run (`compact.npz`, `meta.json`, `speed.json`, `sanity.json`) is still read from it.

Whoever refreshes what ships sets `TINYVIZ_WRITE_SHIPPED=1` for the command that does it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .. import io
from ..data.cache import cache_root
from ..errors import CheckpointError
from ..runs.folder import RunFolder
from ..runs.roots import checkpoints_dir

WRITE_SHIPPED = "TINYVIZ_WRITE_SHIPPED"
MIRRORS = "runs"  # under cache_root()


def shipped(run_dir: Path) -> bool:
    """A run inside the checkpoints root (unless `WRITE_SHIPPED`), or one not writable here."""
    run = Path(run_dir).resolve()
    if os.environ.get(WRITE_SHIPPED, "").strip().lower() not in ("1", "true", "yes"):
        root = checkpoints_dir().resolve()
        if run == root or root in run.parents:
            return True
    analysis = RunFolder(run).analysis
    target = analysis if analysis.is_dir() else run
    return not os.access(target, os.W_OK | os.X_OK)


def home(run_dir: Path) -> Path:
    """The folder that stands for the run when writing: the run itself, or its mirror."""
    run = Path(run_dir)
    if not shipped(run):
        return run
    try:
        digest = _digest(RunFolder(run).weights)
    except (CheckpointError, OSError):
        digest = "noweights"
    name = re.sub(r"[^A-Za-z0-9._-]", "_", run.resolve().name)[:60]
    return cache_root() / MIRRORS / f"{name}-{digest}"


def writable(path: Path, run_dir: Path | None = None) -> Path:
    """Where a derived file or folder at `path` (inside the run `run_dir`, found from the
    path when not given) is written and read: `path` itself, or the same place in the mirror."""
    path = Path(path)
    run = Path(run_dir) if run_dir is not None else run_of(path)
    if run is None:
        return path
    mirror = home(run)
    if mirror == run:
        return path
    try:
        return mirror / path.resolve().relative_to(run.resolve())
    except ValueError:
        return path


def run_of(path: Path) -> Path | None:
    """The run folder that holds `path` (the nearest folder above it with a config.json)."""
    for folder in Path(path).parents:
        if (folder / RunFolder.CONFIG).is_file():
            return folder
    return None


def candidates(path: Path, run_dir: Path | None = None) -> list[Path]:
    """Where to read a derived file: its mirror's copy first (newer), then the run's own."""
    mirror = writable(path, run_dir)
    return [mirror] if mirror == Path(path) else [mirror, Path(path)]


def _digest(path: Path) -> str:
    """The weights' SHA-256 (16 hex digits): the same sum as `runinfo.weights_hash`."""
    return io.file_digest(path)[:16]
