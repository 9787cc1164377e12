"""Copy a run folder for shipping: half-precision weights, every record kept.

Shipped checkpoints must be small (the repository holds several), and half precision halves
them with no measurable change in accuracy for these models; loading casts back to float32.

Epoch views (`RUN/epochs/E/`) are copied as they are: their weights are already in half
precision, so the bytes stay the same and so does the weights digest their stored analyses
are keyed by. Those analyses are the explain layer's files, above this one: `tinyviz export`
copies them too, in compact form (`tinyviz.explain.epochs.copy_analyses`), so an exported
run's epoch slider works at once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from .. import io
from ..errors import CheckpointError
from . import folder as runfiles
from .folder import RunFolder, open_run
from .weights import load_weights, save_weights

RECORDS = (RunFolder.CONFIG, RunFolder.METRICS, RunFolder.EVALS)


def export_run(run_dir: Path, out: Path, snapshots: int = 0) -> dict:
    run = open_run(run_dir)
    dest = RunFolder(Path(out))
    if snapshots < 0:
        raise CheckpointError(f"--snapshots must be 0 or more, not {snapshots}")
    if dest.path.resolve() == run.path.resolve():
        raise CheckpointError("export needs another folder than the run's own")
    if dest.holds_run():
        raise CheckpointError(f"{dest.path} already holds a run: choose an empty folder")
    dest.path.mkdir(parents=True, exist_ok=True)
    for name in RECORDS:
        if (run.path / name).exists():
            shutil.copyfile(run.path / name, dest.path / name)
    _half(run.folder.weights, dest.weights, run.path)
    kept = run.snapshots[:snapshots]
    for s in kept:
        _half(run.snapshot_path(s), dest.snapshot(s.file), run.path)
    if kept:
        runfiles.write_snapshots(dest, kept)
    views = [_copy_view(run.folder, dest, epoch) for epoch in run.epoch_views()]
    return {
        "run": str(dest.path),
        "snapshots": len(kept),
        "epoch_views": views,
        "megabytes": megabytes(dest.path),
    }


def megabytes(folder: Path) -> float:
    """What a copy weighs (MiB, two decimals): the repository budgets its shipped runs."""
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20, 2)


def _half(src: Path, dst: Path, inside: Path) -> None:
    tensors = load_weights(src, inside=inside)
    save_weights(dst, tensors, {"precision": "float16"}, dtype=torch.float16)


def _copy_view(src: RunFolder, dest: RunFolder, epoch: int) -> int:
    """Copy epoch `epoch`'s weights byte for byte (checked first: they are input too)."""
    weights = src.epoch_weights(epoch)
    load_weights(weights, inside=src.path)
    data = io.read_bytes(weights, max_bytes=runfiles.MAX_WEIGHTS, inside=src.path)
    io.write_bytes(dest.epoch_weights(epoch), data)
    return epoch
