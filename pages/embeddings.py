"""Embeddings: the validation set's penultimate features on a map (PCA, t-SNE, UMAP)."""

import time
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from pages import _cache, _state, _widgets
from tinyviz.demo.images import ImageError, load_upload
from tinyviz.explain import embed

_state.entry(__file__)

METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
TAKES = {
    "pca": "under a second",
    "tsne": "about 40 s for all 10,000 images, a few seconds for a few classes",
    "umap": "about 50 s for all images the first time, less after",
}
FIGURE_11 = [
    "convertible",
    "sports car",
    "plunger",
    "Egyptian cat",
    "Persian cat",
    "golden retriever",
    "bullet train",
]
MAX_POINTS, NEIGHBOURS = 3000, 8
STAR = (
    "M0,-1L0.235,-0.324L0.951,-0.309L0.38,0.124L0.588,0.809L0,0.4L-0.588,0.809L-0.38,0.124"
    "L-0.951,-0.309L-0.235,-0.324Z"
)  # Vega-Lite has no star shape: an SVG path

data, run, out, key = _widgets.analysis_start(
    "Embeddings: how the model arranges the images",
    "Each dot is a validation image, placed by the features the model computes just before "
    "its answer: images it finds alike lie close together.",
)
names = run.class_names
figure_11 = [names.index(n) for n in FIGURE_11 if n in names]
# Tooltip thumbnails are 32-64 px: show them larger, sharp (the tooltip is in the page's DOM).
st.html(
    "<style>#vg-tooltip-element img{width:128px;height:128px;image-rendering:pixelated}</style>"
)


@st.cache_resource(show_spinner=False, max_entries=16)
def stored_map(key: tuple, method: str, dims: int, classes: tuple | None, _data):
    return embed.cached_embedding(
        Path(key[0]),
        _data,
        method,
        dims,
        device=_state.device(),
        classes=None if classes is None else list(classes),
    )


@st.cache_data(show_spinner=False, max_entries=16)
def thumbnails(data_cache: str, idx: np.ndarray, size: int) -> list[str]:
    return embed.thumbnails(data.val.images, idx, size)


@st.cache_data(show_spinner=False, max_entries=8)
def features_of(key: tuple, upload: bytes, _model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb = load_upload(upload).rgb
    return (rgb, *embed.features_of_image(_model, rgb))


def the_map(method: str, dims: int, classes: tuple | None):
    if not embed.is_cached(run.path, data, method, dims, classes=classes and list(classes)):
        report, clear = _widgets.analysis_progress(
            f"Computing the {METHODS[method]} map once (takes {TAKES[method]}; cached afterwards):"
        )
        start = time.perf_counter()
        embed.cached_embedding(
            run.path,
            data,
            method,
            dims,
            device=_state.device(),
            classes=classes and list(classes),
            progress=report,
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
    placeholder=f"all {len(names)} classes (a sample of {MAX_POINTS:,} images)",
)
cols[2].button(
    "Seed 004's figure 11",
    on_click=set_classes,
    args=(figure_11,),
    disabled=not figure_11,
    width="stretch",
    help="convertible, sports car, plunger, Egyptian cat, Persian cat, "
    "golden retriever, bullet train",
)
cols[3].button("All classes", on_click=set_classes, args=([],), width="stretch", key="tv_emb_all")
classes = tuple(sorted(chosen)) or None
emb = the_map(method, dims, classes)
show = embed.sample_for_display(len(emb.indices), MAX_POINTS, labels=out.labels[emb.indices])
idx = emb.indices[show]
axes = (
    [f"PC{i + 1} ({v:.1%} of variance)" for i, v in enumerate(emb.explained_variance)]
    if emb.explained_variance is not None
    else [f"{METHODS[method]} {i + 1}" for i in range(dims)]
)
df = pd.DataFrame(emb.coords[show], columns=["x", "y", "z"][:dims]).assign(
    image=thumbnails(key[2], idx, 64 if len(idx) <= 1000 else 32),
    **{
        "class": np.take(names, out.labels[idx]),
        "predicted": [
            ("✓ " if p == t else "✗ ") + names[p]
            for p, t in zip(out.preds[idx], out.labels[idx], strict=True)
        ],
    },
)

map_col, side = st.columns([3, 1])
with side:
    upload = _widgets.image_uploader("Place your own image on the map", "tv_emb_upload")
    star = None
    if upload is not None:
        try:
            rgb, feats, probs = features_of(key, upload.getvalue(), _cache.model(run))
        except ImageError as e:
            st.error(f"Cannot use this file: {_widgets.plain(str(e))}.")
        else:
            placed = embed.place(run.path, data, method, dims, feats, list(classes or []) or None)
            star = pd.DataFrame(placed.coords, columns=["x", "y", "z"][:dims]).assign(
                **{"class": "your image", "predicted": names[int(probs[0].argmax())]}
            )
            st.image(
                _widgets.enlarge(rgb, 160),
                caption=f"The model says: {names[int(probs[0].argmax())]} ({probs[0].max():.0%})",
            )
            st.caption(f"The star: {embed.HOW[placed.how]}.")


def scatter(x: str, y: str, height: int) -> alt.Chart:
    many = df["class"].nunique() > 20
    points = (
        alt.Chart(df)
        .mark_circle(size=18 if len(df) > 1000 else 45, opacity=0.75)
        .encode(
            x=alt.X(f"{x}:Q", title=axes["xyz".index(x)], axis=alt.Axis(labels=False, ticks=False)),
            y=alt.Y(f"{y}:Q", title=axes["xyz".index(y)], axis=alt.Axis(labels=False, ticks=False)),
            color=alt.Color(
                "class:N",
                legend=None if many else alt.Legend(orient="bottom", columns=4, title=None),
                scale=alt.Scale(scheme="category20" if many else "tableau10"),
            ),
            tooltip=["image", "class", "predicted"],
        )
        .properties(height=height)
        .interactive()
    )
    if star is None:
        return points
    return points + alt.Chart(star).mark_point(
        shape=STAR, size=900, filled=True, color="black", opacity=1, stroke="white"
    ).encode(x=f"{x}:Q", y=f"{y}:Q", tooltip=["class", "predicted"])


with map_col:
    if dims == 2:
        st.altair_chart(scatter("x", "y", 560), key="tv_emb_chart")
    else:
        try:
            import plotly.express as px
        except ImportError:
            px = None
        if px is None:
            views = [("x", "y"), ("x", "z"), ("y", "z")]
            for col, (a, b) in zip(st.columns(3), views, strict=True):
                col.altair_chart(scatter(a, b, 360))
        else:
            both = pd.concat([df.drop(columns="image"), star]) if star is not None else df
            order = sorted(df["class"].unique())  # Altair's colour order, for the same colours
            fig = px.scatter_3d(
                both,
                "x",
                "y",
                "z",
                color="class",
                height=620,
                opacity=0.8,
                category_orders={"class": order + ["your image"]},
                color_discrete_sequence=(
                    px.colors.qualitative.T10
                    if len(order) <= 10
                    else px.colors.qualitative.Alphabet
                ),
                hover_data={"predicted": True, "x": False, "y": False, "z": False},
                labels={
                    a: t.replace(" of variance", "") for a, t in zip("xyz", axes, strict=False)
                },
            )
            fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), legend_title_text="")
            fig.update_traces(marker_size=3)
            fig.update_traces(
                marker=dict(size=12, symbol="diamond", color="black"),
                selector={"name": "your image"},
            )
            st.plotly_chart(fig, key="tv_emb_3d")
    seconds = st.session_state.get("tv_emb_seconds", {}).get((key, method, dims, classes))
    st.caption(
        f"{METHODS[method]} of the penultimate features of {len(emb.indices):,} validation "
        f"images ({'all classes' if classes is None else f'{len(classes)} classes'}), "
        f"{len(df):,} drawn; single model, no test-time augmentation. Hover a point for its "
        "image"
        + (" (2D view)" if dims == 3 else "")
        + ", scroll to zoom. "
        + (f"Computed in {seconds:.1f} s. " if seconds else "Read from the run folder's cache. ")
        + ("" if method == "pca" else "Distances between far-apart clusters mean little.")
    )

if star is not None:
    near, dist = embed.neighbours(out.features, feats[0], k=NEIGHBOURS)
    st.subheader(f"The {NEIGHBOURS} validation images nearest to yours")
    _widgets.image_grid(
        data.val.images[near],
        [f"{names[out.labels[i]]} ({d:.2f})" for i, d in zip(near, dist, strict=True)],
        per_row=NEIGHBOURS,
        px=112,
    )
    st.caption(
        "Nearest by cosine distance of the penultimate features (the number under "
        f"each image; 0 = same direction), among all {len(out):,} validation images."
    )
