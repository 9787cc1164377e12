"""Embeddings: the validation set's penultimate features on a map (PCA, t-SNE, UMAP)."""

import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from pages import _cache, _familiar, _map, _state, _widgets
from tinyviz.demo.images import ImageError, load_upload
from tinyviz.explain import embed, epochs, train_features, wordnet
from tinyviz.literature import cite
from tinyviz.literature import names as report_names

_state.entry(__file__)

METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
TAKES = {
    "pca": "under a second",
    "tsne": "about 40 s for all 10,000 images, a few seconds for a few classes",
    "umap": "about 50 s for all images the first time, less after",
}
FIGURE_11_LABEL = f"{report_names('004')}'s figure 11"  # its seven classes
FIGURE_11 = [
    "convertible",
    "sports car",
    "plunger",
    "Egyptian cat",
    "Persian cat",
    "golden retriever",
    "bullet train",
]
NEIGHBOURS, SELECTED = 8, 60

data, run, out, key = _widgets.analysis_start(
    "Embeddings: how the model arranges the images",
    "Each dot is a validation image, placed by the features the model computes just before "
    "its answer: images it finds alike lie close together.",
)
an = _cache.analysis(key.folder)  # the stored analysis the maps are made of (maybe the subset)
names = run.class_names
WORDNET = wordnet.covers(run.wnids)  # Tiny ImageNet's classes; your own data set's are not
figure_11 = [names.index(n) for n in FIGURE_11 if n in names] if WORDNET else []
epoch = key.epoch  # the epoch slider's choice (None: the final weights)
final = _widgets.final_analysis(run, data)  # the run's own: the slider's last stop
# with epoch views, every stop's map is drawn in the first view's frame (aligned epoch by
# epoch), so that moving the slider moves the points instead of scattering them anew
ALIGNED = bool([v for v in epochs.views(run.path, data) if v.analysed])
STOP = epochs.FINAL if epoch is None else epoch


@st.cache_resource(show_spinner=False, max_entries=16)
def stored_map(key: tuple, method: str, dims: int, classes: tuple | None, _data):
    """(the map, how its coordinates were moved: `epochs.Alignment`) of the shown stop."""
    if ALIGNED:
        shown = map_at(method, dims, classes, None)
        return shown.embedding, shown.alignment
    emb = embed.cached_embedding(
        Path(key.run),
        _data,
        method,
        dims,
        device=_state.device(),
        classes=None if classes is None else list(classes),
        source=_cache.analysis(key.folder),
    )
    return emb, epochs.Alignment.identity(dims)


def map_at(method: str, dims: int, classes: tuple | None, progress):
    return epochs.map_at(
        run.path,
        data,
        STOP,
        method,
        dims,
        final=final,
        classes=None if classes is None else list(classes),
        device=_state.device(),
        progress=progress,
    )


def map_stored(method: str, dims: int, classes: tuple | None) -> bool:
    if ALIGNED:
        return epochs.maps_stored(
            run.path, data, STOP, method, dims, final=final, classes=classes and list(classes)
        )
    return embed.is_cached(
        run.path, data, method, dims, classes=classes and list(classes), source=an
    )


@st.cache_resource(show_spinner="Placing the training images...", max_entries=8)
def training_points(key: tuple, method: str, dims: int, classes: tuple | None, cached: tuple):
    """The stored training features of the shown classes, placed on the map."""
    wanted = [k for k in cached if classes is None or k in classes]
    feats, idx = train_features.features(run.path, data, wanted)
    coords = embed.place_many(
        run.path, data, method, dims, feats, None if classes is None else list(classes), source=an
    )
    return stored_map(key, method, dims, classes, data)[1].apply(coords), idx


@st.cache_data(show_spinner=False, max_entries=8)
def features_of(key: tuple, upload: bytes, _model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = load_upload(upload, size=data.size).rgb
    return (rgb, *embed.features_of_image(_model, rgb))


def the_map(method: str, dims: int, classes: tuple | None):
    if not map_stored(method, dims, classes):
        each = " each epoch's" if ALIGNED else ""
        report, clear = _widgets.analysis_progress(
            f"Computing{each} {METHODS[method]} map once (takes {TAKES[method]}; cached "
            "afterwards):"
        )
        start = time.perf_counter()
        if ALIGNED:
            map_at(method, dims, classes, report)
        else:
            embed.cached_embedding(
                run.path,
                data,
                method,
                dims,
                device=_state.device(),
                classes=classes and list(classes),
                progress=report,
                source=an,
            )
        clear()
        st.session_state.setdefault("tv_emb_seconds", {})[(key, method, dims, classes)] = (
            time.perf_counter() - start
        )
    return stored_map(key, method, dims, classes, data)


def set_classes(chosen: list[int]) -> None:
    st.session_state[f"tv_emb_classes_{len(names)}"] = chosen


cols = st.columns([2.2, 1.1, 1.5, 1.2], vertical_alignment="bottom")
method = cols[0].segmented_control(
    "Method",
    list(METHODS),
    format_func=METHODS.get,
    default="pca",
    required=True,
    key="tv_emb_method",
    persist_state="session",
)
dims = cols[1].segmented_control(
    "View",
    [2, 3],
    format_func=lambda d: f"{d}D",
    default=2,
    required=True,
    key="tv_emb_dims",
    persist_state="session",
)
st.session_state.setdefault(f"tv_emb_classes_{len(names)}", figure_11)
chosen = st.multiselect(
    "Classes",
    sorted(range(len(names)), key=lambda i: names[i].lower()),
    format_func=names.__getitem__,
    key=f"tv_emb_classes_{len(names)}",
    persist_state="session",
    placeholder=f"all {len(names)} classes",
)
if figure_11:  # only on Tiny ImageNet: another data set has not its classes
    cols[2].button(
        FIGURE_11_LABEL,
        on_click=set_classes,
        args=(figure_11,),
        width="stretch",
        help=f"The seven classes of figure 11 of {cite('004')}: convertible, sports car, "
        "plunger, Egyptian cat, Persian cat, golden retriever, bullet train",
    )
cols[3].button("All classes", on_click=set_classes, args=([],), width="stretch", key="tv_emb_all")
classes = tuple(sorted(chosen)) or None
emb, moved = the_map(method, dims, classes)
idx = emb.indices  # rows of the outputs: every point is drawn (WebGL)
axes = (
    [f"PC{i + 1} ({v:.1%} of variance)" for i, v in enumerate(emb.explained_variance)]
    if emb.explained_variance is not None and not ALIGNED
    else [f"{METHODS[method]} {i + 1}" for i in range(dims)]
)
labels, preds, images = out.labels[idx], out.preds[idx], out.image_index(idx)
# stored training features are the final weights': on an epoch's map they would mislead
cached = tuple(train_features.cached_classes(run.path, data)) if epoch is None else ()
train_coords, train_idx = (
    training_points(key, method, dims, classes, cached)
    if cached
    and st.toggle(
        "Training images too (where their features are stored)",
        value=True,
        key="tv_emb_train",
        help="Open circles: the training images of the classes whose features are stored "
        "(`tinyviz train-features RUN`, or the Confusion page's training neighbours).",
    )
    else (np.zeros((0, dims), np.float32), np.zeros(0, np.int64))
)
train_labels = np.asarray(data.train.labels)[train_idx]

map_col, side = st.columns([3, 1])
with side:
    upload = _widgets.image_uploader("Place your own image on the map", "tv_emb_upload")
    star = None
    if upload is not None:
        try:
            net = _cache.model(run, epoch=epoch)  # the shown epoch's weights place it
            rgb, feats, probs = features_of(key, upload.getvalue(), net)
        except ImageError as e:
            st.error(f"Cannot use this file: {_widgets.plain(str(e))}.")
        else:
            placed = embed.place(
                run.path, data, method, dims, feats, list(classes or []) or None, source=an
            )
            star = moved.apply(placed.coords)
            st.image(
                _widgets.enlarge(rgb, 160),
                caption=f"The model says: {names[int(probs[0].argmax())]} ({probs[0].max():.0%})",
            )
            st.caption(f"The star: {embed.HOW[placed.how]}.")
            if epoch is None:  # the final weights: those the calibration is of
                _familiar.note(_familiar.familiarity(run, rgb))


# ------------------------------------------------------------------ colour
# One piece: which colour each point gets, and the legend's order (issue 13's WordNet groups).
# more than 20 classes: colour by WordNet group (20 colours cannot tell 200 apart), where
# the classes are WordNet's; your own data set's classes each get a colour (repeating)
MANY = len(np.unique(labels)) > 20 and WORDNET


def colour(classes_of_points: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
    """(colour group name of each point, the groups in legend order, their colours)."""
    if MANY:
        group_of = np.array(wordnet.groups(run.wnids))
        domain, colours = wordnet.palette(np.unique(group_of[labels]))
        return group_of[classes_of_points], domain, colours
    domain = sorted({names[k] for k in labels})
    palette = px.colors.qualitative.T10 if len(domain) <= 10 else px.colors.qualitative.Alphabet
    return (
        np.array(names)[classes_of_points],
        domain,
        [palette[i % len(palette)] for i in range(len(domain))],
    )


# --------------------------------------------------------------------- the map
val_groups, domain, colours = colour(labels)
val_sprites = _map.sheets(f"{key.data_cache}|val", data.val.images, images, labels)
layers = [_map.Points(_map.VAL, emb.coords, images, labels, preds, val_groups, val_sprites.slots)]
sprite_info = {_map.VAL: val_sprites}
if len(train_idx):
    train_sprites = _map.sheets(
        f"{key.data_cache}|train", data.train.images, train_idx, train_labels
    )
    no_answer = np.full(len(train_idx), -1)
    train_groups = colour(train_labels)[0]
    layers.append(
        _map.Points(
            _map.TRAIN,
            train_coords,
            train_idx,
            train_labels,
            no_answer,
            train_groups,
            train_sprites.slots,
        )
    )
    sprite_info[_map.TRAIN] = train_sprites
with map_col:
    fig, traces = _map.figure(layers, domain, colours, axes, star=star, height=620)
    event = _map.draw(fig, dims, names, sprite_info)
    seconds = st.session_state.get("tv_emb_seconds", {}).get((key, method, dims, classes))
    st.caption(
        f"{METHODS[method]} of the penultimate features of all {len(emb.indices):,} validation "
        f"images ({'all classes' if classes is None else f'{len(classes)} classes'})"
        + (f" and {len(train_idx):,} training images (open circles)" if len(train_idx) else "")
        + "; single model, no test-time augmentation"
        + (f", weights of epoch {epoch}" if epoch is not None else "")
        + ". Hover a point for its image, scroll to zoom"
        + (", draw a lasso or a box (top right) to see the images inside. " if dims == 2 else ". ")
        + (f"Computed in {seconds:.1f} s. " if seconds else "Read from the run folder's cache. ")
        + ("" if method == "pca" else "Distances between far-apart clusters mean little. ")
        + (
            "Each epoch's map is fitted on its own, then turned, scaled and shifted onto the "
            "previous epoch's (orthogonal Procrustes), so the points move between epochs "
            "rather than jump; axes have no units then."
            if ALIGNED
            else ""
        )
        + (" Training images: on the final weights' map only." if epoch is not None else "")
    )

chosen_rows = _map.selected(event, traces) if dims == 2 else {}
if any(len(r) for r in chosen_rows.values()):
    val_rows, train_rows = chosen_rows.get(_map.VAL, []), chosen_rows.get(_map.TRAIN, [])
    st.subheader(f"{len(val_rows) + len(train_rows):,} images selected")
    counts = pd.Series(
        np.concatenate([labels[val_rows], train_labels[train_rows]]).astype(int)
    ).value_counts()
    st.caption(
        "Classes: "
        + ", ".join(f"{_widgets.plain(names[k])} {n}" for k, n in counts.head(8).items())
        + (f" and {len(counts) - 8} more" if len(counts) > 8 else "")
        + (f"; the first {SELECTED} shown" if len(val_rows) + len(train_rows) > SELECTED else "")
    )
    shown_val = val_rows[:SELECTED]
    shown_train = train_rows[: max(0, SELECTED - len(shown_val))]
    _widgets.image_grid(
        [data.val.images[int(images[r])] for r in shown_val]
        + [data.train.images[int(train_idx[r])] for r in shown_train],
        [("✓ " if preds[r] == labels[r] else "✗ ") + names[preds[r]] for r in shown_val]
        + [f"train: {names[train_labels[r]]}" for r in shown_train],
        per_row=10,
        px=96,
    )

if star is not None:
    near, dist = embed.neighbours(out.features, feats[0], k=NEIGHBOURS)
    st.subheader(f"The {NEIGHBOURS} validation images nearest to yours")
    _widgets.image_grid(
        data.val.images[out.image_index(near)],
        [f"{names[out.labels[i]]} ({d:.2f})" for i, d in zip(near, dist, strict=True)],
        per_row=NEIGHBOURS,
        px=112,
    )
    st.caption(
        "Nearest by cosine distance of the penultimate features (the number under "
        f"each image; 0 = same direction), among all {len(out):,} validation images."
    )
