"""What a trained run does on the validation set, computed once and cached in `RUN/analysis/`.

On a CPU one forward pass over the 10,000 validation images takes minutes, so ONE pass
gives everything the analysis pages read: log-probabilities (Confusion), penultimate
features (Embeddings) and the spatial maximum of every channel of every `channel_layers`
layer (Channels, see `tinyviz.channels`). The results are `.npy` files (features and maxima
as float16, which halves them) plus a `meta.json` written last, in a folder named after the
data set's cache folder, the image count and the weights file's size + mtime: a retrained
run or another data set gets a new folder, and a folder of older weights is deleted.

On top of the cached outputs: the confusion matrix, its most-confused pairs, and orders of
the classes that put related classes together (for a readable matrix).
"""

from __future__ import annotations

import io
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import pdist, squareform

from . import checkpoints, evaluate, wordnet
from .data.batches import to_float
from .runtime import autocast, pick_device

Progress = Callable[[float, str], None]
BATCH = 250
FORMAT = 1  # bump when the files of a cache folder change meaning
ANALYSIS = "analysis"
META = "meta.json"
ORDERS = ("confusion", "wordnet", "feature", "name")
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
    weights = Path(run_dir) / checkpoints.WEIGHTS
    try:
        st = weights.stat()
    except OSError:
        raise checkpoints.CheckpointError(f"{run_dir} has no {checkpoints.WEIGHTS}") from None
    n = _count(data, limit)
    return Path(run_dir) / ANALYSIS / f"{Path(data.cache).name}-n{n}-w{st.st_size}-{st.st_mtime_ns}"


def compute_cache(run_dir: Path, data, *, device: str = "cpu", progress: Progress | None = None,
                  limit: int = 0) -> Path:
    """The cache folder of the run on `data`, after running the forward pass if it is missing.

    Threads asking for the same folder wait for the first one instead of repeating the pass.
    """
    folder = cache_dir(run_dir, data, limit)
    with key_lock(str(folder)):
        if not _complete(folder):
            _forward_pass(Path(run_dir), data, folder, pick_device(device), progress,
                          _count(data, limit))
    return folder


def is_cached(run_dir: Path, data, limit: int = 0) -> bool:
    """Whether `val_outputs` and the channel maxima would be read rather than computed."""
    return _complete(cache_dir(run_dir, data, limit))


def val_outputs(run_dir: Path, data, *, device: str = "cpu", progress: Progress | None = None,
                limit: int = 0) -> ValOutputs:
    """Log-probabilities and features of the run on the validation set, from the cache.

    `limit` keeps the FIRST `limit` validation images (Tiny ImageNet's validation images come
    in shuffled class order, so that is close to balanced), so row i is always image i.
    """
    folder = compute_cache(run_dir, data, device=device, progress=progress, limit=limit)
    logp = _load(folder / "logp.npy")
    labels = np.asarray(data.val.labels[:len(logp)], dtype=np.int64)
    return ValOutputs(logp, _load(folder / "features.npy"), labels, logp.argmax(1))


def load_maxima(folder: Path) -> dict[str, np.ndarray]:
    """The per-layer activation maxima stored in a cache folder made by `compute_cache`."""
    layers = checkpoints.read_json(folder / META)["layers"]
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
        meta = checkpoints.read_json(folder / META)
    except checkpoints.CheckpointError:
        return False
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return False
    files = ["logp.npy", "features.npy"] + [f"maxima_{i}.npy" for i in range(len(meta["layers"]))]
    return all((folder / f).exists() for f in files)


def _load(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def save_array(path: Path, array: np.ndarray) -> None:
    """`np.save` to `path` atomically (temporary file + rename), never pickling."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    checkpoints.write_bytes(path, buf.getvalue())


def _half(array: np.ndarray) -> np.ndarray:
    """float16, clipped to its range (a huge activation stays huge rather than inf)."""
    return np.clip(array, -_F16_MAX, _F16_MAX).astype(np.float16)


# ------------------------------------------------------------- the forward pass


def _forward_pass(run_dir: Path, data, folder: Path, device: torch.device,
                  progress: Progress | None, n: int) -> None:
    report = progress or (lambda f, m: None)
    report(0.0, "loading the model")
    run = checkpoints.open_run(run_dir)
    if list(run.wnids) != list(data.classes.wnids):
        raise checkpoints.CheckpointError(
            f"{run.name} was trained on other classes than this data set's")
    # a private copy in channels-last memory: about 30% faster convolutions on a CPU too
    model = checkpoints.load_model(run_dir, device=device).to(memory_format=torch.channels_last)
    layers = list(getattr(model, "channel_layers", ()))
    logp, feats, maxima = _run_model(model, data.val.images, n, device, layers, report)
    save_array(folder / "logp.npy", logp)
    save_array(folder / "features.npy", _half(feats))
    for i, layer in enumerate(layers):
        save_array(folder / f"maxima_{i}.npy", _half(maxima[layer]))
    checkpoints.write_json(folder / META, {"format": FORMAT, "run": run.name, "n": n,
                                           "data": Path(data.cache).name, "layers": layers})
    _prune(folder)
    report(1.0, "done")


def _run_model(model: torch.nn.Module, images: np.ndarray, n: int, device: torch.device,
               layers: list[str], report: Progress):
    """One pass in batches: log-probs, features, and per-layer spatial maxima (hooks)."""
    caught: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    modules = dict(model.named_modules())
    handles = [modules[layer].register_forward_hook(_catcher(caught[layer]))
               for layer in layers]
    logps, feats = [], []
    try:
        with torch.inference_mode(), autocast(device):
            for start in range(0, n, BATCH):
                u8 = torch.from_numpy(np.array(images[start:min(start + BATCH, n)]))  # a copy
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


# ------------------------------------------------------------------ confusion


@dataclass(frozen=True)
class Pair:
    """A cell of the confusion matrix off the diagonal; `rate` is of the true class's images."""

    true: int
    pred: int
    count: int
    rate: float


@dataclass(frozen=True, eq=False)
class Confusion:
    """The confusion matrix and what the Confusion page shows about it."""

    matrix: np.ndarray  # (C, C) int64, matrix[true, predicted]
    totals: np.ndarray  # (C,) images per true class
    per_class: np.ndarray  # (C,) accuracy per class (0 for a class without images)
    order: np.ndarray  # (C,) a permutation of the classes that keeps related classes together
    order_by: str
    pairs: tuple[Pair, ...]  # the most confused pairs, largest count first
    best: np.ndarray  # class indices, most accurate first
    worst: np.ndarray  # class indices, least accurate first

    @property
    def rates(self) -> np.ndarray:
        """Row-normalised matrix: the share of each true class's images given each label."""
        return self.matrix / np.maximum(self.totals, 1)[:, None]


def confusion(outputs: ValOutputs, class_names: list[str], *, order_by: str = "confusion",
              wnids: list[str] | None = None, top_pairs: int = 30, k: int = 10) -> Confusion:
    """The confusion matrix of `outputs`, ordered by `order_by` (one of `ORDERS`).

    `confusion`: classes often mistaken for each other together (clustering of the matrix);
    `wordnet`: depth first through the WordNet tree (`wnids` needed); `feature`: classes whose
    mean penultimate features are alike together; `name`: alphabetical.
    """
    c = len(class_names)
    cm = evaluate.confusion_matrix(outputs.labels, outputs.preds, c).astype(np.int64)
    totals = cm.sum(1)
    acc = evaluate.per_class_accuracy(cm)
    pairs = tuple(Pair(t, p, n, n / max(int(totals[t]), 1))
                  for t, p, n in evaluate.most_confused(cm, top_pairs))
    present = np.flatnonzero(totals > 0)
    ranked = present[np.argsort(-acc[present], kind="stable")]
    order = class_order(order_by, cm=cm, outputs=outputs, class_names=class_names, wnids=wnids)
    return Confusion(cm, totals, acc, order, order_by, pairs, ranked[:k], ranked[::-1][:k])


def class_order(order_by: str, *, cm: np.ndarray, outputs: ValOutputs,
                class_names: list[str], wnids: list[str] | None = None) -> np.ndarray:
    """A permutation of the classes; see `confusion` for the methods."""
    if order_by == "confusion":
        return confusion_order(cm)
    if order_by == "feature":
        return feature_order(outputs.features, outputs.labels, len(class_names))
    if order_by == "name":
        return np.argsort([n.lower() for n in class_names], kind="stable")
    if order_by == "wordnet":
        if wnids is None:
            raise ValueError("order_by='wordnet' needs the classes' wnids")
        return wordnet.order(wnids)
    raise ValueError(f"order_by must be one of {ORDERS}, not {order_by!r}")


def confusion_order(cm: np.ndarray) -> np.ndarray:
    """Average-linkage clustering of `1 - (r + r.T) / max`, r the row-normalised matrix.

    Symmetrising makes "a taken for b" and "b taken for a" both pull a and b together;
    optimal leaf ordering then makes neighbours in the order as similar as the tree allows.
    """
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    sim = rates + rates.T
    np.fill_diagonal(sim, 0)
    top = sim.max()
    dist = 1 - sim / top if top > 0 else np.ones_like(sim)
    np.fill_diagonal(dist, 0)
    return _leaf_order(squareform(dist, checks=False))


def feature_order(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Clustering of the class means of the features by cosine distance: look-alikes together."""
    feats = np.asarray(features, np.float32)
    sums = np.zeros((num_classes, feats.shape[1]), np.float64)
    np.add.at(sums, labels, feats)
    means = sums / np.maximum(np.bincount(labels, minlength=num_classes), 1)[:, None]
    return _leaf_order(np.nan_to_num(pdist(means, "cosine"), nan=1.0))


def _leaf_order(condensed: np.ndarray) -> np.ndarray:
    n = int(round((1 + np.sqrt(1 + 8 * len(condensed))) / 2))
    if n < 3:
        return np.arange(n)
    z = linkage(condensed, "average")
    return leaves_list(optimal_leaf_ordering(z, condensed)).astype(np.int64)


def images_of_cell(outputs: ValOutputs, true_class: int, pred_class: int,
                   limit: int = 24) -> np.ndarray:
    """Validation images of `true_class` predicted as `pred_class`, most confident first."""
    idx = np.flatnonzero((outputs.labels == true_class) & (outputs.preds == pred_class))
    conf = outputs.logp[idx, pred_class]
    return idx[np.argsort(-conf, kind="stable")][:limit]


def per_class_table(conf: Confusion, class_names: list[str], wnids: list[str]) -> list[dict]:
    """One row per class for a sortable table: accuracy, and what it is most often taken for."""
    off = conf.matrix.copy()
    np.fill_diagonal(off, -1)
    position = np.empty(len(conf.order), np.int64)
    position[conf.order] = np.arange(len(conf.order))
    rows = []
    for c, name in enumerate(class_names):
        other = int(off[c].argmax())
        wrong = int(off[c, other])
        rows.append({"class": c, "wnid": wnids[c], "name": name,
                     "images": int(conf.totals[c]), "correct": int(conf.matrix[c, c]),
                     "accuracy": float(conf.per_class[c]),
                     "confused_with": class_names[other] if wrong > 0 else "",
                     "confused_count": max(wrong, 0), "position": int(position[c])})
    return rows
