"""The Embeddings page's map: every point in WebGL, hover thumbnails, box and lasso selection.

plotly's `scattergl` (2D) and `scatter3d` (3D) draw 10,000 validation points, and the
100,000 training images where their features are stored, on the GPU of the visitor's
browser, through `st.plotly_chart`, which also hands back a box or lasso selection. A 2-D
map of a few hundred points (`SVG_POINTS`) is plain `scatter`, SVG, drawn at once. The
thumbnails are not in the chart: `tinyviz.explain.sprites` puts them on sprite sheets in
`static/sprites/` (served by Streamlit's static file serving, fetched by the browser once,
when first needed), and `_map_hover.js`, a tiny component, shows the hovered point's one.

Colours are the page's business (`colour` there): this module takes, per point, the name of
its colour group, and the groups' order and colours.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from pages import _cache
from tinyviz.explain import sprites

STATIC = Path(__file__).resolve().parents[1] / "static"
SPRITES = STATIC / "sprites"
URL = "app/static/sprites/"  # relative to the page, as Streamlit serves `static/`
VAL, TRAIN = 0, 1
CHART, HOVER = "tv_emb_map", "tv_emb_hover"
SCALE = 3  # thumbnails of 32 px shown at 96 px, square pixels
# Up to this many points a 2-D map is SVG: the browser's first WebGL plot costs a second on
# a small machine (and more where WebGL is drawn in software), while a few hundred SVG
# points draw at once; 10,000 points need WebGL to pan and hover smoothly.
SVG_POINTS = 1500

_hover = st.components.v2.component(
    "tinyviz.map_hover", js=(Path(__file__).with_name("_map_hover.js")).read_text()
)


@dataclass(frozen=True, eq=False)
class Points:
    """One split's points on the map."""

    split: int  # VAL or TRAIN
    coords: np.ndarray  # (N, dims)
    images: np.ndarray  # (N,) image indices in the split
    labels: np.ndarray  # (N,) true classes
    preds: np.ndarray  # (N,) the model's answers (-1 for training images)
    groups: np.ndarray  # (N,) colour group names
    slots: np.ndarray  # (N,) sprite slots


@_cache.forgettable
@st.cache_resource(show_spinner="Preparing the thumbnails...", max_entries=16)
def _sprites(tag: str, images: bytes, labels: bytes, _array) -> sprites.Sprites:
    idx, lab = np.frombuffer(images, np.int64), np.frombuffer(labels, np.int64)
    return sprites.build(_array, idx, lab, SPRITES, tag)


def sheets(tag: str, array: np.ndarray, images: np.ndarray, labels: np.ndarray):
    """The sprite sheets of these images (written once to static/sprites/, which is kept
    within `sprites.BUDGET`: sheets another map pushed out are written again)."""
    idx = np.ascontiguousarray(images, np.int64)
    lab = np.ascontiguousarray(labels, np.int64)
    found = _sprites(tag, idx.tobytes(), lab.tobytes(), array)
    if not all((SPRITES / f).exists() for f in found.files):
        return sprites.build(array, idx, lab, SPRITES, tag)  # the same names, written again
    for f in found.files:  # used now: the last to go
        with contextlib.suppress(OSError):
            (SPRITES / f).touch()
    return found


def figure(
    layers: list[Points],
    domain: list[str],
    colours: list[str],
    axes: list[str],
    *,
    star: np.ndarray | None = None,
    height: int = 620,
) -> tuple[go.Figure, list[tuple[int, np.ndarray]]]:
    """The map, one trace per (split, colour group); and for each trace (split, rows) so a
    selection's (curve, point) can be turned back into images."""
    dims = layers[0].coords.shape[1] if layers else 2
    points = sum(len(p.images) for p in layers)
    many = points > 3000
    scatter = (go.Scattergl if points > SVG_POINTS else go.Scatter) if dims == 2 else go.Scatter3d
    fig, traces = go.Figure(), []
    for layer in layers:
        train = layer.split == TRAIN
        custom = np.stack(
            [
                layer.slots,
                layer.labels,
                layer.preds,
                np.arange(len(layer.images)),
                np.full(len(layer.images), layer.split),
            ],
            1,
        ).astype(np.int32)
        for name, colour in zip(domain, colours, strict=True):
            rows = np.flatnonzero(layer.groups == name)
            if not len(rows):
                continue
            xyz = {a: layer.coords[rows, k] for k, a in enumerate("xyz"[:dims])}
            fig.add_trace(
                scatter(
                    **xyz,
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=not train or not any(p.split == VAL for p in layers),
                    marker=dict(
                        color=colour,
                        size=(3 if train else 4 if many else 6) if dims == 2 else 2 if many else 3,
                        opacity=0.35 if train else 0.8,
                        symbol="circle-open" if train and dims == 2 else "circle",
                    ),
                    customdata=custom[rows],
                    hoverinfo="none",
                )
            )
            traces.append((layer.split, rows))
    if star is not None:
        xyz = {a: star[:, k] for k, a in enumerate("xyz"[:dims])}
        fig.add_trace(
            scatter(
                **xyz,
                mode="markers",
                name="your image",
                marker=dict(
                    color="black",
                    size=18 if dims == 2 else 8,
                    symbol="diamond",
                    line=dict(color="white", width=2),
                ),
                hoverinfo="skip",
            )
        )
        traces.append((-1, np.zeros(len(star), np.int64)))
    titles = {
        f"{a}axis": dict(title=t, showticklabels=False) for a, t in zip("xyz", axes, strict=False)
    }
    if dims == 2:
        fig.update_layout(**titles, dragmode="lasso", hovermode="closest")
    else:
        fig.update_layout(scene=dict(**titles), hovermode="closest")
    fig.update_layout(
        height=height,
        margin=dict(l=0, r=0, t=10, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.07, itemsizing="constant", title_text=""),
        uirevision="keep",  # zoom and pan survive reruns
    )
    return fig, traces


def draw(fig: go.Figure, dims: int, names: list[str], sprite_info: dict[int, sprites.Sprites]):
    """The chart and its hover thumbnails; returns the selection event (2D only)."""
    _hover(
        data={
            "chart": CHART,
            "names": list(names),
            "scale": SCALE,
            "sprites": {
                str(split): {
                    "base": URL,
                    "files": list(s.files),
                    "tile": s.tile,
                    "per_row": s.per_row,
                    "per_sheet": s.per_sheet,
                }
                for split, s in sprite_info.items()
            },
        },
        key=HOVER,
    )
    if dims == 2:
        return st.plotly_chart(
            fig,
            key=CHART,
            on_select="rerun",
            selection_mode=("box", "lasso"),
            config={"scrollZoom": True, "displaylogo": False},
        )
    st.plotly_chart(fig, key=CHART, config={"displaylogo": False})
    return None


def selected(event, traces: list[tuple[int, np.ndarray]]) -> dict[int, np.ndarray]:
    """{split: rows of that split's `Points`} chosen by a box or lasso selection."""
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    chosen: dict[int, list[int]] = {VAL: [], TRAIN: []}
    for p in points:
        k, i = p.get("curve_number"), p.get("point_index", p.get("point_number"))
        if k is None or i is None or not 0 <= k < len(traces):
            continue
        split, rows = traces[k]
        if split in chosen and 0 <= i < len(rows):
            chosen[split].append(int(rows[i]))
    return {s: np.unique(np.array(r, np.int64)) for s, r in chosen.items()}
