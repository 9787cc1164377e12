"""The Confusion page's charts: the whole matrix, a zoomed block with counts, and the best
and worst classes. Both matrices take clicks: a selection named `cell` of (t, p)."""

from __future__ import annotations

import hashlib

import altair as alt
import numpy as np
import pandas as pd

TOOLTIP = [
    {"field": "true", "type": "nominal"},
    {"field": "predicted", "type": "nominal"},
    {"field": "count", "type": "quantitative"},
    {"field": "rate", "type": "quantitative", "format": ".1%"},
]
# The scale starts at a visible light blue, so one image in a cell never looks like none:
# empty cells are white (with a thin grey edge in the zoomed block).
SCALE = {"type": "sqrt", "domain": [0, 1], "scheme": {"name": "blues", "extent": [0.2, 1]}}
LEGEND = {"title": "share of the true class (white: no image)", "titleLimit": 320,
          "format": "%", "orient": "bottom", "gradientLength": 220}  # fmt: skip
HIGHLIGHT = {"fill": None, "stroke": "#ff7f0e", "strokeWidth": 3}
CELL = {"name": "cell", "select": {"type": "point", "fields": ["t", "p"]}}  # the clicks


def cells(matrix: np.ndarray, rates: np.ndarray, order: np.ndarray, names) -> pd.DataFrame:
    """The non-empty cells (at most one per image), placed by the class order."""
    pos = np.argsort(order)
    t, p = np.nonzero(matrix)
    return pd.DataFrame(
        {
            "t": t,
            "p": p,
            "x": pos[p],
            "y": pos[t],
            "true": np.take(names, t),
            "predicted": np.take(names, p),
            "count": matrix[t, p],
            "rate": rates[t, p],
        }
    ).assign(x2=lambda d: d.x + 1, y2=lambda d: d.y + 1)


def _spec(
    title: str,
    height: int,
    datasets: dict[str, pd.DataFrame],
    layers: list,
    fixed: dict[str, pd.DataFrame] | None = None,
) -> dict:
    """A layered Vega-Lite spec for `st.vega_lite_chart`, drawn on a canvas without a
    spoken description per mark (Streamlit picks the canvas only above 2,000 points, and
    Vega-Lite builds each mark's description with its interpreter: a second of a small
    machine's browser for 1,500 cells).

    Written as the dict it is, not built with Altair: drawn from Altair charts, the
    overview took 156 ms and the zoomed block 225 ms of every script run of Confusion,
    against 7 and 22 ms now (bench/chart_spec.py), on a server whose visitors share one
    interpreter. `datasets` are DataFrames, named by their content (Streamlit
    sends them as Arrow; a new name is new data to the browser); the layers' `data` name
    them by their keys here. `fixed` datasets keep their keys as names whatever their
    content (the shown cell's ring): a chart whose spec and dataset names are unchanged is
    not built again by the browser, which only swaps the rows that changed (a click on a
    cell moves the ring; rebuilding both matrices took most of the browser's work).
    tests/test_charts.py checks the result against Vega-Lite's schema."""
    named = {key: f"{key}-{_digest(frame)}" for key, frame in datasets.items()}
    named |= {key: key for key in fixed or {}}
    datasets = {**datasets, **(fixed or {})}
    for layer in layers:
        key = layer.get("data", {}).get("name")
        if key in named:
            layer["data"] = {"name": named[key]}
    return {
        "title": title,
        "height": height,
        "datasets": {named[k]: frame for k, frame in datasets.items()},
        "layer": layers,
        "usermeta": {"embedOptions": {"renderer": "canvas"}},
        "config": {"mark": {"aria": False}},
    }


def _digest(frame: pd.DataFrame) -> str:
    values = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.blake2b(values.tobytes() + str(list(frame)).encode(), digest_size=8).hexdigest()


def overview(cells: pd.DataFrame, c: int, block: tuple[int, int], shown: tuple[float, float]):
    """All `c` classes as one matrix of `cells`, the zoomed `block` (first, last position)
    framed in red, the `shown` cell (x, y positions) ringed in orange."""
    lo, hi = block

    def axis(title: str, **scale) -> dict:
        bare = {"labels": False, "ticks": False, "grid": False, "title": title}
        return {"type": "quantitative", "scale": {"domain": [0, c], "nice": False, **scale},
                "axis": bare}  # fmt: skip

    matrix = {
        "data": {"name": "cells"},
        "mark": {"type": "rect"},
        "params": [CELL],
        "encoding": {
            "x": {"field": "x", **axis("predicted class")},
            "x2": {"field": "x2"},
            "y": {"field": "y", **axis("true class", reverse=True)},
            "y2": {"field": "y2"},
            "color": {"field": "rate", "type": "quantitative", "scale": SCALE, "legend": LEGEND},
            "tooltip": TOOLTIP,
        },
    }
    quantity = {"type": "quantitative"}
    frame = {
        "data": {"values": [{"a": lo, "b": hi + 1}]},
        "mark": {"type": "rect", "fill": None, "stroke": "#d62728", "strokeWidth": 2},
        "encoding": {"x": {"field": "a", **quantity}, "x2": {"field": "b"},
                     "y": {"field": "a", **quantity}, "y2": {"field": "b"}},
    }  # fmt: skip
    ring = {
        "data": {"name": "shown"},
        "mark": {"type": "point", "size": 160, "shape": "square", **HIGHLIGHT},
        "encoding": {"x": {"field": "x", **quantity}, "y": {"field": "y", **quantity}},
    }
    at = pd.DataFrame({"x": [shown[0] + 0.5], "y": [shown[1] + 0.5]})
    return _spec(f"All {c} classes", 440, {"cells": cells}, [matrix, frame, ring], {"shown": at})


def block(
    matrix: np.ndarray, rates: np.ndarray, names, classes: np.ndarray, cell: tuple[int, int], title
) -> dict:
    """The zoomed block of `classes` with their counts, the shown `cell` (true, answered)
    ringed. Vega draws it with its expression interpreter, one evaluation per cell and
    encoding, so what only non-empty cells need (the colour scale, the count) is in layers
    of those cells alone (a few dozen), the text colour is chosen here (a layer each), and
    one transparent layer of every cell on top takes the clicks and the tooltip (a
    selection lives in one layer only)."""
    ct, cp = cell
    t, p = np.repeat(classes, len(classes)), np.tile(classes, len(classes))
    every = pd.DataFrame(
        {
            "t": t,
            "p": p,
            "true": np.take(names, t),
            "predicted": np.take(names, p),
            "count": matrix[t, p],
            "rate": rates[t, p],
        }
    )
    full = every[every["count"] > 0]
    dark = full["rate"] > 0.45  # white numbers on the dark cells
    order_names = [names[i] for i in classes]
    tick = {"labelLimit": 140, "labelOverlap": False, "labelFontSize": 11}
    at = {
        "x": {"field": "predicted", "type": "nominal", "sort": order_names,
              "scale": {"domain": order_names}, "axis": {"labelAngle": -45, **tick}},
        "y": {"field": "true", "type": "nominal", "sort": order_names,
              "scale": {"domain": order_names}, "axis": tick},
    }  # fmt: skip

    def counts(name: str, ink: str) -> dict:
        return {"data": {"name": name}, "mark": {"type": "text", "fontSize": 9, "color": ink},
                "encoding": {**at, "text": {"field": "count", "type": "quantitative"}}}  # fmt: skip

    colour = {"field": "rate", "type": "quantitative", "scale": SCALE, "legend": None}
    grid = {"type": "rect", "fill": "transparent", "stroke": "#eeeeee", "strokeWidth": 0.5}
    layers = [
        {"data": {"name": "full"}, "mark": {"type": "rect"}, "encoding": {**at, "color": colour}},
        counts("light", "#333"),
        counts("dark", "white"),
        {"data": {"name": "every"}, "mark": grid, "params": [CELL],
         "encoding": {**at, "tooltip": TOOLTIP}},
        {"data": {"name": "shown"}, "mark": {"type": "rect", **HIGHLIGHT}, "encoding": at},
    ]  # fmt: skip
    datasets = {"full": full, "light": full[~dark], "dark": full[dark], "every": every}
    shown = {"shown": every[(every.t == ct) & (every.p == cp)]}
    return _spec(title, max(300, 18 * len(classes) + 160), datasets, layers, shown)


def best_and_worst(rows: pd.DataFrame, half: int) -> alt.Chart:
    """Bars of the per-class accuracy of `rows` (columns name, accuracy, confused_with and
    group: "best" or "worst"), green and red."""
    return (
        alt.Chart(rows)
        .mark_bar()
        .encode(
            x=alt.X("accuracy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            y=alt.Y(
                "name:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=170)
            ),
            tooltip=["name", alt.Tooltip("accuracy", format=".0%"), "confused_with"],
            color=alt.Color(
                "group:N",
                scale=alt.Scale(domain=["best", "worst"], range=["#2ca02c", "#d62728"]),
                title=None,
            ),
        )
        .properties(height=18 * len(rows) + 90, title=f"The {half} best and {half} worst classes")
    )
