"""How well each shipped run tells photos of none of its classes from validation images.

    python bench/unfamiliar.py --data PATH [--run checkpoints/resnet18-push ...]
                               [--per-class 10] [--out bench/results/unfamiliar_cpu.txt]

In-distribution: the 10,000 Tiny ImageNet validation images. Out of distribution, built here
from what the installed libraries bundle (no download), each image resized to 64 x 64 the
way uploads are (Pillow's LANCZOS):

* photos: random square crops of scikit-learn's two sample photos and of scikit-image's
  photos whose subject is none of the 200 classes (astronaut, cameraman, coins, a hubble
  field, a stained tissue, the moon, a motorcycle, a retina);
* photos of classes: the same of scikit-image's photos whose subject IS a class (chelsea the
  tabby cat, a cup of coffee: espresso, a rocket: projectile). A good score does not flag
  them; their AUROC should stay near 0.5;
* textures: crops of scikit-image's brick, grass, gravel, text and page images, and
  procedural checkerboards, stripes, smooth noise, colour gradients and flat colours;
* noise: uniform, Gaussian and salt-and-pepper pixel noise.

The scores (higher: stranger), as the literature has them:

* knnK: the distance to the K-th nearest validation image of the normalised penultimate
  features, projected on the principal components stored with the run's analysis (the
  score `tinyviz.explain.familiar` uses; Sun et al. 2022). Validation images are scored
  against the other 9,999 (leave one out), so no new pass over the validation set is needed;
* msp: 1 - the largest softmax probability (Hendrycks & Gimpel 2017), from the stored
  log-probabilities;
* maxlogit and energy (-logsumexp of the logits; Liu et al. 2020): these need the logits,
  which the analysis does not store, so they are measured on a stratified subset of
  `--per-class` validation images per class, through the model here; `knn10@sub` and
  `msp@sub` are the stored scores on the same subset, to compare like with like.

For each, the AUROC (1.0: every out-of-distribution image scores above every validation
image) and, at the threshold the dashboard uses (the 95th percentile of the validation
scores: 5% of validation images flagged), the fraction of each set flagged.
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


# ------------------------------------------------------------------ the scores


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


def passes(run, model_of, data, sets: dict[str, np.ndarray], sub: np.ndarray) -> dict:
    """Logits and features of the validation subset and of each set, through the model;
    kept in `CACHE` (keyed by the weights' digest and what went in), so scores can be
    studied again without the passes."""
    import hashlib

    from tinyviz.explain.analysis import weights_digest
    from tinyviz.runs.folder import RunFolder

    key = hashlib.sha256(weights_digest(RunFolder(run.path).weights).encode())
    key.update(sub.tobytes())
    for name in sorted(sets):
        key.update(name.encode() + sets[name].tobytes())
    path = CACHE / f"{run.name}-{key.hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    model = model_of()
    found = {}
    for name, images in [("val", data.val.images[sub]), *sets.items()]:
        found[f"{name}/logits"], found[f"{name}/features"] = outputs(model, images)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **found)
    return found


def logit_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    from scipy.special import logsumexp, softmax

    return {
        "msp": 1 - softmax(logits, 1).max(1),
        "maxlogit": -logits.max(1),
        "energy": -logsumexp(logits, 1),
    }


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(inside)), np.ones(len(outside))]
    return float(roc_auc_score(y, np.r_[inside, outside]))


def measure(run_dir: Path, data, sets: dict[str, np.ndarray], per_class: int) -> list[dict]:
    """One row per score: validation images, AUROC and flagged fraction per set."""
    import torch

    from tinyviz.explain import analysis, familiar
    from tinyviz.runs.folder import open_run
    from tinyviz.runs.weights import load_model

    run = open_run(run_dir)
    folder = familiar.find_analysis(run_dir)
    if folder is None:
        raise SystemExit(f"{run.name} has no stored analysis: run `tinyviz analyse {run_dir}`")
    bank = familiar.load_bank(folder)
    stored = analysis.read(folder).outputs
    sub = analysis.subset_rows(stored.labels, per_class)
    start = time.perf_counter()
    passed = passes(run, lambda: load_model(run, device=torch.device("cpu")), data, sets, sub)
    seconds = time.perf_counter() - start
    ood = {name: (passed[f"{name}/logits"], passed[f"{name}/features"]) for name in sets}
    sub_logits = passed["val/logits"]
    val: dict[str, np.ndarray] = {}
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in sets}
    for k in KS:
        val[f"knn{k}"] = bank.kth_distance(bank.vectors, k, leave_out=True)
        for name, (_, feats) in ood.items():
            out[name][f"knn{k}"] = bank.kth_distance(bank.embed(feats), k)
    val["msp"] = 1 - np.exp(np.asarray(stored.logp, np.float32).max(1))
    val["knn10@sub"], val["msp@sub"] = val["knn10"][sub], val["msp"][sub]
    for score, values in logit_scores(sub_logits).items():
        if score != "msp":
            val[score] = values
    for name, (logits, _) in ood.items():
        out[name].update(logit_scores(logits))
        out[name]["knn10@sub"], out[name]["msp@sub"] = out[name]["knn10"], out[name]["msp"]
    rows = []
    for score, inside in val.items():
        threshold = np.quantile(inside, familiar.QUANTILE)
        row = {"run": run.name, "score": score, "val": len(inside), "seconds": seconds}
        for name in sets:
            row[name] = auroc(inside, out[name][score])
            row[f"{name} flagged"] = float((out[name][score] > threshold).mean())
        rows.append(row)
    return rows


# ------------------------------------------------------------------ the table


def table(rows: list[dict], sets: dict[str, np.ndarray]) -> str:
    head = ["run", "score", "val imgs"] + [f"AUROC {s}" for s in SETS] + ["flagged: photos",
            "textures", "noise"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r["run"], r["score"], f"{r['val']:,}"]
        cells += [f"{r[s]:.3f}" for s in SETS]
        cells += [f"{r[f'{s} flagged']:.0%}" for s in ("photos", "textures", "noise")]
        lines.append("| " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{name} {len(images)}" for name, images in sets.items())
    return "\n".join(lines) + f"\n\nout-of-distribution images: {sizes}\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("TINYVIZ_DATA"), help="zip or folder")
    p.add_argument("--run", action="append", help="run folder (default: every shipped run)")
    p.add_argument("--per-class", type=int, default=10, help="subset for maxlogit and energy")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "bench/results/unfamiliar_cpu.txt"))
    args = p.parse_args()
    import torch

    from tinyviz.data import load

    torch.set_num_threads(args.threads)
    data = load(args.data, progress=False)
    run_dirs = args.run or sorted(str(p) for p in (ROOT / "checkpoints").iterdir() if p.is_dir())
    sets = ood_sets()
    rows = []
    for run_dir in run_dirs:
        rows += measure(Path(run_dir), data, sets, args.per_class)
        print(f"{Path(run_dir).name}: {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    load_avg = " ".join(f"{x:.1f}" for x in os.getloadavg())
    report = (
        f"unfamiliar on {os.cpu_count()} CPU cores, torch {torch.__version__}, {args.threads} "
        f"threads; load average {load_avg}\n"
        f"AUROC: validation images (in) against each set (out); flagged: the fraction of a set "
        f"above the 95th percentile of the validation scores (5% of validation flagged)\n\n"
        + table(rows, sets)
    )
    print(report)
    Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
