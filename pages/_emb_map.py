"""The Embeddings page's map: which map is drawn (a method, its dimensions, a class subset,
the epoch slider's stop), where it comes from, and the training images placed on it.

`Source` is what every map of one script run is made of: the run, the data set, the stored
analysis the page draws (maybe the stratified subset), the run's own final analysis, and
the run's analysed epoch views (then every stop's map is drawn in the first view's frame,
aligned epoch by epoch, so that moving the slider moves the points instead of scattering
them anew). The maps kept in memory are keyed by all of it.

A PCA map takes milliseconds and is made here. A t-SNE or UMAP map that is not stored yet
is computed by a background process (`tinyviz.explain.work`, kind "map"), shared by every
session asking for it; meanwhile the page draws the PCA map of the same images and follows
the process in a fragment, which draws the page again when the map is stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from pages import _cache, _gate, _images, _map, _queued, _state
from pages._text import plain
from pages.charts import embedding as charts
from tinyviz.explain import (
    embed,
    epochs,
    map_speed,
    speed,
    sprites,
    train_features,
    wordnet,
    work,
)
from tinyviz.runs import Run

METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
SELECTED = 60  # images of a selection shown
# Training images on the map, seconds on a shared 2-core machine: fixed, per image, and
# per thumbnail when their sprite sheets are not written yet (bench/map_speed.py)
TRAIN_SECONDS = (0.8, 0.65e-3, 0.6e-3)
SECONDS = "tv_emb_seconds"  # how long each map took to compute here, for its caption
GUESSES = "tv_emb_guesses"  # the estimate made when a map was first asked for, by request


@dataclass(frozen=True, eq=False)
class Source:
    """What the maps of one script run are made of."""

    run: Run
    data: object
    key: _gate.AnalysisKey
    an: object  # the stored analysis drawn (`analysis.Analysis`; maybe the subset)
    final: object  # the run's own analysis: the slider's last stop
    views: tuple[int, ...]  # the epochs whose analysis is stored (aligned maps when any)

    @property
    def aligned(self) -> bool:
        """Epoch views: every stop's map in the first view's frame."""
        return bool(self.views)

    @property
    def stop(self):
        return epochs.FINAL if self.key.epoch is None else self.key.epoch


def source(run: Run, data, key: _gate.AnalysisKey) -> Source:
    views = tuple(v.epoch for v in epochs.views(run, data) if v.analysed)
    final = _gate.final_analysis(run, data)
    return Source(run, data, key, _cache.analysis(key.folder), final, views)


@_cache.forgettable
@st.cache_resource(show_spinner=False, max_entries=16)
def _stored_map(
    key: tuple, views: tuple, method: str, dims: int, classes: tuple | None, _src: Source
):
    """(the map, how its coordinates were moved: `epochs.Alignment`) of the shown stop."""
    if _src.aligned:
        shown = _map_at(_src, method, dims, classes, None)
        return shown.embedding, shown.alignment
    emb = embed.cached_embedding(
        Path(key.run),
        _src.data,
        method,
        dims,
        device=_state.device(),
        classes=None if classes is None else list(classes),
        source=_cache.analysis(key.folder),
    )
    return emb, epochs.Alignment.identity(dims)


def _map_at(src: Source, method: str, dims: int, classes: tuple | None, progress):
    return epochs.map_at(
        src.run.path,
        src.data,
        src.stop,
        method,
        dims,
        final=src.final,
        classes=None if classes is None else list(classes),
        device=_state.device(),
        progress=progress,
    )


def is_stored(src: Source, method: str, dims: int, classes: tuple | None) -> bool:
    """Whether the map is stored (drawn at once) rather than still to compute."""
    wanted = classes and list(classes)
    if src.aligned:
        return epochs.maps_stored(
            src.run.path, src.data, src.stop, method, dims, final=src.final, classes=wanted
        )
    return embed.is_cached(src.run.path, src.data, method, dims, classes=wanted, source=src.an)


def the_map(src: Source, method: str, dims: int, classes: tuple | None):
    """(the map, its alignment, the method it was made with): the map asked for, else
    (a t-SNE or UMAP map still being computed in the background) the PCA map of the same
    images, under the background process's progress."""
    if not is_stored(src, method, dims, classes):
        if method != "pca":
            req = request(src, method, dims, classes)
            guesses = st.session_state.setdefault(GUESSES, {})
            if req.name not in guesses:  # before asking: asking may start a worker
                guesses[req.name] = estimate(src, method, dims, classes)
            now = work.request(req)  # started, or followed: never computed here
            if now.state != "done":
                _pending(req, now, method, guesses[req.name])
                return (*the_map(src, "pca", dims, classes)[:2], "pca")
            guesses.pop(req.name, None)
        else:
            _compute_here(src, method, dims, classes)
    return (*_stored_map(src.key, src.views, method, dims, classes, src), method)


def request(src: Source, method: str, dims: int, classes: tuple | None) -> work.Request:
    """The background work that makes this map (and, with epoch views, every stop's)."""
    return work.Request(
        "map",
        str(src.run.path),
        str(src.data.source),
        src.data.size,
        {
            "method": method,
            "dims": dims,
            "classes": None if classes is None else list(classes),
            "source": str(src.an.folder),
            "stop": src.stop if src.aligned else None,
        },
    )


def _compute_here(src: Source, method: str, dims: int, classes: tuple | None) -> None:
    """A PCA map (milliseconds: a product of the stored features), with its time noted."""
    start = time.perf_counter()
    if src.aligned:
        _map_at(src, method, dims, classes, None)
    else:
        embed.cached_embedding(
            src.run.path,
            src.data,
            method,
            dims,
            device=_state.device(),
            classes=classes and list(classes),
            source=src.an,
        )
    took = time.perf_counter() - start
    st.session_state.setdefault(SECONDS, {})[(src.key, method, dims, classes)] = took


def estimate(src: Source, method: str, dims: int, classes: tuple | None) -> float:
    """Seconds from asking for this t-SNE or UMAP map to seeing it (`map_speed`): one fit,
    or with epoch views one per stop whose map is not stored."""
    points = len(embed.select(src.an.outputs.labels, classes and list(classes)))
    fits = 1
    if src.aligned:
        stops = epochs.chain(src.run.path, src.data, src.stop, src.final)
        wanted = classes and list(classes)
        fits = sum(
            not embed.stored_in(
                where if isinstance(where, Path) else where.folder, method, dims, classes=wanted
            )
            for _, where in stops
        )
    worker = work.map_worker()  # one that will take it: no startup (and maybe compiled)
    return map_speed.estimate(method, dims, points, fits=max(fits, 1), worker=worker)


def _pending(req: work.Request, now, method: str, seconds: float) -> None:
    """What the page says while the map is computed: how far, how long, or why it stopped."""
    if now.state == "failed":
        st.error(
            f"The {METHODS[method]} map could not be computed: {plain(now.error)}",
            icon=":material/error:",
        )
        if st.button("Try again", icon=":material/replay:", key="tv_emb_retry"):
            work.retry(req)
            st.rerun()
        return
    st.info(
        f"The {METHODS[method]} map of these images is being computed in the background, "
        f"once for every visitor: {speed.duration(seconds)} here (as the last maps took on "
        "this machine). The PCA map is shown until it is "
        "ready.",
        icon=":material/hourglass_top:",
    )
    st.fragment(_follow, run_every=_queued.FOLLOW_EVERY)(req, seconds)


def _follow(req: work.Request, seconds: float) -> None:
    now = work.status(req)
    if not now.active:
        st.rerun(scope="app")
    described = _queued.describe(now)
    if now.state not in ("waiting", "running"):
        described = f"starting in the background (the map in {speed.duration(seconds)} in all)"
    with st.container(key=_queued.KEY):
        st.progress(now.fraction, text=f"The {METHODS[req.params['method']]} map: {described}")


def seconds(src: Source, method: str, dims: int, classes: tuple | None) -> float | None:
    """How long the map took to compute in this session (None: it was read)."""
    return st.session_state.get(SECONDS, {}).get((src.key, method, dims, classes))


@_cache.forgettable
@st.cache_resource(show_spinner="Placing the training images...", max_entries=8)
def _training_points(
    key: tuple,
    views: tuple,
    method: str,
    dims: int,
    classes: tuple | None,
    cached: tuple,
    _src: Source,
):
    wanted = [k for k in cached if classes is None or k in classes]
    feats, idx = train_features.features(_src.run.path, _src.data, wanted)
    coords = embed.place_many(
        _src.run.path,
        _src.data,
        method,
        dims,
        feats,
        None if classes is None else list(classes),
        source=_src.an,
    )
    return _stored_map(key, _src.views, method, dims, classes, _src)[1].apply(coords), idx


def training_points(src: Source, method: str, dims: int, classes: tuple | None, shown: bool):
    """The stored training features of the shown classes placed on the map, when `shown`
    and there are any: (coordinates, training image indices)."""
    # stored training features are the final weights': on an epoch's map they would mislead
    cached = tuple(train_features.cached_classes(src.run.path, src.data))
    if not shown or not cached or src.key.epoch is not None:
        return np.zeros((0, dims), np.float32), np.zeros(0, np.int64)
    return _training_points(src.key, src.views, method, dims, classes, cached, src)


def training_choice(src: Source, classes: tuple | None) -> bool:
    """The toggle that adds the stored training images of the shown classes to the map:
    off unless a visitor turns it on, with what it costs said on it (thousands of points to
    place, thumbnails to cut and a heavier chart to draw: `TRAIN_SECONDS`). None stored
    (or an epoch's map, whose features are not the final weights'): a toggle that cannot be
    turned on, saying where they come from."""
    if src.key.epoch is not None:
        return False
    cached = train_features.cached_classes(src.run.path, src.data)
    shown = [k for k in cached if classes is None or k in classes]
    idx = np.concatenate([src.data.train.of_class(k) for k in shown] or [np.zeros(0, int)])
    stored = len(idx)
    where = (
        "Training features are computed on the Confusion page (a pair's nearest training "
        'images: "Compute them") or by `tinyviz train-features RUN`.'
    )
    if not stored:
        st.toggle(
            "Training images too (none stored for these classes)",
            value=False,
            disabled=True,
            key="tv_emb_train_none",
            help=where,
        )
        return False
    labels = np.asarray(src.data.train.labels)[idx]
    sheets = sprites.stored(idx, labels, _map.SPRITES, f"{src.key.data_cache}|train")
    cost = speed.duration(training_seconds(stored, sheets))
    return st.toggle(
        f"Training images too: {stored:,} stored for these classes ({cost} more)",
        value=False,
        key="tv_emb_train",
        help="Open circles: the training images of the shown classes whose features are "
        f"stored, placed by their nearest validation images. {where}",
    )


def training_seconds(images: int, sheets: bool) -> float:
    """About how much longer the map takes with `images` training images, now: placed,
    the larger chart sent and drawn, and their thumbnails' sheets cut unless `sheets` are
    stored already (bench/map_speed.py measures it)."""
    fixed, per_image, per_thumbnail = TRAIN_SECONDS
    return fixed + images * (per_image + (0.0 if sheets else per_thumbnail))


def colours(run: Run, labels: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
    """(each class's colour group, the groups in legend order, their colours) for a map of
    the images of `labels`: by WordNet group over `charts.MANY` classes where the classes
    are WordNet's (20 colours cannot tell 200 apart), else a colour per class."""
    if len(np.unique(labels)) > charts.MANY and wordnet.covers(run.wnids):
        group_of = np.array(wordnet.groups(run.wnids))
        domain, palette = wordnet.palette(np.unique(group_of[labels]))
        return group_of, domain, palette
    return charts.class_colours(run.class_names, labels)


def layers(src: Source, coords, out, rows, training, group_of):
    """The map's points (`_map.Points`, validation then training) and their sprite sheets:
    the validation `rows` of `out` at `coords`, the `training` (coordinates, indices)."""
    data, key = src.data, src.key
    labels, images = out.labels[rows], out.image_index(rows)
    val_sprites = _map.sheets(f"{key.data_cache}|val", data.val.images, images, labels)
    points = [
        _map.Points(
            _map.VAL, coords, images, labels, out.preds[rows], group_of[labels], val_sprites.slots
        )
    ]
    sprite_info = {_map.VAL: val_sprites}
    train_coords, train_idx = training
    if len(train_idx):
        train_labels = np.asarray(data.train.labels)[train_idx]
        sheets = _map.sheets(f"{key.data_cache}|train", data.train.images, train_idx, train_labels)
        no_answer = np.full(len(train_idx), -1)
        points.append(
            _map.Points(
                _map.TRAIN,
                train_coords,
                train_idx,
                train_labels,
                no_answer,
                group_of[train_labels],
                sheets.slots,
            )
        )
        sprite_info[_map.TRAIN] = sheets
    return points, sprite_info


def caption(src: Source, method: str, dims: int, classes, points: int, training: int) -> str:
    """What the map shows, how it was made, and how to read it."""
    epoch, took = src.key.epoch, seconds(src, method, dims, classes)
    return (
        f"{METHODS[method]} of the penultimate features of all {points:,} validation "
        f"images ({'all classes' if classes is None else f'{len(classes)} classes'})"
        + (f" and {training:,} training images (open circles)" if training else "")
        + "; single model, no test-time augmentation"
        + (f", weights of epoch {epoch}" if epoch is not None else "")
        + ". Hover a point for its image, scroll to zoom"
        + (", draw a lasso or a box (top right) to see the images inside. " if dims == 2 else ". ")
        + (f"Computed in {took:.1f} s. " if took else "Read from the run folder's cache. ")
        + ("" if method == "pca" else "Distances between far-apart clusters mean little. ")
        + (
            "Each epoch's map is fitted on its own, then turned, scaled and shifted onto the "
            "previous epoch's (orthogonal Procrustes), so the points move between epochs "
            "rather than jump; axes have no units then."
            if src.aligned
            else ""
        )
        + (" Training images: on the final weights' map only." if epoch is not None else "")
    )


def selection(data, names, out, rows, train_idx, chosen: dict) -> None:
    """The images of a box or lasso selection (`_map.selected`), their classes counted."""
    labels, preds, images = out.labels[rows], out.preds[rows], out.image_index(rows)
    train_labels = np.asarray(data.train.labels)[train_idx]
    val_rows, train_rows = chosen.get(_map.VAL, []), chosen.get(_map.TRAIN, [])
    st.subheader(f"{len(val_rows) + len(train_rows):,} images selected")
    counts = pd.Series(
        np.concatenate([labels[val_rows], train_labels[train_rows]]).astype(int)
    ).value_counts()
    st.caption(
        "Classes: "
        + ", ".join(f"{plain(names[k])} {n}" for k, n in counts.head(8).items())
        + (f" and {len(counts) - 8} more" if len(counts) > 8 else "")
        + (f"; the first {SELECTED} shown" if len(val_rows) + len(train_rows) > SELECTED else "")
    )
    shown_val = val_rows[:SELECTED]
    shown_train = train_rows[: max(0, SELECTED - len(shown_val))]
    _images.image_grid(
        [data.val.images[int(images[r])] for r in shown_val]
        + [data.train.images[int(train_idx[r])] for r in shown_train],
        [("✓ " if preds[r] == labels[r] else "✗ ") + names[preds[r]] for r in shown_val]
        + [f"train: {names[train_labels[r]]}" for r in shown_train],
        per_row=10,
        px=96,
    )
