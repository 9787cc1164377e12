"""Penultimate features of TRAINING images, one class at a time, computed on demand, cached.

The validation pass (`analysis`) covers 10,000 images; the 100,000 training images take ten
times as long, too slow for a page. But most questions need few classes: "which training
images of tabby and of Egyptian cat does this image resemble?" needs 2 x 500 images, a tenth
of the validation pass (bench/explain_speed.py measures it; the figures are in
bench/results/docstring_timings.md). So features are stored per class, `class-KKK.npy`
(float16, rows in the order of `data.train.of_class(k)`), in a folder of the run's analysis
keyed by the weights' content and the data set's cache; a class is computed the first time
it is asked for, and `python -m tinyviz train-features RUN` computes them all (best on a GPU).
The Embeddings page draws the training images of every class found here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..errors import CheckpointError
from ..runs.folder import RunFolder, open_run
from ..runs.weights import load_model
from ..runtime.device import pick_device
from . import mirror, runinfo, tasks

Progress = Callable[[float, str], None]
TASK = "train-features"  # the run task computing them (`tinyviz train-features`)
BATCH = 100
_F16_MAX = float(np.finfo(np.float16).max)


def folder(run_dir: Path, data) -> Path:
    """Where the run's training features on this data set live."""
    weights = runinfo.weights_hash(RunFolder(Path(run_dir)).weights)[:16]
    own = RunFolder(Path(run_dir)).analysis / f"train-{Path(data.cache).name}-{weights}"
    return mirror.writable(own, Path(run_dir))  # a shipped run's: in its mirror


def _file(base: Path, k: int) -> Path:
    return base / f"class-{int(k):03d}.npy"


def cached_classes(run_dir: Path, data) -> list[int]:
    """The classes whose training features are stored."""
    base = folder(run_dir, data)
    return [k for k in range(len(data.classes.wnids)) if _file(base, k).exists()]


def is_cached(run_dir: Path, data, classes: Sequence[int]) -> bool:
    base = folder(run_dir, data)
    return all(_file(base, k).exists() for k in classes)


def class_features(run_dir: Path, data, k: int) -> np.ndarray:
    """(n_k, D) float16 features of class k's training images (it must be cached)."""
    path = _file(folder(run_dir, data), k)
    array = io.load_array(path, inside=path.parent.parent.parent)
    if array.ndim != 2 or len(array) != len(data.train.of_class(k)):
        raise CheckpointError(f"{path} does not hold the features of class {k}'s images")
    return array


def features(run_dir: Path, data, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(features (M, D) float16, training indices (M,)) of the cached `classes`, in order."""
    parts = [class_features(run_dir, data, k) for k in classes]
    idx = [data.train.of_class(k) for k in classes]
    if not parts:
        return np.zeros((0, 0), np.float16), np.zeros(0, np.int64)
    return np.concatenate(parts), np.concatenate(idx).astype(np.int64)


def compute(
    run_dir: Path,
    data,
    classes: Sequence[int],
    *,
    model: torch.nn.Module | None = None,
    device: str = "cpu",
    progress: Progress | None = None,
) -> list[int]:
    """Compute and store the features of the `classes` that are not stored yet; returns them.

    `model`: the run's model if the caller has it loaded (a page's shared model: the passes
    hold its lock), else it is loaded here.
    """
    report = progress or (lambda f, m: None)
    base = folder(run_dir, data)
    todo = [int(k) for k in dict.fromkeys(classes) if not _file(base, k).exists()]
    if not todo:
        return []
    if model is None:
        run = open_run(Path(run_dir))
        if list(run.wnids) != list(data.classes.wnids):
            raise CheckpointError(f"{run.name} was trained on other classes than this data set's")
        model = load_model(run, device=pick_device(device))
    total = sum(len(data.train.of_class(k)) for k in todo)
    done = 0
    for k in todo:
        idx = data.train.of_class(k)
        feats = []
        for start in range(0, len(idx), BATCH):
            feats.append(runinfo.penultimate(model, data.train.images[idx[start : start + BATCH]]))
            done += len(feats[-1])
            report(done / total, f"{done:,} / {total:,} training images")
        array = np.concatenate(feats) if feats else np.zeros((0, 0), np.float32)
        io.save_array(_file(base, k), np.clip(array, -_F16_MAX, _F16_MAX).astype(np.float16))
    return todo


def computing(run_dir: Path) -> tuple[int, ...] | None:
    """The classes the run's task is computing now, when a page launched it (its
    `--classes`); None when that is not known: none runs, one typed by hand (its classes
    are not recorded), or a launch for every class."""
    args = tasks.launched_args(Path(run_dir), TASK)
    if "--classes" not in args:
        return None
    after = args[args.index("--classes") + 1 :]
    chosen = []
    for arg in after:
        if not arg.isdigit():
            break
        chosen.append(int(arg))
    return tuple(chosen)


def estimate_seconds(model: torch.nn.Module, run_dir: Path, data, classes: Sequence[int]) -> float:
    """Seconds `compute` would take for the classes not stored yet (`runinfo.forward_seconds`:
    the run's stored speed, else one timed batch)."""
    base = folder(run_dir, data)
    n = sum(len(data.train.of_class(k)) for k in set(classes) if not _file(base, k).exists())
    return n * runinfo.forward_seconds(model, run_dir) if n else 0.0
