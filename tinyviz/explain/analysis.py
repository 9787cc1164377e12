"""What a trained run does on the validation set, computed once and cached in `RUN/analysis/`.

On a CPU one forward pass over the 10,000 validation images takes minutes, so ONE pass
gives everything the analysis pages read: log-probabilities (Confusion), penultimate
features (Embeddings) and the spatial maximum of every channel of every `channel_layers`
layer (Channels, see `tinyviz.channels`). The results are `.npy` files (features and maxima
as float16, which halves them) plus a `meta.json` written last, in a folder named after the
data set's cache folder, the image count and the weights file's size + mtime: a retrained
run or another data set gets a new folder, and a folder of older weights is deleted.

What is derived from the cached outputs lives beside this module (`confusion`, `channels`,
`embed`).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..data.batches import to_float
from ..errors import CheckpointError
from ..runs.folder import RunFolder, open_run
from ..runs.weights import load_model
from ..runtime.device import autocast, pick_device

Progress = Callable[[float, str], None]
BATCH = 250
FORMAT = 1  # bump when the files of a cache folder change meaning
META = "meta.json"
_F16_MAX = float(np.finfo(np.float16).max)
_KEY_LOCKS: dict[str, threading.Lock] = {}
_KEY_GUARD = threading.Lock()


@dataclass(frozen=True, eq=False)
class ValOutputs:
    """A run's outputs on the first N validation images (row i is validation image i)."""

    logp: np.ndarray  # (N, C) float32 log-probabilities
    features: np.ndarray  # (N, D) float16 penultimate features
    labels: np.ndarray  # (N,) int64
    preds: np.ndarray  # (N,) int64, argmax of logp

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def top1(self) -> float:
        return float((self.preds == self.labels).mean()) if len(self) else 0.0

    def misclassified(self) -> np.ndarray:
        """Indices of the validation images whose top-1 prediction is wrong."""
        return np.flatnonzero(self.preds != self.labels)

    @property
    def top5(self) -> float:
        if not len(self):
            return 0.0
        k = min(5, self.logp.shape[1])
        top = np.argpartition(-self.logp, k - 1, axis=1)[:, :k]
        return float((top == self.labels[:, None]).any(1).mean())


# ------------------------------------------------------------------ the cache


def cache_dir(run_dir: Path, data, limit: int = 0) -> Path:
    """The folder that holds (or will hold) this run's outputs on `data`."""
    folder = RunFolder(Path(run_dir))
    size, mtime = folder.weights_stamp()
    if not size:
        raise CheckpointError(f"{run_dir} has no {folder.WEIGHTS}")
    n = _count(data, limit)
    return folder.analysis / f"{Path(data.cache).name}-n{n}-w{size}-{mtime}"


def compute_cache(
    run_dir: Path, data, *, device: str = "cpu", progress: Progress | None = None, limit: int = 0
) -> Path:
    """The cache folder of the run on `data`, after running the forward pass if it is missing.

    Threads asking for the same folder wait for the first one instead of repeating the pass.
    """
    folder = cache_dir(run_dir, data, limit)
    with key_lock(str(folder)):
        if not _complete(folder):
            _forward_pass(
                Path(run_dir), data, folder, pick_device(device), progress, _count(data, limit)
            )
    return folder


def is_cached(run_dir: Path, data, limit: int = 0) -> bool:
    """Whether `val_outputs` and the channel maxima would be read rather than computed."""
    return _complete(cache_dir(run_dir, data, limit))


def val_outputs(
    run_dir: Path, data, *, device: str = "cpu", progress: Progress | None = None, limit: int = 0
) -> ValOutputs:
    """Log-probabilities and features of the run on the validation set, from the cache.

    `limit` keeps the FIRST `limit` validation images (Tiny ImageNet's validation images come
    in shuffled class order, so that is close to balanced), so row i is always image i.
    """
    folder = compute_cache(run_dir, data, device=device, progress=progress, limit=limit)
    logp = _load(folder / "logp.npy")
    labels = np.asarray(data.val.labels[: len(logp)], dtype=np.int64)
    return ValOutputs(logp, _load(folder / "features.npy"), labels, logp.argmax(1))


def load_maxima(folder: Path) -> dict[str, np.ndarray]:
    """The per-layer activation maxima stored in a cache folder made by `compute_cache`."""
    layers = io.read_json(folder / META)["layers"]
    return {layer: _load(folder / f"maxima_{i}.npy") for i, layer in enumerate(layers)}


def _count(data, limit: int) -> int:
    n = len(data.val.labels)
    return min(limit, n) if limit else n


def key_lock(key: str) -> threading.Lock:
    """A lock per cache key (a path), so two sessions never compute the same thing at once."""
    with _KEY_GUARD:
        return _KEY_LOCKS.setdefault(key, threading.Lock())


def _complete(folder: Path) -> bool:
    """meta.json (written last) is there, of this format, and so is every file it names."""
    try:
        meta = io.read_json(folder / META)
    except CheckpointError:
        return False
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return False
    files = ["logp.npy", "features.npy"] + [f"maxima_{i}.npy" for i in range(len(meta["layers"]))]
    return all((folder / f).exists() for f in files)


def _load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False, mmap_mode="r")


def _half(array: np.ndarray) -> np.ndarray:
    """float16, clipped to its range (a huge activation stays huge rather than inf)."""
    return np.clip(array, -_F16_MAX, _F16_MAX).astype(np.float16)


# ------------------------------------------------------------- the forward pass


def _forward_pass(
    run_dir: Path, data, folder: Path, device: torch.device, progress: Progress | None, n: int
) -> None:
    report = progress or (lambda f, m: None)
    report(0.0, "loading the model")
    run = open_run(run_dir)
    if list(run.wnids) != list(data.classes.wnids):
        raise CheckpointError(f"{run.name} was trained on other classes than this data set's")
    # a private copy in channels-last memory: about 30% faster convolutions on a CPU too
    model = load_model(run, device=device).to(memory_format=torch.channels_last)
    layers = list(getattr(model, "channel_layers", ()))
    logp, feats, maxima = _run_model(model, data.val.images, n, device, layers, report)
    io.save_array(folder / "logp.npy", logp)
    io.save_array(folder / "features.npy", _half(feats))
    for i, layer in enumerate(layers):
        io.save_array(folder / f"maxima_{i}.npy", _half(maxima[layer]))
    io.write_json(
        folder / META,
        {
            "format": FORMAT,
            "run": run.name,
            "n": n,
            "data": Path(data.cache).name,
            "layers": layers,
        },
    )
    _prune(folder)
    report(1.0, "done")


def _run_model(
    model: torch.nn.Module,
    images: np.ndarray,
    n: int,
    device: torch.device,
    layers: list[str],
    report: Progress,
):
    """One pass in batches: log-probs, features, and per-layer spatial maxima (hooks)."""
    caught: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    modules = dict(model.named_modules())
    handles = [modules[layer].register_forward_hook(_catcher(caught[layer])) for layer in layers]
    logps, feats = [], []
    try:
        with torch.inference_mode(), autocast(device):
            for start in range(0, n, BATCH):
                u8 = torch.from_numpy(np.array(images[start : min(start + BATCH, n)]))  # a copy
                x = to_float(u8.to(device)).contiguous(memory_format=torch.channels_last)
                f = model.forward_features(x)
                logps.append(model.forward_head(f).float().log_softmax(1).cpu())
                feats.append(f.float().cpu())
                done = min(start + BATCH, n)
                report(done / n * 0.99, f"forward pass: {done:,} / {n:,} validation images")
    finally:
        for h in handles:
            h.remove()
    maxima = {layer: _cat(caught[layer]) for layer in layers}
    return _cat(logps), _cat(feats), maxima


def _catcher(store: list[torch.Tensor]):
    def hook(module, inputs, output) -> None:
        store.append(output.detach().flatten(2).amax(2).float().cpu())

    return hook


def _cat(tensors: list[torch.Tensor]) -> np.ndarray:
    return torch.cat(tensors).numpy() if tensors else np.zeros((0, 0), np.float32)


def _prune(folder: Path) -> None:
    """Delete cache folders of older weights of the same run: they can never be used again."""
    stamp = folder.name.split("-w")[-1]
    for other in folder.parent.iterdir():
        if other.is_dir() and other != folder and other.name.split("-w")[-1] != stamp:
            shutil.rmtree(other, ignore_errors=True)
