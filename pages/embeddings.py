"""Embeddings: the validation set's penultimate features on a map (PCA, t-SNE, UMAP)."""

import numpy as np
import streamlit as st

from pages import _cache, _emb_map, _familiar, _gate, _images, _map, _state, _turns
from pages._text import plain
from tinyviz.demo.images import ImageError, load_upload
from tinyviz.explain import embed, wordnet
from tinyviz.literature import cite
from tinyviz.literature import names as report_names

_state.entry(__file__)

METHODS = _emb_map.METHODS
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
NEIGHBOURS = 8

data, run, out, key = _gate.analysis_start(
    "Embeddings: how the model arranges the images",
    "Each dot is a validation image, placed by the features the model computes just before "
    "its answer: images it finds alike lie close together.",
)
src = _emb_map.source(run, data, key)
an, epoch = src.an, key.epoch  # the drawn analysis (maybe the subset); the slider's epoch
names = run.class_names
WORDNET = wordnet.covers(run.wnids)  # Tiny ImageNet's classes; your own data set's are not
figure_11 = [names.index(n) for n in FIGURE_11 if n in names] if WORDNET else []


@st.cache_data(show_spinner=False, max_entries=8)
def features_of(key: tuple, upload: bytes, _model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = load_upload(upload, size=data.size).rgb
    return (rgb, *embed.features_of_image(_model, rgb))


def set_classes(chosen: list[int]) -> None:
    st.session_state[f"tv_emb_classes_{len(names)}"] = chosen


def controls() -> tuple[str, int, tuple | None]:
    """The method, the view and the classes: (method, dims, classes or None for all)."""
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
    cols[3].button(
        "All classes", on_click=set_classes, args=([],), width="stretch", key="tv_emb_all"
    )
    return method, dims, tuple(sorted(chosen)) or None


def placed(shown: str, dims: int, classes: tuple | None, moved):
    """The upload box, and the upload placed on the map: (its star's coordinates, its
    features), or (None, None)."""
    upload = _images.image_uploader("Place your own image on the map", "tv_emb_upload")
    if upload is None:
        return None, None
    try:
        net = _cache.model(run, epoch=epoch)  # the shown epoch's weights place it
        rgb, feats, probs = features_of(key, upload.getvalue(), net)
    except ImageError as e:
        st.error(f"Cannot use this file: {plain(str(e))}.")
        return None, None
    where = embed.place(run.path, data, shown, dims, feats, list(classes or []) or None, source=an)
    st.image(
        _images.enlarge(rgb, 160),
        caption=f"The model says: {names[int(probs[0].argmax())]} ({probs[0].max():.0%})",
    )
    st.caption(f"The star: {embed.HOW[where.how]}.")
    if epoch is None:  # the final weights: those the calibration is of
        _familiar.note(_familiar.familiarity(run, rgb))
    return moved.apply(where.coords), feats


def neighbours(feats) -> None:
    """The validation images nearest to the upload."""
    near, dist = embed.neighbours(out.features, feats[0], k=NEIGHBOURS)
    st.subheader(f"The {NEIGHBOURS} validation images nearest to yours")
    _images.image_grid(
        data.val.images[out.image_index(near)],
        [f"{names[out.labels[i]]} ({d:.2f})" for i, d in zip(near, dist, strict=True)],
        per_row=NEIGHBOURS,
        px=112,
    )
    st.caption(
        "Nearest by cosine distance of the penultimate features (the number under "
        f"each image; 0 = same direction), among all {len(out):,} validation images."
    )


@_turns.fragment("Embeddings")
def explored() -> None:
    """The choices, the map, the upload and the selection: all a click on this page
    changes. A fragment: such a click reruns and redraws this part alone, not the sidebar;
    and the map keeps its place and key (what the map's progress says is drawn in a place
    of its own above it), so a click that leaves the map as it was (another method while
    it is computed) does not draw it again (issue 19)."""
    method, dims, classes = controls()
    with st.container():  # one place, whatever it holds: the map below never moves
        emb, moved, shown = _emb_map.the_map(src, method, dims, classes)  # PCA until ready
    idx = emb.indices  # rows of the outputs: every point is drawn (WebGL)
    axes = (
        [f"PC{i + 1} ({v:.1%} of variance)" for i, v in enumerate(emb.explained_variance)]
        if emb.explained_variance is not None and not src.aligned
        else [f"{METHODS[shown]} {i + 1}" for i in range(dims)]
    )
    with_training = _emb_map.training_choice(src, classes)  # off unless asked: it costs
    train_coords, train_idx = _emb_map.training_points(src, shown, dims, classes, with_training)
    map_col, side = st.columns([3, 1])
    with side:
        star, feats = placed(shown, dims, classes, moved)
    group_of, domain, colours = _emb_map.colours(run, out.labels[idx])
    layers, sprite_info = _emb_map.layers(
        src, emb.coords, out, idx, (train_coords, train_idx), group_of
    )
    with map_col:
        fig, traces = _map.figure(layers, domain, colours, axes, star=star, height=620)
        event = _map.draw(fig, dims, names, sprite_info)
        st.caption(_emb_map.caption(src, shown, dims, classes, len(emb.indices), len(train_idx)))
    chosen_rows = _map.selected(event, traces) if dims == 2 else {}
    if any(len(r) for r in chosen_rows.values()):
        _emb_map.selection(data, names, out, idx, train_idx, chosen_rows)
    if star is not None:
        neighbours(feats)


explored()
