"""Does a photo look like anything the model was trained on? A score from its own outputs.

A classifier always names one of its classes: a photo of the moon gets "spider web 96%". The
softmax cannot say "none of these", so the question is asked of two things the model gives:

- its penultimate features: the distance from the photo's normalised features to the `K`-th
  nearest validation image's (Sun et al. 2022, "Out-of-distribution detection with deep
  nearest neighbors"). A photo of something the model knows lands among validation images of
  its class; a photo of something else lands far from all of them;
- its confidence: 1 - the largest softmax probability (Hendrycks & Gimpel 2017);
- where the run has them (`gaussians`, fitted by `tinyviz analyse` on training images), the
  Mahalanobis distance of its whole features to the nearest class's Gaussian (Lee et al.
  2018): the kNN part sees the features only on the analysis' 64 principal components.

Each is standardised by its mean and spread over the validation images, and the score is
their sum. `bench/unfamiliar.py` measured it against each alone, the energy score, the max
logit, Mahalanobis distances and ViM, with validation and training banks, on every shipped
run (README, "Photos of none of the classes"): no score reached an AUROC of 0.9 on photos on
every run, and the sum was the best on average over the runs with learned features, where
the distance alone or the confidence alone each fails on some photos (the moon: far from
every class, yet a confident "spider web").

Everything needed is already in a run's stored analysis (`analysis.COMPACT`): the validation
features reduced to their principal components, with the projection, and each image's
largest log-probability. A new photo's features are projected the same way, so it is
compared like with like, and no new pass over the data is needed. The calibration is the
`QUANTILE` of the validation images' own scores (each against the others, leaving itself
out): at most 5% of validation images are called unfamiliar. It is computed once per
analysis folder, which is keyed by content (validation set and weights), and stored beside
it (`FILE`), so shipped runs ship it.

How well the score works differs a lot between models, and for some it is no use at all (a
logistic regression on pixels has no features to speak of: its score is no better than
chance). So `bench/unfamiliar.py --store` writes what it measured on the run (`Measured`:
the AUROC on photos of none of the classes, and the share of them flagged) into the same
file, and below `CAN_TELL` the pages and `tinyviz classify` say that the model cannot tell
instead of giving a verdict that means nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import io
from ..errors import CheckpointError
from ..runs.folder import RunFolder
from . import analysis, mirror
from .gaussians import FILE as GAUSSIANS_FILE
from .gaussians import Gaussians

FILE = "familiar.json"
FORMAT = 2  # bump when the score or the calibration changes meaning
METHOD = "knn+msp"  # the score from the stored analysis alone
WITH_GAUSSIANS = "knn+maha+msp"  # ... plus the run's `gaussians` where it has them
K = 10  # the k-th nearest validation image, at most (bench/unfamiliar.py)
PER_CLASS = 5  # ... and at most a fifth of a class's images (`k_for`)
QUANTILE = 0.95  # at most 5% of validation images are flagged
CAN_TELL = 0.7  # the least AUROC on photos of none of the classes for a verdict (`Measured`)
BLOCK = 2048  # rows of the distance matrix at a time (10,000 x 2,048 floats: 80 MB)
UNFAMILIAR = (
    "This photo looks like none of the things this model was trained on, so its answers are "
    "probably wrong."
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

    def kth_distance(
        self, queries: np.ndarray, k: int, leave_out: bool = False, own: np.ndarray | None = None
    ) -> np.ndarray:
        """Distance from each unit row of `queries` to its `k`-th nearest bank row; with
        `leave_out`, the queries are the bank itself, or with `own` the bank rows at those
        positions, and a row is not its own neighbour."""
        if leave_out:
            own = np.arange(len(queries))
        k = min(k, len(self) - (0 if own is None else 1))
        if k < 1:
            raise CheckpointError("too few validation images to compare a photo with")
        out = np.empty(len(queries), np.float32)
        for s in range(0, len(queries), BLOCK):
            sims = queries[s : s + BLOCK] @ self.vectors.T
            if own is not None:
                sims[np.arange(len(sims)), own[s : s + BLOCK]] = -np.inf
            kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
            out[s : s + BLOCK] = np.sqrt(np.maximum(2 - 2 * kth, 0))
        return out


def _unit(coords: np.ndarray, outside: float) -> np.ndarray:
    full = np.concatenate([coords, np.full((len(coords), 1), outside, np.float32)], 1)
    return full / np.maximum(np.linalg.norm(full, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Calibration:
    """How to standardise the parts of the score, and its threshold, from the validation
    images' own scores (all of them, or with Gaussians the ones held out for them)."""

    k: int
    threshold: float  # scores above it are unfamiliar
    quantile: float
    images: int  # validation images it was computed on
    flagged: float  # the fraction of them above the threshold
    data_key: str  # the validation set's digest (`tinyviz.data.cache.val_key`)
    distance_mean: float = 0.0  # of the validation images' k-th neighbour distances
    distance_sd: float = 1.0
    doubt_mean: float = 0.0  # of their 1 - top probability
    doubt_sd: float = 1.0
    method: str = METHOD
    gauss_mean: float = 0.0  # of their Mahalanobis distances (`WITH_GAUSSIANS` only)
    gauss_sd: float = 1.0

    def as_json(self) -> dict:
        return {"format": FORMAT, **self.__dict__}

    def combine(
        self, distance: np.ndarray, doubt: np.ndarray, gauss: np.ndarray | None = None
    ) -> np.ndarray:
        """The score: the parts in units of their spread over the validation images."""
        score = (np.asarray(distance, np.float64) - self.distance_mean) / self.distance_sd + (
            np.asarray(doubt, np.float64) - self.doubt_mean
        ) / self.doubt_sd
        if self.method == WITH_GAUSSIANS:
            score = score + (np.asarray(gauss, np.float64) - self.gauss_mean) / self.gauss_sd
        return score


def k_for(images: int, classes: int) -> int:
    """The neighbour to measure to: `K`, or fewer where a class has fewer than `PER_CLASS`
    times as many validation images (a tiny data set), so it stays within a class."""
    return max(1, min(K, images // (PER_CLASS * max(classes, 1)), images - 1))


def doubt(logits: np.ndarray) -> np.ndarray:
    """1 - the largest softmax probability of each row of (n, C) logits (or one (C,) row)."""
    z = np.atleast_2d(np.asarray(logits, np.float64))
    z = z - z.max(1, keepdims=True)
    return 1 - 1 / np.exp(z).sum(1)


def calibrate(
    bank: Bank,
    doubts: np.ndarray | None = None,
    k: int = K,
    quantile: float = QUANTILE,
    data_key: str = "",
    gaussians: Gaussians | None = None,
) -> Calibration:
    """The `quantile` of the validation images' scores, each against all the others;
    `doubts` are their 1 - top probability (None: zeros, the distance alone). With
    `gaussians`, on the validation images they hold out, their distances added."""
    doubts = np.zeros(len(bank)) if doubts is None else np.asarray(doubts, np.float64)
    if len(doubts) != len(bank):
        raise CheckpointError(f"{len(doubts)} confidences for {len(bank)} validation images")
    rows = np.arange(len(bank)) if gaussians is None else gaussians.val_rows
    distance = bank.kth_distance(bank.vectors[rows], k, own=rows).astype(np.float64)
    parts = {"distance": distance, "doubt": doubts[rows]}
    if gaussians is not None:
        parts["gauss"] = gaussians.val_distance.astype(np.float64)
    spread = {}
    for name, values in parts.items():
        spread[f"{name}_mean"] = float(values.mean())
        spread[f"{name}_sd"] = float(max(values.std(), 1e-6))
    method = METHOD if gaussians is None else WITH_GAUSSIANS
    partial = Calibration(min(k, len(bank) - 1), 0.0, quantile, len(rows), 0.0, data_key,
                          method=method, **spread)  # fmt: skip
    scores = partial.combine(parts["distance"], parts["doubt"], parts.get("gauss"))
    threshold = float(np.quantile(scores, quantile))
    flagged = float((scores > threshold).mean())
    return dataclasses.replace(partial, threshold=threshold, flagged=flagged)


@dataclass(frozen=True)
class Measured:
    """How well the score told photos of none of the classes from the validation images on
    this run, as `bench/unfamiliar.py` measured it (stored in `FILE` by its `--store`)."""

    auroc: float  # natural photos of none of the classes against the validation images
    caught: float  # the share of those photos above the threshold
    photos: int  # how many photos (crops of a few photos)
    textures: float = float("nan")  # the AUROC on textures
    noise: float = float("nan")  # ... and on pixel noise

    @property
    def can_tell(self) -> bool:
        """Whether a verdict means anything: below `CAN_TELL`, photos of other things score
        about as the model's own classes do."""
        return self.auroc >= CAN_TELL

    @classmethod
    def from_json(cls, saved) -> Measured | None:
        try:
            m = cls(**{f: float(saved[f]) for f in ("auroc", "caught", "textures", "noise")},
                    photos=int(saved["photos"]))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None
        ok = 0 <= m.auroc <= 1 and 0 <= m.caught <= 1 and m.photos > 0
        return m if ok else None


@dataclass(frozen=True)
class Familiarity:
    """One photo's score and what it means for a visitor."""

    score: float  # the standardised sum (higher: stranger)
    threshold: float
    distance: float = float("nan")  # to the k-th nearest validation image's features
    confidence: float = float("nan")  # the top softmax probability
    measured: Measured | None = None  # how well the score works on this run (None: unknown)
    gauss: float | None = None  # to the nearest class's Gaussian (None: the run has none)

    @property
    def familiar(self) -> bool:
        """Whether the score is within the threshold (what `verdict` says, where it can)."""
        return self.score <= self.threshold

    @property
    def can_tell(self) -> bool:
        """False where the bench found this run's score no use (`Measured.can_tell`)."""
        return self.measured is None or self.measured.can_tell

    @property
    def verdict(self) -> bool | None:
        """Familiar or not; None where the model cannot tell."""
        return self.familiar if self.can_tell else None

    @property
    def sentence(self) -> str:
        """What the page says of an unfamiliar photo ("" when it looks familiar, or when the
        model cannot tell)."""
        return UNFAMILIAR if self.verdict is False else ""

    def as_json(self) -> dict:
        return {
            "familiar": self.verdict,
            "score": round(self.score, 4),
            "threshold": round(self.threshold, 4),
            "auroc": None if self.measured is None else round(self.measured.auroc, 3),
        }


@dataclass(frozen=True, eq=False)
class Checker:
    """A run's bank and calibration: everything needed to judge a photo's outputs."""

    bank: Bank
    calibration: Calibration
    folder: Path | None  # the analysis folder they come from
    measured: Measured | None = None  # how well it works on this run (`Measured`)
    gaussians: Gaussians | None = None  # the third part of the score, where the run has it

    def distances(self, features: np.ndarray) -> np.ndarray:
        return self.bank.kth_distance(self.bank.embed(features), self.calibration.k)

    def parts(self, features: np.ndarray, logits: np.ndarray):
        """The score's parts of (n, D) features and their (n, C) logits: the distances, the
        doubts and the Gaussians' distances (None without them)."""
        gauss = None if self.gaussians is None else self.gaussians.distance(features)
        return self.distances(features), doubt(logits), gauss

    def scores(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The scores of (n, D) features and their (n, C) logits."""
        return self.calibration.combine(*self.parts(features, logits))

    def judge(self, features: np.ndarray, logits: np.ndarray) -> Familiarity:
        """The familiarity of one image from its (D,) features and (C,) logits."""
        distance, unsure, gauss = self.parts(features, logits)
        score = float(self.calibration.combine(distance, unsure, gauss)[0])
        cal, near = self.calibration, None if gauss is None else float(gauss[0])
        return Familiarity(
            score, cal.threshold, float(distance[0]), 1 - float(unsure[0]), self.measured, near
        )


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
    gaussians = load_gaussians(folder, Path(run_dir), len(bank))
    cal = stored_calibration(folder, bank, Path(run_dir), gaussians)
    measured = stored_measured(folder, cal, Path(run_dir))
    return Checker(bank, cal, folder, measured, gaussians)


def load_gaussians(folder: Path, run_dir: Path, images: int) -> Gaussians | None:
    """The run's `gaussians` beside its analysis (or in its mirror), if they fit it; None
    where there are none yet, or where the file does not fit (the score goes on without)."""
    meta = analysis._meta(folder) or {}
    own = Path(folder) / GAUSSIANS_FILE
    for path in dict.fromkeys([own, mirror.writable(own, run_dir)]):
        if path.is_file():
            with contextlib.suppress(CheckpointError, KeyError, TypeError, ValueError):
                return Gaussians.load(path, int(meta["classes"]), int(meta["features"]), images)
    return None


def load_bank(folder: Path) -> Bank:
    try:
        with np.load(Path(folder) / analysis.COMPACT, allow_pickle=False) as z:
            return Bank.from_compact(z["pca"], z["components"], z["mean"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise CheckpointError(f"{folder / analysis.COMPACT} cannot be read ({e})") from None


def load_doubts(folder: Path) -> np.ndarray:
    """1 - the top probability of each validation image, in the bank's order (its largest
    stored log-probability)."""
    try:
        with np.load(Path(folder) / analysis.COMPACT, allow_pickle=False) as z:
            top = np.asarray(z["top_logp"], np.float64)
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise CheckpointError(f"{folder / analysis.COMPACT} cannot be read ({e})") from None
    return 1 - np.exp(np.clip(top.max(1), None, 0.0))


def stored_calibration(
    folder: Path, bank: Bank, run_dir: Path | None = None, gaussians: Gaussians | None = None
) -> Calibration:
    """`FILE` beside the analysis (shipped with it, or in the run's mirror) if it is of this
    format, these settings and this method (with or without `gaussians`); else computed and
    written where the run's derived files go."""
    own = Path(folder) / FILE
    place = mirror.writable(own, run_dir)
    meta = analysis._meta(folder) or {}
    k = k_for(len(bank), int(meta.get("classes", 1)))
    want = _wanted(len(bank), k, gaussians)
    for path in dict.fromkeys([own, place]):
        with contextlib.suppress(CheckpointError):
            saved = _completed(io.read_json(path))
            if _fits(saved, *want):
                return Calibration(**{f: saved[f] for f in Calibration.__dataclass_fields__})
    data_key = str(meta.get("data_key", ""))
    cal = calibrate(bank, load_doubts(folder), k, data_key=data_key, gaussians=gaussians)
    with contextlib.suppress(OSError):
        place.parent.mkdir(parents=True, exist_ok=True)
        io.write_json(place, cal.as_json())
    return cal


def _wanted(bank_images: int, k: int, gaussians: Gaussians | None) -> tuple[int, int, str]:
    """The images, k and method a stored calibration must have to be this run's."""
    if gaussians is None:
        return bank_images, k, METHOD
    return len(gaussians.val_rows), k, WITH_GAUSSIANS


def _completed(saved):
    """A stored calibration with the fields that files written before Gaussians lack."""
    if not isinstance(saved, dict):
        return saved
    return {"method": METHOD, "gauss_mean": 0.0, "gauss_sd": 1.0, **saved}


def _fits(saved, images: int, k: int, method: str = METHOD) -> bool:
    if not isinstance(saved, dict):
        return False
    want = {"format": FORMAT, "method": method, "k": k, "quantile": QUANTILE}
    try:
        same = all(saved.get(f) == v for f, v in want.items()) and saved["images"] == images
        sds = ("distance_sd", "doubt_sd", "gauss_sd")
        numbers = ("threshold", "distance_mean", "doubt_mean", "gauss_mean", *sds)
        finite = all(np.isfinite(float(saved[f])) for f in numbers)
        positive = all(saved[f] > 0 for f in sds)
        return same and finite and positive and isinstance(saved["data_key"], str)
    except (KeyError, TypeError, ValueError):
        return False


def stored_measured(folder: Path, cal: Calibration, run_dir: Path | None = None) -> Measured | None:
    """The bench's measurement stored beside this calibration (None: not measured), from
    the file that holds the same calibration."""
    own = Path(folder) / FILE
    for path in dict.fromkeys([own, mirror.writable(own, run_dir)]):
        with contextlib.suppress(CheckpointError):
            saved = _completed(io.read_json(path))
            ok = _fits(saved, cal.images, cal.k, cal.method)
            if ok and saved["threshold"] == cal.threshold:
                return Measured.from_json(saved.get("measured"))
    return None


def stamp(folder: Path, run_dir: Path | None = None) -> tuple:
    """What changes when the calibration file or the Gaussians are written (their places'
    sizes and times), so a cache of a run's checker sees a new measurement."""
    out = []
    for name in (FILE, GAUSSIANS_FILE):
        out.extend(_stats(Path(folder) / name, run_dir))
    return tuple(out)


def _stats(own: Path, run_dir: Path | None) -> list:
    out = []
    for path in dict.fromkeys([own, mirror.writable(own, run_dir)]):
        try:
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return out


def store_measured(
    folder: Path, cal: Calibration, measured: Measured, run_dir: Path | None = None
) -> Path:
    """Write the bench's measurement into the calibration's file (where the run's derived
    files go: a shipped run's own folder only under `mirror.WRITE_SHIPPED`)."""
    place = mirror.writable(Path(folder) / FILE, run_dir)
    place.parent.mkdir(parents=True, exist_ok=True)
    io.write_json(place, {**cal.as_json(), "measured": dict(measured.__dict__)})
    return place
