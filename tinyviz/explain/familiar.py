"""Does a photo look like anything the model was trained on? A score from its own features.

A classifier always names one of its classes: a photo of the moon gets "spider web 96%". The
softmax cannot say "none of these", so the question is asked of the features instead, the
way Sun et al. (2022, "Out-of-distribution detection with deep nearest neighbors") do: the
distance from the photo's normalised penultimate features to the `K`-th nearest validation
image's. A photo of something the model knows lands among validation images of its class; a
photo of something else lands far from all of them. `bench/unfamiliar.py` measured this
against the softmax's own confidence and the energy score and picked it (README).

Everything needed is already in a run's stored analysis (`analysis.COMPACT`): the validation
features reduced to their principal components, with the projection. A new photo's features
are projected the same way, so it is compared like with like, and no new pass over the data
is needed. The calibration is the `QUANTILE` of the validation images' own scores (each
against the others, leaving itself out): at most 5% of validation images are called
unfamiliar. It is computed once per analysis folder, which is keyed by content (validation
set and weights), and stored beside it (`FILE`), so shipped runs ship it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io
from ..errors import CheckpointError
from ..runs.folder import RunFolder
from . import analysis, mirror

FILE = "familiar.json"
FORMAT = 1  # bump when the score or the calibration changes meaning
METHOD = "knn"
K = 10  # the k-th nearest validation image, at most (bench/unfamiliar.py)
PER_CLASS = 5  # ... and at most a fifth of a class's images (`k_for`)
QUANTILE = 0.95  # at most 5% of validation images are flagged
BLOCK = 2048  # rows of the distance matrix at a time (10,000 x 2,048 floats: 80 MB)
UNFAMILIAR = (
    "This photo looks unlike anything the model was trained on: the guesses below are likely wrong."
)


@dataclass(frozen=True, eq=False)
class Bank:
    """The validation features, projected on their principal components and normalised.

    A feature vector `f` is projected on the stored components `C` (through their mean `m`):
    `m + C^T C (f - m)`. In the orthonormal basis of C's rows plus the part of `m` outside
    them, that projection has the coordinates `(C f, |m - C^T C m|)`; those are normalised
    to unit length, so distances are those of the normalised projections (Sun et al.).
    """

    vectors: np.ndarray  # (N, d + 1) float32 unit rows, one per validation image
    components: np.ndarray  # (d, D) float32
    outside: float  # the length of the mean's part outside the components

    @classmethod
    def from_compact(cls, reduced, components, mean) -> Bank:
        comps = np.asarray(components, np.float32)
        mean = np.asarray(mean, np.float32)
        inside = comps @ mean
        outside = float(np.linalg.norm(mean - inside @ comps))
        coords = np.asarray(reduced, np.float32) + inside
        return cls(_unit(coords, outside), comps, outside)

    def __len__(self) -> int:
        return len(self.vectors)

    def embed(self, features: np.ndarray) -> np.ndarray:
        """(n, D) features (or one (D,) vector) as unit rows comparable with `vectors`."""
        f = np.atleast_2d(np.asarray(features, np.float32))
        if f.shape[1] != self.components.shape[1]:
            raise CheckpointError(
                f"the model gives {f.shape[1]} features but its analysis has "
                f"{self.components.shape[1]}"
            )
        return _unit(f @ self.components.T, self.outside)

    def kth_distance(self, queries: np.ndarray, k: int, leave_out: bool = False) -> np.ndarray:
        """Distance from each unit row of `queries` to its `k`-th nearest bank row; with
        `leave_out`, the queries are the bank itself and a row is not its own neighbour."""
        k = min(k, len(self) - (1 if leave_out else 0))
        if k < 1:
            raise CheckpointError("too few validation images to compare a photo with")
        out = np.empty(len(queries), np.float32)
        for s in range(0, len(queries), BLOCK):
            sims = queries[s : s + BLOCK] @ self.vectors.T
            if leave_out:
                rows = np.arange(len(sims))
                sims[rows, rows + s] = -np.inf
            kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
            out[s : s + BLOCK] = np.sqrt(np.maximum(2 - 2 * kth, 0))
        return out


def _unit(coords: np.ndarray, outside: float) -> np.ndarray:
    full = np.concatenate([coords, np.full((len(coords), 1), outside, np.float32)], 1)
    return full / np.maximum(np.linalg.norm(full, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Calibration:
    """The threshold of the score, from the validation images' own scores."""

    k: int
    threshold: float  # scores above it are unfamiliar
    quantile: float
    images: int  # validation images it was computed on
    flagged: float  # the fraction of them above the threshold
    data_key: str  # the validation set's digest (`tinyviz.data.cache.val_key`)

    def as_json(self) -> dict:
        return {"format": FORMAT, "method": METHOD, **self.__dict__}


def k_for(images: int, classes: int) -> int:
    """The neighbour to measure to: `K`, or fewer where a class has fewer than `PER_CLASS`
    times as many validation images (a tiny data set), so it stays within a class."""
    return max(1, min(K, images // (PER_CLASS * max(classes, 1)), images - 1))


def calibrate(
    bank: Bank, k: int = K, quantile: float = QUANTILE, data_key: str = ""
) -> Calibration:
    """The `quantile` of the validation images' scores, each against all the others."""
    scores = bank.kth_distance(bank.vectors, k, leave_out=True)
    threshold = float(np.quantile(scores, quantile))
    return Calibration(
        k=min(k, len(bank) - 1),
        threshold=threshold,
        quantile=quantile,
        images=len(bank),
        flagged=float((scores > threshold).mean()),
        data_key=data_key,
    )


@dataclass(frozen=True)
class Familiarity:
    """One photo's score and what it means for a visitor."""

    score: float  # distance to the k-th nearest validation image (higher: stranger)
    threshold: float

    @property
    def familiar(self) -> bool:
        return self.score <= self.threshold

    @property
    def sentence(self) -> str:
        """What the page says of an unfamiliar photo ("" when it looks familiar)."""
        return "" if self.familiar else UNFAMILIAR

    def as_json(self) -> dict:
        return {"familiar": self.familiar, "score": round(self.score, 4),
                "threshold": round(self.threshold, 4)}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Checker:
    """A run's bank and calibration: everything needed to judge a photo's features."""

    bank: Bank
    calibration: Calibration
    folder: Path  # the analysis folder they come from

    def scores(self, features: np.ndarray) -> np.ndarray:
        return self.bank.kth_distance(self.bank.embed(features), self.calibration.k)

    def judge(self, features: np.ndarray, logits: np.ndarray | None = None) -> Familiarity:
        """The familiarity of one image from its (D,) features (and (C,) logits)."""
        return Familiarity(float(self.scores(features)[0]), self.calibration.threshold)


# ------------------------------------------------------------------ a run's checker


def find_analysis(run_dir: Path) -> Path | None:
    """The run's full stored analysis of its current weights, found without the data set
    (the Classify page and `tinyviz classify` work without it): the largest one, in the
    run's `analysis/` or, for a shipped run, in its mirror (`mirror`)."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    try:
        digest = analysis.weights_digest(folder.weights)[:16]
        places = dict.fromkeys([folder.analysis, mirror.writable(folder.analysis, run_dir)])
        candidates = [p for root in places for p in root.glob(f"*-n*-w{digest}") if p.is_dir()]
    except (CheckpointError, OSError):
        return None
    full = [p for p in candidates if analysis.is_complete(p) and _stage(p) == "full"]
    return max(full, key=_images, default=None)


def _stage(folder: Path) -> str | None:
    return (analysis._meta(folder) or {}).get("stage")


def _images(folder: Path) -> int:
    return int(folder.name.split("-n")[1].split("-")[0])


def checker(run_dir: Path) -> Checker | None:
    """The run's checker, or None while the run has no stored analysis. The calibration is
    read from the analysis folder, or computed (about a second) and stored once."""
    folder = find_analysis(run_dir)
    if folder is None:
        return None
    bank = load_bank(folder)
    return Checker(bank, stored_calibration(folder, bank, Path(run_dir)), folder)


def load_bank(folder: Path) -> Bank:
    try:
        with np.load(Path(folder) / analysis.COMPACT, allow_pickle=False) as z:
            return Bank.from_compact(z["pca"], z["components"], z["mean"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise CheckpointError(f"{folder / analysis.COMPACT} cannot be read ({e})") from None


def stored_calibration(folder: Path, bank: Bank, run_dir: Path | None = None) -> Calibration:
    """`FILE` beside the analysis (shipped with it, or in the run's mirror) if it is of this
    format and these settings; else computed and written where the run's derived files go."""
    own = Path(folder) / FILE
    place = mirror.writable(own, run_dir)
    meta = analysis._meta(folder) or {}
    k = k_for(len(bank), int(meta.get("classes", 1)))
    for path in dict.fromkeys([own, place]):
        with contextlib.suppress(CheckpointError):
            saved = io.read_json(path)
            if _fits(saved, len(bank), k):
                return Calibration(**{f: saved[f] for f in Calibration.__dataclass_fields__})
    cal = calibrate(bank, k, data_key=str(meta.get("data_key", "")))
    with contextlib.suppress(OSError):
        place.parent.mkdir(parents=True, exist_ok=True)
        io.write_json(place, cal.as_json())
    return cal


def _fits(saved, images: int, k: int) -> bool:
    if not isinstance(saved, dict):
        return False
    want = {"format": FORMAT, "method": METHOD, "k": k, "quantile": QUANTILE}
    try:
        same = all(saved.get(f) == v for f, v in want.items()) and saved["images"] == images
        return (
            same and np.isfinite(float(saved["threshold"])) and isinstance(saved["data_key"], str)
        )
    except (KeyError, TypeError, ValueError):
        return False
