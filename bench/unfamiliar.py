"""How well each shipped run tells photos of none of its classes from validation images.

    python bench/unfamiliar.py --data PATH [--run checkpoints/resnet18-push ...]
                               [--compare] [--store] [--out bench/results/unfamiliar_cpu.txt]

In-distribution: the 10,000 Tiny ImageNet validation images. Out of distribution, built here
from what the installed libraries bundle (no download), each image resized to 64 x 64 the
way uploads are (Pillow's LANCZOS):

* photos: random square crops of scikit-learn's two sample photos and of scikit-image's
  photos whose subject is none of the 200 classes (astronaut, cameraman, coins, a hubble
  field, a stained tissue, the moon, a motorcycle, a retina);
* photos of classes: the same of scikit-image's photos whose subject IS a class (chelsea the
  tabby cat, a cup of coffee: espresso, a rocket: projectile). A good score does not flag
  them; their AUROC should stay near 0.5 or below;
* textures: crops of scikit-image's brick, grass, gravel, text and page images, and
  procedural checkerboards, stripes, smooth noise, colour gradients and flat colours;
* noise: uniform, Gaussian and salt-and-pepper pixel noise;
* held-out classes (`--compare`, runs with a frozen backbone only): the linear head is
  trained again here (logistic regression on the training bank's features) without 20 of
  the 200 classes; those classes' validation images are then out of distribution.

Table 1 is the dashboard's score (`tinyviz.explain.familiar`) and its parts on the
validation images it is calibrated on, from the run's stored analysis (each validation
image against the other 9,999: leave one out), so only the out-of-distribution images pass
through the model:

* knn10: the distance to the 10th nearest validation image of the normalised penultimate
  features projected on the analysis' principal components (Sun et al. 2022);
* msp: 1 - the largest softmax probability (Hendrycks & Gimpel 2017);
* mahalanobis, where the run has its Gaussians (`tinyviz.explain.gaussians`, fitted by
  `tinyviz analyse` on 20 training images per class): the distance of the whole normalised
  features to the nearest class mean, with a shared low-rank covariance (Lee et al. 2018);
* the dashboard's score: the parts standardised by their mean and spread over the
  validation images, summed. With Gaussians, the validation images are the 2,000 (10 per
  class) they held out, and their Mahalanobis distances come from the Gaussians' file.

Table 2 (`--compare`) is what the choice was made against, on a stratified subset of
`--val-per-class` validation images per class, with a bank of `--train-per-class`
training images per class (none of them a validation image), all through the model here:
maxlogit and energy (-logsumexp of the logits; Liu et al. 2020), Mahalanobis distance to
the nearest class mean with a shared covariance (Lee et al. 2018; Ledoit-Wolf shrinkage) in
the analysis' principal components and on the whole normalised features, ViM (Wang et al.
2022: the features' norm outside their principal subspace, scaled, minus the energy), kNN
with the training bank instead of the validation one (projected and whole), and the sums of
the standardised distances with msp. The passes are kept in `CACHE`, keyed by the weights
and the images, so a second run only computes the scores.

For each score, the AUROC (1.0: every out-of-distribution image scores above every
validation image) and, at the threshold the dashboard uses (the 95th percentile of the
validation scores: 5% of validation images flagged), the fraction of each set flagged.

Table 3 is what the dashboard says of each run: the dashboard score's AUROC on photos,
textures and noise, and whether it can tell at all (an AUROC on photos of at least
`familiar.CAN_TELL`). `--store` writes that measurement into each run's calibration file
(`familiar.Measured`); for the shipped runs, run it with `TINYVIZ_WRITE_SHIPPED=1` so that
it lands beside their analysis and ships with them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHOTOS = ("astronaut", "camera", "coins", "hubble_deep_field", "immunohistochemistry", "moon",
          "stereo_motorcycle", "retina")  # fmt: skip
CLASS_PHOTOS = ("chelsea", "coffee", "rocket")  # tabby, espresso, projectile
TEXTURES = ("brick", "grass", "gravel", "text", "page")
CROPS = 24  # per photo
KS = (1, 5, 10, 20, 50)
SETS = ("photos", "photos of classes", "textures", "noise")
CACHE = Path(tempfile.gettempdir()) / "tinyviz-unfamiliar"  # the passes' outputs, by content


# ------------------------------------------------------------------ the sets


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = (255 * (a.astype(np.float64) / max(float(a.max()), 1e-9))).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, 2)
    return a[..., :3]


def _small(a: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(a).resize((64, 64), Image.Resampling.LANCZOS))


def crops(photo: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The whole photo's centre square, then `n - 1` random squares of 35-100% its short side."""
    photo = _rgb(photo)
    h, w = photo.shape[:2]
    side = min(h, w)
    out = [_small(photo[(h - side) // 2 :][:side, (w - side) // 2 :][:, :side])]
    for _ in range(n - 1):
        s = int(side * rng.uniform(0.35, 1.0))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        out.append(_small(photo[y : y + s, x : x + s]))
    return out


def _photos(names, rng) -> np.ndarray:
    return np.stack([c for name in names for c in crops(_load(name), CROPS, rng)])


def _load(name: str) -> np.ndarray:
    import skimage.data

    photo = getattr(skimage.data, name)()
    return photo[0] if isinstance(photo, tuple) else photo  # stereo_motorcycle: left, ...


def natural_photos(rng) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    sk = [c for photo in load_sample_images().images for c in crops(photo, CROPS, rng)]
    return np.concatenate([np.stack(sk), _photos(PHOTOS, rng)])


def procedural(rng: np.random.Generator, n: int = 40) -> list[np.ndarray]:
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    out = []
    for _ in range(n):
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        cell = rng.integers(2, 17)
        check = ((yy // cell + xx // cell) % 2)[..., None]
        out.append(a * check + b * (1 - check))
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.1, 1.0)
        wave = (np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy)) + 1)[..., None] / 2
        out.append(a * wave + b * (1 - wave))
        smooth = gaussian_filter(rng.normal(size=(64, 64, 3)), (rng.uniform(1, 6),) * 2 + (0,))
        out.append(128 + 127 * smooth / max(np.abs(smooth).max(), 1e-9))
        ramp = ((np.cos(angle) * xx + np.sin(angle) * yy) / 90)[..., None]
        out.append(a * ramp + b * (1 - ramp))
        out.append(np.broadcast_to(a, (64, 64, 3)))
    return [np.clip(o, 0, 255).astype(np.uint8) for o in out]


def textures(rng) -> np.ndarray:
    found = [c for name in TEXTURES for c in crops(_load(name), CROPS, rng)]
    return np.stack(found + procedural(rng))


def noise(rng: np.random.Generator, n: int = 60) -> np.ndarray:
    out = [rng.integers(0, 256, (64, 64, 3)) for _ in range(n)]
    out += [rng.normal(rng.uniform(40, 215), rng.uniform(10, 80), (64, 64, 3)) for _ in range(n)]
    salt = [rng.random((64, 64, 1)) for _ in range(n)]
    out += [np.where(s < 0.1, 0, np.where(s > 0.9, 255, 128)) * np.ones(3) for s in salt]
    gray = [rng.integers(0, 256, (64, 64, 1)) * np.ones(3) for _ in range(n)]
    return np.stack([np.clip(o, 0, 255).astype(np.uint8) for o in out + gray])


def ood_sets(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "photos": natural_photos(rng),
        "photos of classes": _photos(CLASS_PHOTOS, rng),
        "textures": textures(rng),
        "noise": noise(rng),
    }


# ------------------------------------------------------------------ the passes


def outputs(model, images: np.ndarray, batch: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(logits, penultimate features) of uint8 images, in batches."""
    import torch

    from tinyviz.data.batches import to_model_input

    logits, feats = [], []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            f = model.forward_features(to_model_input(np.asarray(images[s : s + batch])))
            logits.append(model.forward_head(f).float().numpy())
            feats.append(f.float().numpy())
    return np.concatenate(logits), np.concatenate(feats)


class Passes:
    """A run's (logits, features) of named image sets, each kept in `CACHE` under the
    weights' digest and the images' bytes, and the model loaded only for a missing one."""

    def __init__(self, run) -> None:
        from tinyviz.explain.analysis import weights_digest
        from tinyviz.runs.folder import RunFolder

        self.run = run
        self.digest = weights_digest(RunFolder(run.path).weights)[:16]
        self.model = None
        self.seconds = 0.0

    def __call__(self, name: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import hashlib

        images = np.ascontiguousarray(images)
        key = hashlib.sha256(self.digest.encode() + name.encode() + images.tobytes())
        path = CACHE / f"{self.run.name}--{name.replace(' ', '_')}-{key.hexdigest()[:16]}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                return z["logits"].astype(np.float64), z["features"].astype(np.float32)
        start = time.perf_counter()
        if self.model is None:
            import torch

            from tinyviz.runs.weights import load_model

            self.model = load_model(self.run, device=torch.device("cpu")).eval()
        logits, feats = outputs(self.model, images)
        self.seconds += time.perf_counter() - start
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, logits=logits.astype(np.float32), features=feats.astype(np.float16))
        return logits.astype(np.float64), feats.astype(np.float32)


# ------------------------------------------------------------------ the scores

Scores = tuple[np.ndarray, dict[str, np.ndarray]]  # validation's, and each set's


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return float(roc_auc_score(y, np.r_[inside, outside]))


def logit_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    from scipy.special import logsumexp

    from tinyviz.explain.familiar import doubt

    return {"msp": doubt(logits), "maxlogit": -logits.max(1), "energy": -logsumexp(logits, 1)}


def summed(*parts: Scores) -> Scores:
    """The sum of scores standardised by their validation mean and spread (the dashboard's
    way of adding the distance and the doubt)."""
    z = [(lambda x, v=v: (x - v.mean()) / max(v.std(), 1e-9)) for v, _ in parts]
    val = sum(f(v) for f, (v, _) in zip(z, parts, strict=True))
    names = parts[0][1]
    return val, {s: sum(f(o[s]) for f, (_, o) in zip(z, parts, strict=True)) for s in names}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kth_distance(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Distance of unit rows to their k-th nearest unit row of `bank`."""
    out = np.empty(len(queries))
    for s in range(0, len(queries), 2048):
        sims = queries[s : s + 2048] @ bank.T
        out[s : s + 2048] = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    return np.sqrt(np.maximum(2 - 2 * out, 0))


def mahalanobis(bank: np.ndarray, labels: np.ndarray):
    """min over classes of the Mahalanobis distance to the class mean, with one shared
    covariance (Ledoit-Wolf) fitted on `bank`'s rows."""
    from sklearn.covariance import LedoitWolf

    means = np.stack([bank[labels == c].mean(0) for c in np.unique(labels)])
    precision = (
        LedoitWolf().fit(bank - means[np.searchsorted(np.unique(labels), labels)]).precision_
    )

    def score(x: np.ndarray) -> np.ndarray:
        d = x @ precision
        sq = (d * x).sum(1)[:, None] - 2 * d @ means.T + ((means @ precision) * means).sum(1)
        return sq.min(1)

    return score


def vim(features: np.ndarray, logits: np.ndarray):
    """ViM (Wang et al. 2022) fitted on a bank's features and logits: the head's weights are
    recovered by least squares (the head is linear), the origin moved to -W^+ b, the
    principal subspace of the moved features kept (half the dimensions, at most 256)."""
    from scipy.special import logsumexp

    fit, *_ = np.linalg.lstsq(np.c_[features, np.ones(len(features))], logits, rcond=None)
    w, b = fit[:-1].T, fit[-1]
    origin = -np.linalg.pinv(w) @ b
    dims = min(features.shape[1] // 2, 256)
    _, _, vt = np.linalg.svd(features - origin, full_matrices=False)
    null = vt[dims:].T

    def residual(f: np.ndarray) -> np.ndarray:
        return np.linalg.norm((f - origin) @ null, axis=1)

    alpha = logits.max(1).mean() / residual(features).mean()
    return lambda f, z: alpha * residual(f) - logsumexp(z, 1)


# ------------------------------------------------------------------ table 1: the dashboard's


DASHBOARD = "the dashboard's score"


def dashboard_scores(run_dir: Path, sets: dict[str, np.ndarray]):
    """The dashboard's score (through `familiar.Checker` itself) and each of its parts on
    the validation images it was calibrated on (all of them, each against the others; with
    Gaussians the ones they held out) and on each set; the checker and the seconds spent in
    passes."""
    from tinyviz.explain import familiar
    from tinyviz.runs.folder import open_run

    checker = familiar.checker(run_dir)
    if checker is None:
        raise SystemExit(f"{run_dir} has no stored analysis: run `tinyviz analyse {run_dir}`")
    cal, bank, gauss = checker.calibration, checker.bank, checker.gaussians
    passes = Passes(open_run(run_dir))
    rows = np.arange(len(bank)) if gauss is None else gauss.val_rows
    val_distance = bank.kth_distance(bank.vectors[rows], cal.k, own=rows).astype(np.float64)
    val_doubt = familiar.load_doubts(checker.folder)[rows]
    parts = {f"knn{cal.k}": val_distance, "msp": val_doubt}
    if gauss is not None:
        parts["mahalanobis"] = gauss.val_distance.astype(np.float64)
    whole = cal.combine(val_distance, val_doubt, parts.get("mahalanobis"))
    out: dict[str, Scores] = {name: (v, {}) for name, v in parts.items()}
    out[DASHBOARD] = (whole, {})
    for name, images in sets.items():
        logits, feats = passes(name, images)
        out[f"knn{cal.k}"][1][name] = checker.distances(feats)
        out["msp"][1][name] = familiar.doubt(logits)
        if gauss is not None:
            out["mahalanobis"][1][name] = gauss.distance(feats)
        out[DASHBOARD][1][name] = checker.scores(feats, logits)
    return out, checker, passes.seconds


# ------------------------------------------------------------------ table 2: the comparison


def compared_scores(
    run_dir: Path, data, sets: dict[str, np.ndarray], val_per_class: int, train_per_class: int
) -> tuple[dict[str, Scores], dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """Every score on a validation subset, with a training bank (see the module's text)."""
    from tinyviz.explain import analysis, familiar
    from tinyviz.explain.gaussians import Gaussians
    from tinyviz.runs.folder import open_run

    run = open_run(run_dir)
    passes = Passes(run)
    folder = familiar.find_analysis(run_dir)
    projected = familiar.load_bank(folder)
    val_rows = analysis.subset_rows(data.val.labels, val_per_class)
    train_rows = analysis.subset_rows(data.train.labels, train_per_class)
    train_labels = np.asarray(data.train.labels)[train_rows]
    v_logits, v_feats = passes(f"val{val_per_class}", data.val.images[val_rows])
    t_logits, t_feats = passes(f"train{train_per_class}", data.train.images[train_rows])
    ood = {name: passes(name, images) for name, images in sets.items()}

    def score(fn) -> Scores:
        return fn(v_feats, v_logits), {s: fn(f, z) for s, (z, f) in ood.items()}

    out: dict[str, Scores] = {}
    for name in ("msp", "maxlogit", "energy"):
        out[name] = score(lambda f, z, n=name: logit_scores(z)[n])
    in_pca, t_pca = projected.embed, projected.embed(t_feats)
    out["knn10, validation bank"] = score(
        lambda f, z: projected.kth_distance(in_pca(f), familiar.K)
    )
    for k in (1, 5, 10, 20):
        out[f"knn{k}, training bank"] = score(lambda f, z, k=k: kth_distance(t_pca, in_pca(f), k))
        out[f"knn{k}, training bank, whole features"] = score(
            lambda f, z, k=k: kth_distance(unit(t_feats), unit(f), k)
        )
    pca_maha = mahalanobis(t_pca, train_labels)
    out["mahalanobis, projected"] = score(lambda f, z: pca_maha(in_pca(f)))
    whole_maha = mahalanobis(unit(t_feats), train_labels)
    out["mahalanobis, whole features"] = score(lambda f, z: whole_maha(unit(f)))
    out["vim"] = score(vim(t_feats, t_logits))
    low_rank = Gaussians.fit(t_feats, train_labels)
    out[GAUSS] = score(lambda f, z: low_rank.distance(f))
    for part in ("knn10, validation bank", "knn10, training bank", "mahalanobis, whole features"):
        for conf in ("msp", "energy"):
            out[f"{part} + {conf}"] = summed(out[part], out[conf])
    out[f"{GAUSS} + msp"] = summed(out[GAUSS], out["msp"])
    out[f"knn10, validation bank + {GAUSS} + msp (dashboard)"] = summed(
        out["knn10, validation bank"], out[GAUSS], out["msp"]
    )
    held = held_out(run, t_feats, train_labels, v_feats, np.asarray(data.val.labels)[val_rows])
    return out, held, passes.seconds


GAUSS = "mahalanobis, whole features, rank 64"  # the dashboard's `Gaussians`
HELD_OUT = 10  # every 10th class is held out: 20 of 200


def held_out(run, t_feats, t_labels, v_feats, v_labels) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For a run whose backbone was frozen (only its linear head learned Tiny ImageNet): the
    head trained again without every `HELD_OUT`-th class, then msp, the training-bank kNN
    and their sum on the validation images of the kept classes (in) and of the held-out
    ones (out). Other runs learned every class in their features: {}."""
    if not run.config.model.options.get("freeze"):
        return {}
    from sklearn.linear_model import LogisticRegression

    from tinyviz.explain.familiar import doubt
    from tinyviz.explain.gaussians import Gaussians

    keep_t, keep_v = t_labels % HELD_OUT != 0, v_labels % HELD_OUT != 0
    head = LogisticRegression(max_iter=300).fit(t_feats[keep_t], t_labels[keep_t])
    msp = doubt(head.decision_function(v_feats))
    knn = kth_distance(unit(t_feats[keep_t]), unit(v_feats), 10)
    kept = np.unique(t_labels[keep_t])
    gauss = Gaussians.fit(t_feats[keep_t], np.searchsorted(kept, t_labels[keep_t]))
    maha = gauss.distance(v_feats)
    out = "held-out classes"
    parts = [(x[keep_v], {out: x[~keep_v]}) for x in (msp, knn, maha)]
    both, three = summed(*parts[:2]), summed(*parts)
    return {
        "msp": (msp[keep_v], msp[~keep_v]),
        "knn10, training bank, whole features": (knn[keep_v], knn[~keep_v]),
        "knn10, training bank, whole features + msp": (both[0], both[1][out]),
        f"{GAUSS}": (maha[keep_v], maha[~keep_v]),
        f"knn10, training bank, whole features + {GAUSS} + msp": (three[0], three[1][out]),
    }


# ------------------------------------------------------------------ what the dashboard says


def measured(checker, scores: dict[str, Scores]):
    """The dashboard score's `familiar.Measured` on this run, from table 1."""
    from tinyviz.explain.familiar import Measured

    val, outs = scores[DASHBOARD]
    return Measured(
        auroc=round(auroc(val, outs["photos"]), 4),
        caught=round(float((outs["photos"] > checker.calibration.threshold).mean()), 4),
        photos=len(outs["photos"]),
        textures=round(auroc(val, outs["textures"]), 4),
        noise=round(auroc(val, outs["noise"]), 4),
    )


def verdicts(found: dict[str, tuple]) -> str:
    """Table 3: per run, the dashboard score's AUROCs, flagged shares, and what it says."""
    head = ["run", "AUROC photos", "AUROC textures", "AUROC noise", "flagged: val",
            "flagged: photos", "the dashboard says"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for run, (m, cal) in found.items():
        says = "a verdict" if m.can_tell else "this model cannot tell"
        cells = [run, f"{m.auroc:.3f}", f"{m.textures:.3f}", f"{m.noise:.3f}",
                 f"{cal.flagged:.1%}", f"{m.caught:.0%}", says]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the tables

COLUMNS = (*SETS, "held-out classes")


def rows_of(run: str, scores: dict[str, Scores], held: dict | None = None) -> list[dict]:
    """A table row per score; `held`: the held-out classes' (in, out) scores by name."""
    from tinyviz.explain.familiar import QUANTILE

    rows = []
    for score, (val, outs) in scores.items():
        row = {"run": run, "score": score, "val": len(val)}
        row["val flagged"] = float((val > np.quantile(val, QUANTILE)).mean())
        pairs = [(name, val, values) for name, values in outs.items()]
        if held and score in held:
            pairs.append(("held-out classes", *held[score]))
        for name, inside, values in pairs:
            row[name] = auroc(inside, values)
            row[f"{name} flagged"] = float((values > np.quantile(inside, QUANTILE)).mean())
        rows.append(row)
    for score in set(held or ()) - set(scores):  # measured on the held-out classes only
        inside, values = held[score]
        row = {"run": run, "score": score, "val": len(inside)}
        row["val flagged"] = float((inside > np.quantile(inside, QUANTILE)).mean())
        row["held-out classes"] = auroc(inside, values)
        row["held-out classes flagged"] = float((values > np.quantile(inside, QUANTILE)).mean())
        rows.append(row)
    return rows


def table(rows: list[dict], columns=COLUMNS) -> str:
    used = [c for c in columns if any(c in r for r in rows)]
    head = ["run", "score", "val imgs", *(f"AUROC {c}" for c in used), "flagged: val"]
    head += [f"flagged: {c}" for c in used]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r["run"], r["score"], f"{r['val']:,}"]
        cells += [f"{r[c]:.3f}" if c in r else "" for c in used]
        cells += [f"{r['val flagged']:.1%}"]
        cells += [f"{r[f'{c} flagged']:.0%}" if c in r else "" for c in used]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("TINYVIZ_DATA"), help="zip or folder")
    p.add_argument("--run", action="append", help="run folder (default: every shipped run)")
    p.add_argument("--compare", action="store_true", help="table 2: every score (slow)")
    p.add_argument("--compare-run", action="append", metavar="NAME",
                   help="table 2 for this run only (repeat; default: every run)")  # fmt: skip
    p.add_argument("--val-per-class", type=int, default=10, help="table 2's validation subset")
    p.add_argument("--train-per-class", type=int, default=20, help="table 2's training bank")
    p.add_argument("--store", action="store_true", help="write table 3 into each run's "
                   "calibration file (TINYVIZ_WRITE_SHIPPED=1 for shipped runs)")  # fmt: skip
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "bench/results/unfamiliar_cpu.txt"))
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    run_dirs = args.run or sorted(str(p) for p in (ROOT / "checkpoints").iterdir() if p.is_dir())
    began = time.perf_counter()
    sets = ood_sets()
    first, second, seconds, found = [], [], 0.0, {}
    data = None
    for run_dir in run_dirs:
        name = Path(run_dir).name
        scores, checker, spent = dashboard_scores(Path(run_dir), sets)
        first += rows_of(name, scores)
        seconds += spent
        found[name] = (measured(checker, scores), checker.calibration)
        if args.store:
            from tinyviz.explain.familiar import store_measured

            where = store_measured(checker.folder, checker.calibration, found[name][0], run_dir)
            print(f"{name}: stored in {where}", file=sys.stderr)
        if args.compare and (not args.compare_run or name in args.compare_run):
            if data is None:
                from tinyviz.data import load

                data = load(args.data, progress=False)
            scores, held, spent = compared_scores(
                Path(run_dir), data, sets, args.val_per_class, args.train_per_class
            )
            second += rows_of(name, scores, held)
            seconds += spent
        print(f"{name}: done ({seconds:.0f} s of passes so far)", file=sys.stderr, flush=True)
    load_avg = " ".join(f"{x:.1f}" for x in os.getloadavg())
    sizes = ", ".join(f"{name} {len(images)}" for name, images in sets.items())
    report = (
        f"unfamiliar on {os.cpu_count()} CPU cores, torch {torch.__version__}, {args.threads} "
        f"threads; load average {load_avg}\n"
        "AUROC: validation images (in) against each set (out); flagged: the fraction of a set "
        "above the 95th percentile of the validation scores (5% of validation flagged)\n"
        f"out-of-distribution images: {sizes}\n"
        f"{time.perf_counter() - began:.0f} s in all, {seconds:.0f} s of them in passes not "
        f"kept from an earlier run (`CACHE`)\n\n"
        "Table 1: the dashboard's score and its parts (knn10 + msp, plus mahalanobis where "
        "the run has its Gaussians), on the validation images it is calibrated on (all "
        "10,000, or the 2,000 held out from the Gaussians)\n\n" + table(first)
    )
    if second:
        report += (
            f"\nTable 2: every score on {args.val_per_class} validation images per class, "
            f"banks of {args.train_per_class} training images per class; held-out classes: "
            f"the head trained again without every {HELD_OUT}th class (frozen backbones "
            "only)\n\n" + table(second)
        )
    from tinyviz.explain.familiar import CAN_TELL

    report += (
        f"\nTable 3: what the dashboard says on each run: a verdict where its score's AUROC on "
        f"photos is at least {CAN_TELL}, else that the model cannot tell\n\n" + verdicts(found)
    )
    print(report)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
