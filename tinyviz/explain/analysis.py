"""What a trained run does on the validation set: one forward pass, stored in `RUN/analysis/`.

ONE pass over the validation images gives everything the explain pages read: log-probabilities
(Confusion), penultimate features (Embeddings) and each channel's spatial maximum in every
`channel_layers` layer (Channels). On a GPU it takes seconds, on a CPU minutes (longer still
for an EfficientNet at 192 px), so it is computed where it is cheap and kept:

* the trainer writes it at the end of every run (`tinyviz.training.loop`), `tinyviz analyse
  RUN` for any run, and the dashboard in a background job (`analysis_job`), never in a page;
* the pass goes in chunks of `CHUNK` images saved under `work/`, so a killed pass resumes where
  it stopped; a stratified subset (`SUBSET_PER_CLASS` images of each class) goes first and is
  published on its own (`subset/`), so the pages can draw something after a fifth of the pass;
* the folder is keyed by CONTENT: the validation set's digest (`tinyviz.data.cache.val_key`),
  the image count and the weights file's digest. A shipped run's analysis is therefore valid
  for any copy of the official archive, and ignored for any other data set or weights.

What is stored (`compact.npz` plus `meta.json`, written last) is compact enough to ship:
predictions and labels of every image (the confusion matrix needs them all), the top
`TOP_LOGP` log-probabilities of each image and that of its true class, the features reduced
to `PCA_DIMS` principal components with the projection (maps, neighbours, class orders), and
each channel's `TOP_CHANNEL` strongest images with their responses and its mean response. A
pass computed here also keeps the exact `logp.npy` (N x C) and `features.npy` (N x D);
`compact()` drops them for shipping. `ValOutputs` is the same either way: dense arrays,
rebuilt from the compact ones when the exact ones are absent (`Analysis.exact` says which).

An epoch view of the run (`RUN/epochs/E/`, kept by `--epoch-views`) has an analysis of its
own, the same pass and files in `RUN/epochs/E/analysis/` (the `epoch` argument below);
`tinyviz.explain.epochs` lists and opens them.

What is derived from the outputs lives beside this module (`confusion`, `channels`, `embed`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..data.batches import to_float
from ..data.cache import val_key
from ..errors import CheckpointError, JobError
from ..runs.folder import RunFolder, open_run
from ..runs.weights import load_model
from ..runtime.background import Lock
from ..runtime.device import autocast, pick_device
from . import mirror

Progress = Callable[[float, str], None]
FORMAT = 2  # bump when the files of an analysis folder change meaning
CHUNK = 250  # images per saved chunk of the pass
SUBSET_PER_CLASS = 10
TOP_LOGP = 10
TOP_CHANNEL = 50  # the Channels page ranks channels by their 50 best images' classes
PCA_DIMS = 64  # t-SNE and UMAP reduce to 50 first; PCA maps use 2 or 3
META, COMPACT, WORK, SUBSET = "meta.json", "compact.npz", "work", "subset"
PROGRESS_FILE, LOCK_FILE = "progress.json", "lock"
EXACT = ("logp.npy", "features.npy")
_FOLDER = re.compile(r"[0-9a-f]{16}-n\d+-w[0-9a-f]{16}")
_LEGACY = re.compile(r".+-n\d+-w\d+-\d+")  # format 1: named after the cache folder and mtime
_F16_MAX = float(np.finfo(np.float16).max)
_KEY_LOCKS: dict[str, list] = {}  # key -> [lock, users]: only keys in use (`key_lock`)
_KEY_GUARD = threading.Lock()
_PROBLEMS: dict[tuple, str | None] = {}  # `problem` per folder and version of its files
_PROBLEMS_MAX = 256


@dataclass(frozen=True, eq=False)
class ValOutputs:
    """A run's outputs on validation images: row i is validation image `indices[i]`.

    `indices` is None when row i is validation image i (every pass over the first N images);
    a subset's rows are its images in validation order. `image_index` maps rows to images.
    """

    logp: np.ndarray  # (N, C) float32 log-probabilities
    features: np.ndarray  # (N, D) float16 penultimate features (or `ReducedFeatures`)
    labels: np.ndarray  # (N,) int64
    preds: np.ndarray  # (N,) int64, argmax of logp
    indices: np.ndarray | None = None  # (N,) int64 validation image of each row

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def top1(self) -> float:
        return float((self.preds == self.labels).mean()) if len(self) else 0.0

    def misclassified(self) -> np.ndarray:
        """Rows whose top-1 prediction is wrong (validation images: `image_index`)."""
        return np.flatnonzero(self.preds != self.labels)

    def image_index(self, rows):
        """The validation image index of each row (rows may be an int or an array)."""
        if self.indices is None:
            return rows
        return self.indices[rows]

    @property
    def top5(self) -> float:
        if not len(self):
            return 0.0
        k = min(5, self.logp.shape[1])
        top = np.argpartition(-self.logp, k - 1, axis=1)[:, :k]
        return float((top == self.labels[:, None]).any(1).mean())


class ReducedFeatures:
    """Features rebuilt from their principal components, only the rows asked for (a page
    maps seven classes; a logistic regression's 12,288 'features' of 10,000 images would be
    245 MB rebuilt whole). Indexing gives float16 rows; `np.asarray` all of them (kept)."""

    ndim = 2
    dtype = np.dtype(np.float16)

    def __init__(self, reduced: np.ndarray, components: np.ndarray, mean: np.ndarray) -> None:
        self._reduced = reduced
        self._components = np.asarray(components, np.float32)
        self._mean = np.asarray(mean, np.float32)
        self.shape = (len(reduced), len(self._mean))
        self._full: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if self._full is not None:
            return self._full[key]
        if isinstance(key, tuple) and len(key) == 2:  # rows and columns: rebuild only those
            rows, cols = key
            picked = np.asarray(self._reduced[rows], np.float32) @ self._components[:, cols]
            return _half(picked + self._mean[cols])
        if isinstance(key, tuple):
            return self[key[0]][(slice(None), *key[1:])]
        rows = np.asarray(self._reduced[key], np.float32)
        return _half(rows @ self._components + self._mean)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self._full is None:
            self._full = self[:]
        return self._full if dtype is None else self._full.astype(dtype)


@dataclass(frozen=True, eq=False)
class ChannelTops:
    """One layer's channels: each one's strongest rows (strongest first) and mean response."""

    rows: np.ndarray  # (C, K) int64 rows of the outputs
    values: np.ndarray  # (C, K) float32 the channel's spatial maximum on those rows
    mean: np.ndarray  # (C,) float32 mean over all rows of the channel's spatial maximum

    @property
    def channels(self) -> int:
        return len(self.mean)

    @classmethod
    def from_maxima(cls, maxima: np.ndarray, k: int = TOP_CHANNEL) -> ChannelTops:
        """From `(N, C)` per-image maxima: argpartition then sort, per channel."""
        acts = np.asarray(maxima, np.float32)
        k = min(k, len(acts))
        if k <= 0:
            empty = np.zeros((acts.shape[1], 0))
            return cls(empty.astype(np.int64), empty.astype(np.float32), np.zeros(acts.shape[1]))
        part = np.argpartition(-acts, k - 1, axis=0)[:k]  # (k, C)
        vals = np.take_along_axis(acts, part, 0)
        order = np.argsort(-vals, axis=0, kind="stable")
        rows = np.take_along_axis(part, order, 0).T.astype(np.int64)
        values = np.take_along_axis(vals, order, 0).T.astype(np.float32)
        return cls(rows, values, acts.mean(0).astype(np.float32))


@dataclass(frozen=True, eq=False)
class Analysis:
    """A stored analysis: the outputs, each layer's channels, and what it was computed on."""

    folder: Path
    meta: dict
    outputs: ValOutputs
    channels: dict[str, ChannelTops] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """The stratified subset, shown while the full set is computed."""
        return self.meta.get("stage") == SUBSET

    @property
    def exact(self) -> bool:
        """Exact log-probabilities and features (else rebuilt from the compact arrays)."""
        return all((self.folder / f).exists() for f in EXACT)

    @property
    def total(self) -> int:
        """Images of the pass this belongs to (the subset says how many it is part of)."""
        return int(self.meta.get("of", len(self.outputs)))


# ------------------------------------------------------------------ where


def weights_digest(path: Path) -> str:
    """sha256 of a weights file (`io.file_digest`, remembered per path, size and mtime in a
    bounded memo): a copy, a clone or an fp16 export of the same bytes gets the same
    analysis, rewritten weights a new one."""
    return io.file_digest(Path(path))


def _weights_file(run_dir: Path, snapshot: str | None, epoch: int | None = None) -> Path:
    folder = RunFolder(Path(run_dir))
    if epoch is not None:
        path = folder.epoch_weights(epoch)
    else:
        path = folder.snapshot(snapshot) if snapshot else folder.weights
    if not path.exists():
        raise CheckpointError(f"{run_dir} has no {path.relative_to(folder.path)}")
    return path


def _root(run_dir: Path, epoch: int | None) -> Path:
    """Where analysis folders live: the run's `analysis/`, or its epoch view's."""
    folder = RunFolder(Path(run_dir))
    return folder.analysis if epoch is None else folder.epoch_analysis(epoch)


def cache_dir(
    run_dir: Path, data, limit: int = 0, snapshot: str | None = None, epoch: int | None = None
) -> Path:
    """The folder that holds (or will hold) this run's analysis of `data`'s first images
    (of a snapshot's weights, or of an epoch view's, in that view's own folder)."""
    weights = weights_digest(_weights_file(run_dir, snapshot, epoch))
    name = f"{val_key(data)[:16]}-n{_count(data, limit)}-w{weights[:16]}"
    own = _root(run_dir, epoch) / name
    if is_complete(own):  # what ships with the run is read from it
        return own
    return mirror.writable(own, Path(run_dir))  # a shipped run's go to its mirror


def _count(data, limit: int) -> int:
    n = len(data.val.labels)
    return min(limit, n) if limit else n


def subset_rows(labels: np.ndarray, per_class: int | None = None) -> np.ndarray:
    """The first `per_class` (`SUBSET_PER_CLASS`) images of each class, in validation order."""
    per_class = SUBSET_PER_CLASS if per_class is None else per_class
    labels = np.asarray(labels, np.int64)
    rank = np.zeros(len(labels), np.int64)
    seen: dict[int, int] = {}
    for i, c in enumerate(labels.tolist()):
        rank[i] = seen.get(c, 0)
        seen[c] = rank[i] + 1
    return np.flatnonzero(rank < per_class).astype(np.int64)


def pass_order(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """The order of the pass: the subset, then the rest; and the subset's size (0 if it is
    everything, then there is no separate subset)."""
    n = len(labels)
    first = subset_rows(labels)
    if len(first) >= n:
        return np.arange(n, dtype=np.int64), 0
    rest = np.setdiff1d(np.arange(n), first)
    return np.concatenate([first, rest]).astype(np.int64), len(first)


# ------------------------------------------------------------------ reading


def is_complete(folder: Path) -> bool:
    """meta.json (written last) is there, of this format, with the compact arrays (the
    exact ones are optional: a shipped analysis has none), and they fit (`problem`): a bad
    file counts as missing, so the background job computes the analysis again."""
    meta = _meta(folder)
    return meta is not None and (folder / COMPACT).exists() and problem(folder) is None


def problem(folder: Path) -> str | None:
    """Why the analysis stored in `folder` cannot be used, in one line (None: it can).

    Checked once per version of its files: it opens (a truncated npz does not), every array
    is there with the shape the others and the folder's image count give, class and row
    numbers are in range, and values are finite (log-probabilities may be -inf).
    """
    folder = Path(folder)
    stamp = []
    for name in (META, COMPACT, *EXACT):
        try:
            st = (folder / name).stat()
            stamp.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            continue
    memo = (str(folder), tuple(stamp))
    if memo not in _PROBLEMS:
        if len(_PROBLEMS) >= _PROBLEMS_MAX:
            _PROBLEMS.pop(next(iter(_PROBLEMS)))  # the oldest: the memo stays bounded
        try:
            _load_checked(folder)
            _PROBLEMS[memo] = None
        except CheckpointError as e:
            _PROBLEMS[memo] = str(e)
    return _PROBLEMS[memo]


def rejected(run_dir: Path, data, limit: int = 0, epoch: int | None = None) -> str | None:
    """One line for a person when a stored analysis of this run was found unusable and is
    treated as missing (computed again in the background); None otherwise."""
    own = _root(run_dir, epoch) / cache_dir(run_dir, data, limit, epoch=epoch).name
    places = dict.fromkeys([own, mirror.writable(own, Path(run_dir))])
    for candidate in [p for base in places for p in (base, base / SUBSET)]:
        if _meta(candidate) is not None and (candidate / COMPACT).exists():
            why = problem(candidate)
            if why is not None:
                return f"The stored analysis cannot be used ({why}): it is computed again."
    return None


def _meta(folder: Path) -> dict | None:
    try:
        meta = io.read_json(Path(folder) / META)
    except CheckpointError:
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def is_cached(run_dir: Path, data, limit: int = 0, epoch: int | None = None) -> bool:
    """Whether the full analysis is stored (read, not computed, by `val_outputs`)."""
    return is_complete(cache_dir(run_dir, data, limit, epoch=epoch))


def available(run_dir: Path, data, limit: int = 0, epoch: int | None = None) -> Path | None:
    """The best stored analysis folder without computing anything: the full set, else the
    subset, else None."""
    folder = cache_dir(run_dir, data, limit, epoch=epoch)
    for candidate in (folder, folder / SUBSET):
        if is_complete(candidate):
            return candidate
    return None


def read(folder: Path) -> Analysis:
    """The analysis stored in `folder` (a folder `available` or `compute` returned); a
    CheckpointError with one line when its files do not fit (`problem`)."""
    return _load_checked(Path(folder))


def _load_checked(folder: Path) -> Analysis:
    meta = _meta(folder)
    if meta is None:
        raise CheckpointError(f"{folder} holds no analysis of this version")
    try:
        with np.load(folder / COMPACT, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{COMPACT} cannot be read ({_short(e)})") from None
    try:
        return _build(folder, meta, arrays)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise CheckpointError(f"{COMPACT} or {META} does not fit ({_short(e)})") from None


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _build(folder: Path, meta: dict, arrays: dict[str, np.ndarray]) -> Analysis:
    """The Analysis of checked arrays (see `problem` for what is checked)."""
    classes = int(meta["classes"])
    layers = meta["layers"]
    if classes < 1 or not isinstance(layers, list):
        raise CheckpointError(f"{META} says {classes} classes")
    labels = _ints(arrays, "labels", classes)
    n = len(labels)
    expected = _images_of(folder)
    stage_full = meta.get("stage") != SUBSET
    if expected is not None and (n != expected if stage_full else n > expected):
        raise CheckpointError(f"labels has {n:,} rows for {expected:,} images")
    preds = _ints(arrays, "preds", classes, n)
    indices = _ints(arrays, "indices", expected or np.iinfo(np.int64).max, n)
    exact = all((folder / f).exists() for f in EXACT)
    if exact:
        logp = _mmap(folder / "logp.npy")
        features = _mmap(folder / "features.npy")
        _shape("logp.npy", logp, (n, classes))
        _shape("features.npy", features, (n, None))
        _finite("logp.npy", logp, allow_minus_inf=True)
        _finite("features.npy", features)
    else:
        k = min(TOP_LOGP, classes)
        top_classes = _ints(arrays, "top_classes", classes, n, k)
        top_logp = _floats(arrays, "top_logp", (n, k), allow_minus_inf=True)
        logp_true = _floats(arrays, "logp_true", (n,), allow_minus_inf=True)
        reduced = _floats(arrays, "pca", (n, None))
        components = _floats(arrays, "components", (reduced.shape[1], None))
        mean = _floats(arrays, "mean", (components.shape[1],))
        logp = dense_logp(top_classes, top_logp.astype(np.float32), labels, logp_true, classes)
        features = ReducedFeatures(reduced, components, mean)
    if len(features) and int(features.shape[1]) != int(meta.get("features", features.shape[1])):
        raise CheckpointError(f"features have {features.shape[1]:,} columns, {META} says otherwise")
    full = stage_full and np.array_equal(indices, np.arange(len(indices)))
    outputs = ValOutputs(logp, features, labels, preds, None if full else indices)
    tops = {}
    for i, layer in enumerate(layers):
        rows = _ints(arrays, f"rows_{i}", max(n, 1))
        if rows.ndim != 2:
            raise CheckpointError(f"rows_{i} has shape {rows.shape}")
        values = _floats(arrays, f"values_{i}", rows.shape, allow_minus_inf=True)
        mean_i = _floats(arrays, f"mean_{i}", (rows.shape[0],))
        tops[str(layer)] = ChannelTops(rows, values.astype(np.float32), mean_i.astype(np.float32))
    return Analysis(folder, meta, outputs, tops)


def _images_of(folder: Path) -> int | None:
    """The image count the folder's name gives (`...-n<images>-w...`; a subset's parent)."""
    for name in (folder.name, folder.parent.name):
        m = re.fullmatch(r"[0-9a-f]+-n(\d+)-w[0-9a-f]+", name)
        if m:
            return int(m.group(1))
    return None


def _array(arrays: dict, name: str) -> np.ndarray:
    if name not in arrays:
        raise CheckpointError(f"{COMPACT} has no {name}")
    return arrays[name]


def _shape(name: str, a, shape: tuple) -> None:
    pairs = zip(a.shape, shape, strict=False)
    ok = a.ndim == len(shape) and all(s is None or d == s for d, s in pairs)
    if not ok:
        want = " x ".join("D" if s is None else f"{s:,}" for s in shape)
        have = " x ".join(f"{d:,}" for d in a.shape)
        raise CheckpointError(f"{name} is {have or 'a scalar'}, not {want}")


def _ints(arrays: dict, name: str, bound: int, n: int | None = None, k: int | None = None):
    a = _array(arrays, name)
    if n is not None:
        _shape(name, a, (n,) if k is None else (n, k))
    if a.dtype.kind not in "iu":
        raise CheckpointError(f"{name} holds {a.dtype} values, not integers")
    if a.size and (a.min() < 0 or a.max() >= bound):
        raise CheckpointError(f"{name} holds numbers outside 0..{bound - 1:,}")
    return a.astype(np.int64)


def _floats(arrays: dict, name: str, shape: tuple, allow_minus_inf: bool = False):
    a = _array(arrays, name)
    _shape(name, a, shape)
    if a.dtype.kind != "f":
        raise CheckpointError(f"{name} holds {a.dtype} values, not floats")
    _finite(name, a, allow_minus_inf)
    return a


def _finite(name: str, a, allow_minus_inf: bool = False) -> None:
    """No NaN or inf (-inf allowed in log-probabilities), checked in blocks of rows."""
    for start in range(0, max(len(a), 1), 4096):
        block = np.asarray(a[start : start + 4096], np.float32)
        bad = np.isnan(block) | (block == np.inf)
        if not allow_minus_inf:
            bad |= block == -np.inf
        if bad.any():
            raise CheckpointError(f"{name} holds NaN or infinite values")


def dense_logp(
    top_classes: np.ndarray,
    top_logp: np.ndarray,
    labels: np.ndarray,
    logp_true: np.ndarray,
    classes: int,
) -> np.ndarray:
    """(N, C) log-probabilities from the top-k ones and the true class's: the remaining
    probability is spread evenly over the other classes (argmax and top-k stay exact)."""
    n, k = top_classes.shape
    kept = np.exp(top_logp.astype(np.float64)).sum(1)
    rest = np.clip(1 - kept, 1e-12, 1) / max(classes - k, 1)
    logp = np.repeat(np.log(rest)[:, None], classes, 1).astype(np.float32)
    rows = np.arange(n)[:, None]
    logp[rows, top_classes.astype(np.int64)] = top_logp
    logp[np.arange(n), labels] = logp_true
    return logp


def _mmap(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False, mmap_mode="r")


def _half(array: np.ndarray) -> np.ndarray:
    """float16, clipped to its range (a huge activation stays huge rather than inf)."""
    return np.clip(array, -_F16_MAX, _F16_MAX).astype(np.float16)


def val_outputs(
    run_dir: Path,
    data,
    *,
    device: str = "cpu",
    progress: Progress | None = None,
    limit: int = 0,
    snapshot: str | None = None,
    epoch: int | None = None,
) -> ValOutputs:
    """The run's outputs on the first `limit` (all) validation images; row i is image i.

    Reads the stored analysis, computing it in this process first when it is missing (the
    command line, benches, tests and explanations built on it; pages use `available`).
    """
    folder = compute(
        run_dir, data, device=device, progress=progress, limit=limit, snapshot=snapshot, epoch=epoch
    )
    return read(folder).outputs


def compute_cache(
    run_dir: Path, data, *, device: str = "cpu", progress: Progress | None = None, limit: int = 0
) -> Path:
    """The full analysis folder of the run on `data`, computed first if it is missing."""
    return compute(run_dir, data, device=device, progress=progress, limit=limit)


@contextlib.contextmanager
def key_lock(key: str) -> Iterator[None]:
    """Hold the lock of a cache key (a path), so two sessions never compute the same thing
    at once. A key's lock exists only while someone holds or waits for it: the table stays
    as small as the work in progress, however many keys a server sees."""
    with _KEY_GUARD:
        entry = _KEY_LOCKS.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _KEY_GUARD:
            entry[1] -= 1
            if entry[1] == 0:
                del _KEY_LOCKS[key]


# ------------------------------------------------------------------ computing


def compute(
    run_dir: Path,
    data,
    *,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    limit: int = 0,
    snapshot: str | None = None,
    wait: bool = True,
    epoch: int | None = None,
) -> Path:
    """The full analysis folder, after computing what is missing (resuming saved chunks).

    One process computes a folder at a time (a file lock in `work/`); another one waits for
    it (`wait`) or gets a `JobError` saying it is busy. Threads of one process wait too.
    """
    folder = cache_dir(run_dir, data, limit, snapshot, epoch)
    if is_complete(folder):
        return folder
    with key_lock(str(folder)), _process_lock(folder / WORK, wait) as holding:
        if not holding:
            raise JobError(f"the analysis of {Path(run_dir).name} is already being computed")
        if not is_complete(folder):
            device = pick_device(str(device))
            _Pass(Path(run_dir), data, folder, device, progress, limit, snapshot, epoch).run()
    return folder


@contextlib.contextmanager
def _process_lock(work: Path, wait: bool) -> Iterator[bool]:
    """`work/lock` (a `runtime.background.Lock`) for as long as the pass runs; the kernel
    drops it when the process dies, so a killed pass never leaves a stale lock. A job
    launched by a page holds it from its start (`analysis_job`)."""
    work.mkdir(parents=True, exist_ok=True)
    with Lock(work / LOCK_FILE).hold(wait) as holding:
        yield holding


def is_running(folder: Path) -> bool:
    """Whether some process holds the pass's lock for this analysis folder now (tested
    without taking it)."""
    return Lock(Path(folder) / WORK / LOCK_FILE).held()


def read_progress(folder: Path) -> dict:
    """What the pass last wrote about itself (`{}` before its first write)."""
    try:
        info = io.read_json(Path(folder) / WORK / PROGRESS_FILE)
    except CheckpointError:
        return {}
    return info if isinstance(info, dict) else {}


class _Pass:
    """The forward pass of one analysis folder, chunk by chunk (see the module docstring)."""

    def __init__(self, run_dir, data, folder, device, progress, limit, snapshot, epoch) -> None:
        self.run_dir, self.data, self.folder, self.device = run_dir, data, folder, device
        self.report = progress or (lambda f, m: None)
        self.snapshot, self.epoch, self.work = snapshot, epoch, folder / WORK
        self.n = _count(data, limit)
        self.labels = np.asarray(data.val.labels[: self.n], np.int64)
        self.order, self.n_subset = pass_order(self.labels)
        self.chunks = [self.order[s : s + CHUNK] for s in range(0, self.n, CHUNK)]
        self.started, self.images_done_here, self.seconds_here = time.time(), 0, 0.0

    def run(self) -> None:
        self.report(0.0, "loading the model")
        run = open_run(self.run_dir)
        if list(run.wnids) != list(self.data.classes.wnids):
            raise CheckpointError(f"{run.name} was trained on other classes than this data set's")
        self.run_name = run.name
        io.remove_stale_in(self.work)
        # a private copy in channels-last memory: faster convolutions on a CPU too
        model = load_model(run, snapshot=self.snapshot, device=self.device, epoch=self.epoch)
        model = model.to(memory_format=torch.channels_last)
        self.layers = list(getattr(model, "channel_layers", ()))
        self._write_progress("running")
        for i, rows in enumerate(self.chunks):
            if self._chunk(i, rows) is None:
                start = time.perf_counter()
                arrays = _run_model(model, self.data.val.images, rows, self.device, self.layers)
                self.seconds_here += time.perf_counter() - start
                self.images_done_here += len(rows)
                io.save_arrays(self.work / f"chunk_{i:04d}.npz", arrays, compress=False)
            done = min((i + 1) * CHUNK, self.n)
            if self.n_subset and done >= self.n_subset and not is_complete(self.folder / SUBSET):
                self._publish(self.folder / SUBSET, np.sort(self.order[: self.n_subset]))
            self._write_progress("running")
            self.report(0.95 * done / self.n, f"forward pass: {done:,} / {self.n:,} images")
        self.report(0.96, "storing the results")
        self._write_speed(model)  # before meta.json: "done" means everything is there
        self._publish(self.folder, np.arange(self.n))
        shutil.rmtree(self.folder / SUBSET, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)
        prune(self.run_dir, keep=self.folder, epoch=self.epoch)
        self.report(1.0, "done")

    def _chunk(self, i: int, rows: np.ndarray) -> dict | None:
        """The saved chunk `i` if it is there and is of these rows and layers, else None."""
        path = self.work / f"chunk_{i:04d}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            return None
        same = np.array_equal(arrays.get("rows", []), rows)
        layers = all(f"max_{j}" in arrays for j in range(len(self.layers)))
        return arrays if same and layers else None

    def _publish(self, folder: Path, rows: np.ndarray) -> None:
        """Gather `rows` (validation indices, sorted) from the chunks into a stored analysis."""
        parts = [self._chunk(i, r) for i, r in enumerate(self.chunks)]
        parts = [p for p in parts if p is not None]
        have = np.concatenate([p["rows"] for p in parts])
        where = np.full(self.n, -1, np.int64)
        where[have] = np.arange(len(have))
        pick = where[rows]
        if (pick < 0).any():
            raise CheckpointError(f"{folder}: the pass is missing images")

        def gather(name: str) -> np.ndarray:
            return np.concatenate([p[name] for p in parts])[pick]

        maxima = {layer: gather(f"max_{j}") for j, layer in enumerate(self.layers)}
        store(
            folder,
            logp=gather("logp"),
            features=gather("features"),
            labels=self.labels[rows],
            indices=rows,
            maxima=maxima,
            meta={
                "run": self.run_name,
                "snapshot": self.snapshot,
                "epoch": self.epoch,
                "stage": SUBSET if len(rows) < self.n else "full",
                "of": self.n,
                "data_key": val_key(self.data),
                "device": str(self.device),
                "seconds_per_image": self.seconds_per_image,
                "computed_here": int(self.images_done_here),  # the rest: saved by an earlier pass
            },
        )

    @property
    def seconds_per_image(self) -> float | None:
        if not self.images_done_here:
            return None
        return round(self.seconds_here / self.images_done_here, 5)

    def _write_progress(self, status: str) -> None:
        saved = (self.work / f"chunk_{i:04d}.npz" for i in range(len(self.chunks)))
        done = sum(len(r) for r, path in zip(self.chunks, saved, strict=True) if path.exists())
        io.write_json(
            self.work / PROGRESS_FILE,
            {
                "pid": os.getpid(),
                "status": status,
                "started": self.started,
                "updated": time.time(),
                "done": int(done),
                "total": int(self.n),
                "subset": int(self.n_subset),
                "seconds_per_image": self.seconds_per_image,
                "device": self.device.type,
            },
        )

    def _write_speed(self, model: torch.nn.Module) -> None:
        """Measured costs of this model on this kind of device, for estimates (`speed`)."""
        from . import speed

        if self.snapshot or self.epoch is not None:  # the run's own weights stand for the model
            return
        model = model.to(memory_format=torch.contiguous_format)  # as the pages hold it
        speed.record(self.run_dir, speed.measure(model, self.data.val.images, self.device))


def store(
    folder: Path,
    *,
    logp: np.ndarray,
    features: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    maxima: dict[str, np.ndarray],
    meta: dict,
    exact: bool = True,
) -> None:
    """Write an analysis folder: compact arrays, the exact ones (`exact`), meta.json last."""
    folder.mkdir(parents=True, exist_ok=True)
    logp = np.asarray(logp, np.float32)
    n, classes = logp.shape
    k = min(TOP_LOGP, classes)
    top = np.argsort(-logp, axis=1, kind="stable")[:, :k]
    feats = np.asarray(features, np.float32)
    mean, components, reduced = _pca(feats)
    small = _small_int(max(n, classes))
    arrays = {
        "indices": np.asarray(indices).astype(_small_int(int(np.max(indices, initial=0)) + 1)),
        "labels": np.asarray(labels).astype(small),
        "preds": logp.argmax(1).astype(small),
        "logp_true": logp[np.arange(n), np.asarray(labels, np.int64)],
        "top_classes": top.astype(small),
        "top_logp": _half(np.take_along_axis(logp, top, 1)),  # displayed as percentages
        "mean": mean,
        "components": _half(components),
        "pca": _half(reduced),
    }
    layers = list(maxima)
    for i, layer in enumerate(layers):
        tops = ChannelTops.from_maxima(maxima[layer])
        arrays[f"rows_{i}"] = tops.rows.astype(small)
        arrays[f"values_{i}"] = _half(tops.values)
        arrays[f"mean_{i}"] = tops.mean
    for name in (META, COMPACT, *EXACT):  # an older result here goes first: meta.json first
        (folder / name).unlink(missing_ok=True)
    io.save_arrays(folder / COMPACT, arrays)
    if exact:
        io.save_array(folder / "logp.npy", logp)
        io.save_array(folder / "features.npy", _half(feats))
    io.write_json(
        folder / META,
        {
            **meta,
            "format": FORMAT,
            "n": int(n),
            "classes": int(classes),
            "features": int(feats.shape[1]),
            "layers": layers,
            "top_logp": int(k),
            "top_channel": TOP_CHANNEL,
            "pca_dims": int(components.shape[0]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def compact(folder: Path) -> int:
    """Drop the exact arrays of an analysis folder (for shipping); returns bytes freed."""
    freed = 0
    for name in EXACT:
        path = Path(folder) / name
        if path.exists():
            freed += path.stat().st_size
            path.unlink()
    return freed


def _pca(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (D,), components (d, D) float32 and reduced features (N, d)."""
    from sklearn.decomposition import PCA

    n, dims = feats.shape
    d = min(PCA_DIMS, n, dims)
    if d < 2:  # one image (or one feature): nothing to reduce, kept as it is
        return np.zeros(dims, np.float32), np.eye(dims, dtype=np.float32), feats
    solver = "randomized" if d < min(n, dims) else "full"
    reduced = (pca := PCA(n_components=d, svd_solver=solver, random_state=0)).fit_transform(feats)
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32), reduced


def _small_int(bound: int):
    return np.int16 if bound <= np.iinfo(np.int16).max else np.int32


def _run_model(
    model: torch.nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    device: torch.device,
    layers: list[str],
) -> dict[str, np.ndarray]:
    """One chunk: log-probs, features and per-layer spatial maxima (hooks) of `rows`."""
    caught: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    modules = dict(model.named_modules())
    handles = [modules[layer].register_forward_hook(_catcher(caught[layer])) for layer in layers]
    try:
        with torch.inference_mode(), autocast(device):
            u8 = torch.from_numpy(np.asarray(images[rows]))  # a copy, in the rows' order
            x = to_float(u8.to(device)).contiguous(memory_format=torch.channels_last)
            f = model.forward_features(x)
            logp = model.forward_head(f).float().log_softmax(1).cpu().numpy()
            feats = _half(f.float().cpu().numpy())
    finally:
        for h in handles:
            h.remove()
    out = {"rows": np.asarray(rows, np.int64), "logp": logp, "features": feats}
    for j, layer in enumerate(layers):
        out[f"max_{j}"] = _half(torch.cat(caught[layer]).numpy())
    return out


def _catcher(store_: list[torch.Tensor]):
    def hook(module, inputs, output) -> None:
        store_.append(output.detach().flatten(2).amax(2).float().cpu())

    return hook


# ------------------------------------------------------------------ tidying


def prune(run_dir: Path, keep: Path, epoch: int | None = None) -> None:
    """Delete analysis folders of weights the run no longer has (retrained, dropped
    snapshots) and of older formats; other files in `RUN/analysis/` are not ours: kept.
    With `epoch`, the same in that epoch view's `analysis/`, for the view's weights."""
    folder = RunFolder(Path(run_dir))
    wanted = set()
    weights = [folder.weights, *_snapshot_files(folder)]
    for path in weights if epoch is None else [folder.epoch_weights(epoch)]:
        with contextlib.suppress(CheckpointError, OSError):
            wanted.add(weights_digest(path)[:16])
    try:  # a shipped run's own folder is never touched: only its mirror is tidied
        entries = list(mirror.writable(_root(run_dir, epoch), Path(run_dir)).iterdir())
    except OSError:
        return
    for other in entries:
        if not other.is_dir() or other == keep:
            continue
        legacy = bool(_LEGACY.fullmatch(other.name)) and not _FOLDER.fullmatch(other.name)
        stale = _FOLDER.fullmatch(other.name) and other.name.rsplit("-w", 1)[1] not in wanted
        if legacy or stale:
            shutil.rmtree(other, ignore_errors=True)


def _snapshot_files(folder: RunFolder) -> list[Path]:
    try:
        return [p for p in folder.snapshots.glob("*.safetensors")]
    except OSError:
        return []
