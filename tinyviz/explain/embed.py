"""Maps of the validation set's penultimate features: PCA, t-SNE (openTSNE) and UMAP.

Maps are computed once per (run, data set, method, dimensions, class subset) and cached as
`.npy` + `.json` next to the run's other analysis results (the stored `analysis.Analysis`
they map: the full set, or the stratified subset shown while it is computed). PCA is one
matrix product; t-SNE and UMAP iterate over every point (and a process's first UMAP map
waits for numba to compile), far too slow to repeat on a page's rerun, hence the cache.
t-SNE and UMAP first reduce the features to 50 dimensions with PCA, as is standard (faster,
less noisy).

Placing a new image on a map (`place`) uses the PCA projection (stored as plain arrays) or
openTSNE's `transform` with 50 iterations instead of its default 250 (several times cheaper,
with the same result to a few hundredths of the map). UMAP maps, and t-SNE maps whose
fitted model is not in memory, place a new image at the distance-weighted mean of its
nearest validation images' positions, which is where UMAP's own `transform` starts: that
transform is too slow for a page, and slower still on its first call after installation
(numba compiling pynndescent's search). The measured times are in
bench/results/docstring_timings.md. Fitted models are kept in memory only, never pickled to
disk: a run folder can come from someone else, and unpickling it could run their code.
`Placement.how` says which way was used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from .. import io
from . import analysis, mirror

METHODS = ("pca", "tsne", "umap")
MAP_BUDGET = 16 * 2**20  # bytes of class-subset maps kept per run; the least recently used go
PARTS = ("json", "coords.npy", "indices.npy", "mean.npy", "components.npy")  # of one map
PRE_PCA = 50
NEIGHBOURS_FOR_PLACING = 8
TSNE_PLACE_ITERATIONS = 50
# Fewer points are fitted on one thread: each of the 750 iterations is then too short to pay
# for waking the others (120 points: 0.6 s of CPU on one thread, 10 s or more on two cores
# that other processes also use).
TSNE_THREADED_MIN = 1000
HOW = {
    "projection": "placed by the map's own PCA projection",
    "transform": "placed by openTSNE's transform against the fitted map",
    "neighbours": "placed at the distance-weighted mean of its nearest validation images "
    "on the map",
}
_FITTED: OrderedDict[str, Any] = OrderedDict()  # cache key -> (pca, t-SNE), a few maps
_FITTED_MAX = 4
_FITTED_GUARD = threading.Lock()


@dataclass(frozen=True, eq=False)
class Embedding:
    """A map: `coords[i]` is where validation image `indices[i]` lies."""

    method: str
    dims: int
    coords: np.ndarray  # (N, dims) float32
    indices: np.ndarray  # (N,) int64
    explained_variance: np.ndarray | None = None  # PCA: ratio per component
    params: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Placement:
    """New images on a map, and how they were placed (a key of `HOW`)."""

    coords: np.ndarray  # (M, dims) float32
    how: str


# ------------------------------------------------------------------ computing


def embed(
    features: np.ndarray,
    method: str,
    dims: int,
    *,
    seed: int = 0,
    progress: analysis.Progress | None = None,
) -> Embedding:
    """A `dims`-dimensional map of `features` (N, D); `indices` are 0..N-1."""
    return _fit(features, method, dims, seed, progress)[0]


def _fit(
    features: np.ndarray, method: str, dims: int, seed: int, progress: analysis.Progress | None
):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, not {dims}")
    report = progress or (lambda f, m: None)
    x = np.asarray(features, np.float32)
    # the page shows this after "computing in the background: ": a stage, said in words
    report(0.0, "the PCA map" if method == "pca" else f"PCA to {PRE_PCA} dimensions first")
    if method == "pca":
        pca = PCA(n_components=min(dims, *x.shape), random_state=seed).fit(x)
        coords = _pad(pca.transform(x), dims)
        report(1.0, "done")
        return (
            Embedding(
                "pca",
                dims,
                coords,
                np.arange(len(x)),
                pca.explained_variance_ratio_.astype(np.float32),
                {"seed": seed},
            ),
            (pca, None),
        )
    pca = PCA(n_components=min(PRE_PCA, *x.shape), random_state=seed).fit(x)
    reduced = pca.transform(x).astype(np.float32)
    fit = _tsne if method == "tsne" else _umap
    coords, reducer, params = fit(reduced, dims, seed, report)
    report(1.0, "done")
    emb = Embedding(
        method,
        dims,
        _pad(coords, dims),
        np.arange(len(x)),
        None,
        {"seed": seed, "pre_pca": pca.n_components_, **params},
    )
    return emb, (pca, reducer)


def _tsne(x: np.ndarray, dims: int, seed: int, report):
    """openTSNE; FFT gradients for 10,000+ points in 2D, Barnes-Hut otherwise.

    FFT's cost per iteration has a floor (its interpolation grid), so Barnes-Hut is faster
    for fewer points (openTSNE's own rule), and FFT only exists in 1-2 dimensions.
    """
    from openTSNE import TSNE

    perplexity = float(max(2.0, min(30.0, (len(x) - 1) / 3)))
    total, every = 750, 50  # 250 early-exaggeration + 500 normal iterations
    done = [0]

    def callback(iteration, error, embedding) -> bool:
        done[0] += every
        report(0.05 + 0.95 * min(done[0] / total, 1.0), f"t-SNE: iteration {done[0]} / {total}")
        return False

    method = "fft" if dims <= 2 and len(x) >= 10_000 else "bh"
    tsne = TSNE(
        n_components=dims,
        perplexity=perplexity,
        negative_gradient_method=method,
        n_jobs=-1 if len(x) >= TSNE_THREADED_MIN else 1,
        random_state=seed,
        callbacks=callback,
        callbacks_every_iters=every,
    )
    report(0.05, "t-SNE: nearest neighbours")
    fitted = tsne.fit(x)
    # The fitted map keeps its optimiser settings for `transform`, callbacks included: drop
    # ours, or placing an image later would report to this fit's (long gone) progress bar.
    fitted.gradient_descent_params["callbacks"] = None
    return (np.asarray(fitted, np.float32), fitted, {"perplexity": perplexity, "gradient": method})


def _umap(x: np.ndarray, dims: int, seed: int, report):
    """umap-learn with its defaults (15 neighbours, min_dist 0.1); seeded, so repeatable."""
    import umap

    neighbours = int(min(15, max(2, len(x) - 1)))
    init = "spectral" if len(x) > dims + 10 else "random"
    reducer = umap.UMAP(
        n_components=dims, n_neighbors=neighbours, random_state=seed, init=init, n_jobs=1
    )
    report(0.05, "UMAP: neighbours graph and layout (no finer progress)")
    coords = reducer.fit_transform(x)
    return np.asarray(coords, np.float32), reducer, {"n_neighbors": neighbours}


def _pad(coords: np.ndarray, dims: int) -> np.ndarray:
    """float32 `(N, dims)`; zero columns where there were fewer points than dimensions."""
    out = np.zeros((len(coords), dims), np.float32)
    out[:, : coords.shape[1]] = coords
    return out


# -------------------------------------------------------------------- caching


def cached_embedding(
    run_dir: Path,
    data,
    method: str,
    dims: int,
    *,
    classes: list[int] | None = None,
    device: str = "cpu",
    progress: analysis.Progress | None = None,
    limit: int = 0,
    seed: int = 0,
    refit: bool = False,
    source: analysis.Analysis | None = None,
) -> Embedding:
    """The map of the run's validation features (of `classes` only, if given), from the cache.

    `source`: a stored analysis to map (a page passes the one it draws, which may be the
    stratified subset); without it the full analysis is read, computed first if it is not
    stored (the first 70% of the progress bar then). `indices` are rows of its outputs.
    `refit` recomputes the map even if cached (the way to get `place` to use openTSNE's
    transform on a t-SNE map that was loaded from disk).
    """
    outputs, folder, before = _source(run_dir, data, limit, device, progress, source)
    base = _base(folder, method, dims, classes, seed)
    with analysis.key_lock(str(base)):
        if not refit and _stored(base):
            return _read(base)
        indices = select(outputs.labels, classes)
        emb, fitted = _fit(
            outputs.features[indices],
            method,
            dims,
            seed,
            _scaled(progress, 0.0 if before else 0.7, 1.0),
        )
        emb = Embedding(
            emb.method,
            dims,
            emb.coords,
            indices,
            emb.explained_variance,
            {**emb.params, "classes": None if classes is None else sorted(classes)},
        )
        _write(base, emb, fitted[0])
        if method == "tsne":
            _remember(base, fitted)
        if classes is not None:
            prune_maps(base)
        return emb


def _source(run_dir, data, limit, device, progress, source):
    """(outputs, folder, whether they were stored before) of `source` or of the full pass."""
    if source is not None:
        return source.outputs, source.folder, True
    before = analysis.is_cached(run_dir, data, limit)
    outputs = analysis.val_outputs(
        run_dir,
        data,
        device=device,
        limit=limit,
        progress=None if before else _scaled(progress, 0.0, 0.7),
    )
    return outputs, analysis.cache_dir(run_dir, data, limit), before


def is_cached(
    run_dir: Path,
    data,
    method: str,
    dims: int,
    *,
    classes: list[int] | None = None,
    limit: int = 0,
    seed: int = 0,
    source: analysis.Analysis | None = None,
) -> bool:
    """Whether `cached_embedding` would read this map rather than compute it."""
    if source is not None:
        return stored_in(source.folder, method, dims, classes=classes, seed=seed)
    if not analysis.is_cached(run_dir, data, limit):
        return False
    return _stored(_base(analysis.cache_dir(run_dir, data, limit), method, dims, classes, seed))


def stored_in(
    folder: Path, method: str, dims: int, *, classes: list[int] | None = None, seed: int = 0
) -> bool:
    """Whether this map of the analysis stored in `folder` is stored beside it."""
    return _stored(_base(Path(folder), method, dims, classes, seed))


def place(
    run_dir: Path,
    data,
    method: str,
    dims: int,
    new_features: np.ndarray,
    classes: list[int] | None = None,
    *,
    limit: int = 0,
    seed: int = 0,
    source: analysis.Analysis | None = None,
) -> Placement:
    """Coordinates of new images (their features, (M, D)) on the cached map."""
    emb = cached_embedding(
        run_dir, data, method, dims, classes=classes, limit=limit, seed=seed, source=source
    )
    outputs, folder, _ = _source(run_dir, data, limit, "cpu", None, source)
    base = _base(folder, method, dims, classes, seed)
    new = np.atleast_2d(np.asarray(new_features, np.float32))
    if method == "pca":
        mean, components = _load(base, "mean"), _load(base, "components")
        return Placement(_pad((new - mean) @ components.T, dims), "projection")
    fitted = _recall(base) if method == "tsne" else None
    if fitted is not None:
        pca, tsne = fitted
        coords = tsne.transform(pca.transform(new), n_iter=TSNE_PLACE_ITERATIONS)
        return Placement(_pad(np.asarray(coords), dims), "transform")
    feats = outputs.features[emb.indices]
    return Placement(place_by_neighbours(feats, emb.coords, new), "neighbours")


def place_by_neighbours(
    features: np.ndarray, coords: np.ndarray, new: np.ndarray, k: int = NEIGHBOURS_FOR_PLACING
) -> np.ndarray:
    """Distance-weighted mean of the map positions of each new point's k nearest neighbours."""
    idx, dist = neighbours(features, np.atleast_2d(new), k=k)
    weights = 1.0 / (dist + 1e-6)
    weights /= weights.sum(1, keepdims=True)
    return np.einsum("mk,mkd->md", weights, coords[idx]).astype(np.float32)


def _scaled(progress: analysis.Progress | None, lo: float, hi: float):
    if progress is None:
        return None
    return lambda f, msg: progress(lo + (hi - lo) * f, msg)


def select(labels: np.ndarray, classes: list[int] | None) -> np.ndarray:
    """The rows of the images of `classes` (every row for None), in order."""
    if classes is None:
        return np.arange(len(labels), dtype=np.int64)
    return np.flatnonzero(np.isin(labels, list(classes))).astype(np.int64)


def _base(folder: Path, method: str, dims: int, classes: list[int] | None, seed: int) -> Path:
    """`folder/embed-<method><dims>d-<classes>-s<seed>`, to which suffixes are added."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if classes is None:
        tag = "all"
    else:
        key = "-".join(str(c) for c in sorted(set(classes)))
        tag = "c" + (key if len(key) <= 40 else hashlib.sha1(key.encode()).hexdigest()[:16])
    # beside the analysis; a shipped run's maps in its mirror (the run stays as shipped)
    return mirror.writable(folder) / f"embed-{method}{dims}d-{tag}-s{seed}"


def _path(base: Path, part: str) -> Path:
    return base.with_name(f"{base.name}.{part}")


def _stored(base: Path) -> bool:
    return _path(base, "json").exists()


def _write(base: Path, emb: Embedding, pca: PCA) -> None:
    """Arrays first, the JSON last: a map is only read back once its JSON exists."""
    io.save_array(_path(base, "coords.npy"), emb.coords)
    io.save_array(_path(base, "indices.npy"), emb.indices)
    if emb.method == "pca":
        io.save_array(_path(base, "mean.npy"), pca.mean_.astype(np.float32))
        io.save_array(_path(base, "components.npy"), pca.components_.astype(np.float32))
    ev = None if emb.explained_variance is None else emb.explained_variance.tolist()
    io.write_json(
        _path(base, "json"),
        {"method": emb.method, "dims": emb.dims, "explained_variance": ev, "params": emb.params},
    )


def _read(base: Path) -> Embedding:
    meta = json.loads(_path(base, "json").read_text())
    _used(base)
    ev = meta["explained_variance"]
    return Embedding(
        meta["method"],
        int(meta["dims"]),
        _load(base, "coords"),
        _load(base, "indices"),
        None if ev is None else np.array(ev, np.float32),
        meta["params"],
    )


def _used(base: Path) -> None:
    """A map read is a map used: its JSON's mtime orders the maps for `prune_maps`."""
    with contextlib.suppress(OSError):  # a read-only copy: it is never pruned either
        _path(base, "json").touch(exist_ok=True)


def _scope(base: Path) -> Path:
    """The run (or its mirror) a map belongs to: the folder above its `analysis/`, and
    above `epochs/E/` for an epoch view's (the run-folder contract's names)."""
    from ..runs.folder import RunFolder

    for parent in base.parents:
        if parent.name == RunFolder.ANALYSIS:
            home = parent.parent
            return home.parent.parent if home.parent.name == RunFolder.EPOCHS else home
    return base.parent


def stored_maps(scope: Path) -> list[tuple[Path, int, int]]:
    """Every class-subset map stored under `scope` (a run or its mirror): (base, bytes,
    when last used in ns), least recently used first. Maps of all classes are not counted:
    there are at most a few per analysis (a method and dims each)."""
    found = []
    for meta in Path(scope).rglob("embed-*-c*-s*.json"):
        base = meta.with_name(meta.name[: -len(".json")])
        size = 0
        for part in PARTS:
            try:
                size += _path(base, part).stat().st_size
            except OSError:
                continue
        try:
            used = meta.stat().st_mtime_ns
        except OSError:
            continue
        found.append((base, size, used))
    return sorted(found, key=lambda m: m[2])


def prune_maps(keep: Path, budget: int | None = None) -> int:
    """Delete the least recently used class-subset maps of `keep`'s run until they fit
    `budget` bytes (`MAP_BUDGET`); `keep`, just written, stays. Returns the bytes left."""
    budget = MAP_BUDGET if budget is None else budget
    maps = stored_maps(_scope(Path(keep)))
    total = sum(size for _, size, _ in maps)
    for base, size, _ in maps:
        if total <= budget:
            break
        if base == Path(keep):
            continue
        with _FITTED_GUARD:
            _FITTED.pop(str(base), None)
        for part in PARTS:  # the JSON first: a reader never finds half a map
            try:
                _path(base, part).unlink()
            except OSError:
                continue
        total -= size
    return total


def _load(base: Path, part: str) -> np.ndarray:
    return np.load(_path(base, f"{part}.npy"), allow_pickle=False)


def _remember(base: Path, fitted) -> None:
    with _FITTED_GUARD:
        _FITTED[str(base)] = fitted
        _FITTED.move_to_end(str(base))
        while len(_FITTED) > _FITTED_MAX:
            _FITTED.popitem(last=False)


def _recall(base: Path):
    with _FITTED_GUARD:
        return _FITTED.get(str(base))


# ------------------------------------------------------------ neighbours, display


def features_of_image(model, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1, D) penultimate features and (1, C) class probabilities of one 64 x 64 image.

    The model is shared between dashboard sessions, so the pass holds its lock: another
    session's explainer may have hooks on it.
    """
    import torch

    from ..data.batches import to_model_input
    from ..runtime.locks import model_lock

    device = next(model.parameters()).device
    with model_lock(model), torch.inference_mode():
        f = model.forward_features(to_model_input(rgb).to(device))
        probs = model.forward_head(f).float().softmax(1)
    return f.float().cpu().numpy(), probs.cpu().numpy()


def neighbours(
    features: np.ndarray, query: np.ndarray, k: int = 8, metric: str = "cosine"
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of `features` to each query, nearest first: (indices, distances).

    A 1-D query gives (k,) arrays, an (M, D) query (M, k). `metric`: cosine or euclidean.
    """
    feats = np.asarray(features, np.float32)
    q = np.asarray(query, np.float32)
    single = q.ndim == 1
    q = np.atleast_2d(q)
    if metric == "cosine":
        dist = 1 - _unit(q) @ _unit(feats).T
    elif metric == "euclidean":
        sq = (q**2).sum(1)[:, None] + (feats**2).sum(1)[None] - 2 * q @ feats.T
        dist = np.sqrt(np.maximum(sq, 0))
    else:
        raise ValueError(f"metric must be cosine or euclidean, not {metric!r}")
    k = min(k, len(feats))
    part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(dist, part, 1).argsort(1, kind="stable")
    idx = np.take_along_axis(part, order, 1).astype(np.int64)
    d = np.take_along_axis(dist, idx, 1).astype(np.float32)
    return (idx[0], d[0]) if single else (idx, d)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def thumbnails(images_u8: np.ndarray, indices: np.ndarray, size: int = 32) -> list[str]:
    """JPEG data URIs of the images at `indices`, for Vega-Lite tooltips (about 1 KB each)."""
    return [thumbnail_data_uri(np.asarray(images_u8[int(i)]), size, fmt="JPEG") for i in indices]


def thumbnail_data_uri(rgb: np.ndarray, size: int = 64, fmt: str = "PNG") -> str:
    """A `data:` URI of the image fitted into `size x size`, for chart tooltips."""
    import base64
    from io import BytesIO

    from PIL import Image

    fmt = fmt.upper()
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"fmt must be PNG or JPEG, not {fmt}")
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = BytesIO()
    img.save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {"optimize": True}))
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode()}"


def place_many(
    run_dir: Path,
    data,
    method: str,
    dims: int,
    new_features: np.ndarray,
    classes: list[int] | None = None,
    *,
    source: analysis.Analysis | None = None,
    chunk: int = 2000,
) -> np.ndarray:
    """(M, dims) coordinates of many new images (the training images) on a cached map.

    PCA projects them (one product); t-SNE and UMAP place them by their nearest validation
    images (`place_by_neighbours`) in chunks, since the fitted models' transforms cost
    seconds per image, while a neighbour search places all the training images at once.
    """
    new = np.atleast_2d(np.asarray(new_features, np.float32))
    if method == "pca" or not len(new):
        return place(run_dir, data, method, dims, new, classes, source=source).coords
    emb = cached_embedding(run_dir, data, method, dims, classes=classes, source=source)
    outputs = source.outputs if source is not None else analysis.val_outputs(run_dir, data)
    feats = np.asarray(outputs.features[emb.indices], np.float32)
    parts = [
        place_by_neighbours(feats, emb.coords, new[i : i + chunk])
        for i in range(0, len(new), chunk)
    ]
    return np.concatenate(parts).astype(np.float32)
