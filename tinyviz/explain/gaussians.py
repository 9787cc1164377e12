"""One Gaussian per class in a run's whole penultimate features: the third part of the
unfamiliar-photo score (`familiar`).

The kNN part of the score compares a photo with the validation images in the stored
analysis, which keeps their features only on 64 principal components; much of what tells a
moon from a spider web is in the other directions. Lee et al. 2018 ("A simple unified
framework for detecting out-of-distribution samples") model each class's features as a
Gaussian with one shared covariance and score a photo by its Mahalanobis distance to the
nearest class mean. `bench/unfamiliar.py` measured it (table 2) on the whole normalised
features of 20 training images per class: added to the kNN distance and the doubt it
lifts the frozen-backbone run's AUROC on photos of none of the classes from 0.89 to 0.95
and the fine-tuned one's from 0.88 to 0.90.

The shared covariance of 1,280 features from 4,000 images is poorly determined, and its
inverse would be 6 MB a run; so it is kept as its `RANK` leading directions (eigenvectors
of the Ledoit-Wolf estimate) with their variances, and one variance for all the others
(what probabilistic PCA does): a few hundred kB, and the bench found it as good as the
whole matrix (0.957 against 0.959 on the frozen run).

The Gaussians are fitted on training images, never on the validation images that
calibrate the score: the file keeps, for `VAL_PER_CLASS` validation images per class,
their distances and which images they are, so the calibration (`familiar.calibrate`) needs
no pass through the model. It lives beside the run's stored analysis (`FILE`), in the run's
mirror for a shipped run (`mirror`); `build` computes it (`tinyviz analyse` does, after the
analysis).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io
from ..errors import CheckpointError

FILE = "familiar-gaussians.npz"
RANK = 64  # directions of the shared covariance kept (bench/unfamiliar.py: 32-128 alike)
TRAIN_PER_CLASS = 20  # training images per class the Gaussians are fitted on
VAL_PER_CLASS = 10  # validation images per class kept to calibrate with
BATCH = 50
HALF = ("means", "basis")  # kept in half precision (`_stored`)
MAX_FEATURES = 4096  # beyond, the covariance is too large to estimate (and to hold)


@dataclass(frozen=True, eq=False)
class Gaussians:
    """Class means of the unit-length features and their shared covariance, low-rank."""

    means: np.ndarray  # (C, D) float32
    basis: np.ndarray  # (r, D) float32: the covariance's leading eigenvectors
    variances: np.ndarray  # (r,) their eigenvalues
    rest: float  # the mean eigenvalue of all the other directions
    val_rows: np.ndarray  # (n,) validation images (data set indices) held out to calibrate
    val_distance: np.ndarray  # (n,) their distances

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, rank: int = RANK) -> Gaussians:
        """Fitted on (N, D) features with their (N,) class labels (every class present)."""
        from sklearn.covariance import LedoitWolf

        x, labels = _unit(features).astype(np.float64), np.asarray(labels)
        classes = np.unique(labels)
        if len(classes) < 2 or classes[0] != 0 or classes[-1] != len(classes) - 1:
            raise CheckpointError("every class needs training images to model its features")
        means = np.zeros((int(classes[-1]) + 1, x.shape[1]))
        for c in classes:
            means[c] = x[labels == c].mean(0)
        cov = LedoitWolf().fit(x - means[labels]).covariance_
        values, vectors = np.linalg.eigh(cov)  # ascending
        r = max(1, min(rank, x.shape[1] - 1))
        rest = float(max(values[:-r].mean(), 1e-12))
        return cls(
            _stored(means),
            _stored(vectors[:, -r:].T),
            np.maximum(values[-r:], 1e-12).astype(np.float32),
            rest,
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
        )

    def distance(self, features: np.ndarray) -> np.ndarray:
        """The Mahalanobis distance of each of (n, D) features (or one (D,)) to the
        nearest class mean, computed without forming an (n, C, D) array."""
        x = _unit(np.atleast_2d(np.asarray(features, np.float32))).astype(np.float64)
        if x.shape[1] != self.means.shape[1]:
            raise CheckpointError(
                f"the model gives {x.shape[1]} features but its Gaussians have "
                f"{self.means.shape[1]}"
            )
        m, v = self.means.astype(np.float64), self.basis.astype(np.float64)
        whole = _sq_dist(x, m)  # |x - m|^2
        px, pm = x @ v.T, m @ v.T
        inside = _sq_dist(px, pm)  # its part along the basis
        scaled = _sq_dist(px / np.sqrt(self.variances), pm / np.sqrt(self.variances))
        sq = scaled + np.maximum(whole - inside, 0) / self.rest
        return np.sqrt(np.maximum(sq.min(1), 0))

    def with_calibration(self, val_rows: np.ndarray, val_features: np.ndarray) -> Gaussians:
        """The same, keeping the distances of held-out validation images (`val_rows`)."""
        return Gaussians(
            self.means, self.basis, self.variances, self.rest,
            np.asarray(val_rows, np.int64), self.distance(val_features).astype(np.float32),
        )  # fmt: skip

    def save(self, path: Path) -> None:
        arrays = {f: np.asarray(getattr(self, f)) for f in self.__dataclass_fields__}
        arrays["means"], arrays["basis"] = (arrays[f].astype(np.float16) for f in HALF)
        io.save_arrays(Path(path), arrays)

    @classmethod
    def load(cls, path: Path, classes: int, dims: int, images: int) -> Gaussians:
        """Read and checked against the run's analysis (its `classes`, `dims` features and
        `images` validation images): a file that does not fit raises `CheckpointError`."""
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                arrays = {f: z[f] for f in cls.__dataclass_fields__ if f != "rest"}
                rest = float(z["rest"])
            g = cls(**{**arrays, **{f: arrays[f].astype(np.float32) for f in HALF}}, rest=rest)
        except (OSError, ValueError, KeyError, EOFError, TypeError) as e:
            raise CheckpointError(f"{path} cannot be read ({e})") from None
        problem = g._problem(classes, dims, images)
        if problem:
            raise CheckpointError(f"{path}: {problem}")
        return g

    def _problem(self, classes: int, dims: int, images: int) -> str | None:
        r = len(self.variances)
        rows, dist = self.val_rows, self.val_distance
        shapes = self.means.shape == (classes, dims) and self.basis.shape == (r, dims)
        if not shapes or rows.ndim != 1 or rows.shape != dist.shape or rows.dtype.kind not in "iu":
            return "its shapes do not fit the run's analysis"
        arrays = (self.means, self.basis, self.variances, self.val_distance)
        if not all(np.isfinite(a).all() for a in arrays) or not np.isfinite(self.rest):
            return "it holds values that are not finite"
        if (self.variances <= 0).any() or self.rest <= 0:
            return "its variances are not positive"
        if len(rows) < 2 or rows.min() < 0 or rows.max() >= images or len(set(rows)) < len(rows):
            return "its validation images do not fit the analysis"
        return None


def _stored(x: np.ndarray) -> np.ndarray:
    """As the file keeps it: half precision (half the size; a unit vector's coordinates keep
    three significant digits), computed with in single precision."""
    return np.asarray(x).astype(np.float16).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) squared distances between the rows of a and b."""
    return (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None]


# ------------------------------------------------------------------ building a run's file

Features = Callable[[np.ndarray], np.ndarray]  # uint8 images -> (n, D) penultimate features


def fitted(features: Features, data, train_per_class: int = TRAIN_PER_CLASS,
           val_per_class: int = VAL_PER_CLASS) -> Gaussians:  # fmt: skip
    """Fitted on `train_per_class` training images a class, with the distances of
    `val_per_class` validation images a class kept for the calibration."""
    from .analysis import subset_rows

    train = subset_rows(np.asarray(data.train.labels), train_per_class)
    val = np.sort(subset_rows(np.asarray(data.val.labels), val_per_class))
    g = Gaussians.fit(features(data.train.images[train]), np.asarray(data.train.labels)[train])
    return g.with_calibration(val, features(data.val.images[val]))


def model_features(model, device) -> Features:
    """A model's penultimate features of uint8 images, in batches, without gradients."""
    import torch

    from ..data.batches import to_model_input

    def features(images: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), BATCH):
                x = to_model_input(np.asarray(images[s : s + BATCH])).to(device)
                out.append(model.forward_features(x).float().cpu().numpy())
        return np.concatenate(out)

    return features


def build(run_dir: Path, data, folder: Path, device: str = "cpu") -> Path:
    """The run's Gaussians written beside its analysis `folder` (in the mirror of a shipped
    run); `CheckpointError` for a model without penultimate features to model, or with too
    many (a logistic regression on 12,288 pixels: a covariance of 1.2 GB)."""
    from ..runs.folder import open_run
    from ..runs.weights import load_model
    from ..runtime.device import pick_device
    from . import mirror
    from .analysis import _meta

    dev = pick_device(str(device))
    model = load_model(open_run(Path(run_dir)), device=dev).eval()
    if not hasattr(model, "forward_features"):
        raise CheckpointError("the model gives no penultimate features")
    dims = (_meta(folder) or {}).get("features", 0)
    if not 0 < dims <= MAX_FEATURES:
        raise CheckpointError(f"{dims:,} features are too many to model (at most {MAX_FEATURES:,})")
    place = mirror.writable(Path(folder) / FILE, Path(run_dir))
    place.parent.mkdir(parents=True, exist_ok=True)
    fitted(model_features(model, dev), data).save(place)
    return place
