"""Facts about a run that the explain caches and estimates need, measured cheaply.

`weights_hash`: the content of the weights file, so that a stored result is valid in any
copy of the run (a clone changes the file's mtime, not its bytes) and never for other
weights. `forward_seconds`: the time of one image's forward pass on the model's device,
from the run's measured speed when it is stored (free) or one timed batch, for the "this
will take about ..." lines the pages show before they start something slow.
`penultimate`: exact features of a few images, the one place that runs such a pass.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import io
from ..data.batches import to_float
from ..runtime.locks import model_lock
from . import speed


def weights_hash(path: Path) -> str:
    """SHA-256 of a weights file (every byte read), remembered per (path, size, mtime)."""
    return io.file_digest(Path(path))[:32]


def forward_seconds(
    model: nn.Module, run_dir: Path | None = None, batch: int = 8, size: int = 64
) -> float:
    """Seconds per image of a forward pass: the run's stored speed (`speed.json`, scaled to
    this machine's threads and load) when there is one, else one timed batch of `batch`
    (after a warm-up image). The timed batch is a third of a second of a page's script run
    for a ResNet-18 on a CPU: worth skipping."""
    device = next(model.parameters()).device
    stored = speed.measured(Path(run_dir), device.type) if run_dir is not None else None
    if stored is not None:
        return stored.pass_seconds(1)
    x = torch.rand(batch, 3, size, size, device=device)
    with model_lock(model), torch.inference_mode():
        model(x[:1])
        start = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / batch


def penultimate(model: nn.Module, images_u8: np.ndarray) -> np.ndarray:
    """(N, D) float32 exact penultimate features of `images_u8` (N x H x W x 3 uint8) in
    eval mode, under the model's lock: the model may be a page's shared one."""
    device = next(model.parameters()).device
    x = to_float(torch.from_numpy(np.array(images_u8, np.uint8)).to(device))
    with model_lock(model), torch.inference_mode():
        was_training = model.training
        model.eval()
        try:
            return model.forward_features(x).float().cpu().numpy()
        finally:
            model.train(was_training)
