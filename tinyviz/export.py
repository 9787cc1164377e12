"""Copy a run folder for shipping: half-precision weights, every record kept.

Shipped checkpoints must be small (the repository holds several), and half precision halves
them with no measurable change in accuracy for these models; loading casts back to float32.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from . import checkpoints

RECORDS = (checkpoints.CONFIG, checkpoints.METRICS, checkpoints.EVALS)


def export_run(run_dir: Path, out: Path, snapshots: int = 0) -> dict:
    run = checkpoints.open_run(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in RECORDS:
        if (run.path / name).exists():
            shutil.copyfile(run.path / name, out / name)
    _half(run.path / checkpoints.WEIGHTS, out / checkpoints.WEIGHTS)
    kept = run.snapshots()[:snapshots]
    for s in kept:
        _half(run.path / checkpoints.SNAPSHOTS / s["file"],
              out / checkpoints.SNAPSHOTS / s["file"])
    if kept:
        checkpoints.write_json(out / checkpoints.SNAPSHOTS / "index.json", kept)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"run": str(out), "snapshots": len(kept), "megabytes": round(size / 2**20, 2)}


def _half(src: Path, dst: Path) -> None:
    tensors = checkpoints.load_weights(src)
    checkpoints.save_weights(dst, tensors, {"precision": "float16"}, dtype=torch.float16)
