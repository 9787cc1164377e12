"""The resume state's counters, read from its header alone (no tensor, no torch).

`training.state` writes `resume.safetensors` (tensors, with the counters as JSON in its
metadata under `META_KEY`); the Train page's jobs only need to know how far a run got, to
refuse resuming a finished one, so that part of the format lives here, below both.
"""

from __future__ import annotations

import json

from .. import io
from ..errors import CheckpointError
from .folder import MAX_WEIGHTS, RunFolder

META_KEY = "resume"


def read_counters(folder: RunFolder) -> dict:
    """The saved state's counters (epoch, step, ...) from its header alone."""
    if folder.resume.exists():
        header = io.safetensors_header(folder.resume, max_bytes=MAX_WEIGHTS, inside=folder.path)
        meta_block = header.get("__metadata__")
        raw = meta_block.get(META_KEY, "") if isinstance(meta_block, dict) else ""
        try:
            meta = json.loads(raw)
        except (TypeError, ValueError):
            meta = None
    elif (legacy := folder.legacy_resume()) is not None:
        meta = io.read_json(legacy[1], inside=folder.path)
    else:
        raise CheckpointError(
            f"nothing to resume in {folder.path}: no epoch had finished; start it again "
            "(train --out ... --overwrite)"
        )
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("epoch"), int)
        or not isinstance(meta.get("step"), int)
    ):
        raise CheckpointError(f"the resume state in {folder.path} is damaged")
    return meta
