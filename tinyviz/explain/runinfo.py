"""Facts about a run that the explain caches and estimates need, measured cheaply.

`weights_hash`: the content of the weights file, so that a stored result is valid in any
copy of the run (a clone changes the file's mtime, not its bytes) and never for other
weights. `forward_seconds`: the time of one image's forward pass on the model's device,
from one timed batch, for the "this will take about ..." lines the pages show before they
start something slow.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import torch
from torch import nn

from .. import io
from ..errors import CheckpointError
from ..runtime.locks import model_lock

_HASHES: dict[tuple[str, int, int], str] = {}
_GUARD = threading.Lock()


def weights_hash(path: Path) -> str:
    """SHA-256 of a weights file (every byte read), remembered per (path, size, mtime)."""
    try:
        st = Path(path).stat()
    except OSError:
        raise CheckpointError(f"{path} is missing") from None
    stamp = (str(path), st.st_size, st.st_mtime_ns)
    with _GUARD:
        if stamp in _HASHES:
            return _HASHES[stamp]
    digest = hashlib.sha256()
    with io.open_regular(path, max_bytes=io.MAX_ARRAY) as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    with _GUARD:
        _HASHES[stamp] = digest.hexdigest()[:32]
    return _HASHES[stamp]


def forward_seconds(model: nn.Module, batch: int = 8, size: int = 64) -> float:
    """Seconds per image of a forward pass in batches of `batch` (after one warm-up image)."""
    device = next(model.parameters()).device
    x = torch.rand(batch, 3, size, size, device=device)
    with model_lock(model), torch.inference_mode():
        model(x[:1])
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / batch
