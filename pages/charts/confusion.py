"""The Confusion page's charts: the whole matrix, a zoomed block with counts, and the best
and worst classes. Both matrices take clicks: a selection named `cell` of (t, p)."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from pages.charts.predictions import many_marks

TOOLTIP = ["true:N", "predicted:N", "count:Q", alt.Tooltip("rate:Q", format=".1%")]
# The scale starts at a visible light blue, so one image in a cell never looks like none:
# empty cells are white (with a thin grey edge in the zoomed block).
COLOUR = alt.Color(
    "rate:Q",
    scale=alt.Scale(type="sqrt", domain=[0, 1], scheme=alt.SchemeParams("blues", extent=[0.2, 1])),
    legend=alt.Legend(
        title="share of the true class (white: no image)",
        titleLimit=320,
        format="%",
        orient="bottom",
        gradientLength=220,
    ),
)
HIGHLIGHT = {"fill": None, "stroke": "#ff7f0e", "strokeWidth": 3}


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


def overview(cells: pd.DataFrame, c: int, block: tuple[int, int], shown: tuple[float, float]):
    """All `c` classes as one matrix of `cells`, the zoomed `block` (first, last position)
    framed in red, the `shown` cell (x, y positions) ringed in orange; on a canvas."""
    lo, hi = block
    matrix = (
        alt.Chart(cells)
        .mark_rect()
        .encode(
            x=alt.X(
                "x:Q",
                scale=alt.Scale(domain=[0, c], nice=False),
                axis=alt.Axis(labels=False, ticks=False, grid=False, title="predicted class"),
            ),
            x2="x2",
            y2="y2",
            color=COLOUR,
            tooltip=TOOLTIP,
            y=alt.Y(
                "y:Q",
                scale=alt.Scale(domain=[0, c], nice=False, reverse=True),
                axis=alt.Axis(labels=False, ticks=False, grid=False, title="true class"),
            ),
        )
        .add_params(alt.selection_point(name="cell", fields=["t", "p"]))
    )
    frame = (
        alt.Chart(pd.DataFrame({"a": [lo], "b": [hi + 1]}))
        .mark_rect(fill=None, stroke="#d62728", strokeWidth=2)
        .encode(x="a:Q", x2="b:Q", y="a:Q", y2="b:Q")
    )
    here = pd.DataFrame({"x": [shown[0] + 0.5], "y": [shown[1] + 0.5]})
    ring = (
        alt.Chart(here).mark_point(size=160, shape="square", **HIGHLIGHT).encode(x="x:Q", y="y:Q")
    )
    return many_marks((matrix + frame + ring).properties(height=440, title=f"All {c} classes"))


def block(
    matrix: np.ndarray, rates: np.ndarray, names, classes: np.ndarray, cell: tuple[int, int], title
):
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
    x = alt.X(
        "predicted:N",
        sort=order_names,
        scale=alt.Scale(domain=order_names),
        axis=alt.Axis(labelAngle=-45, labelLimit=140, labelOverlap=False, labelFontSize=11),
    )
    y = alt.Y(
        "true:N",
        sort=order_names,
        scale=alt.Scale(domain=order_names),
        axis=alt.Axis(labelLimit=140, labelOverlap=False, labelFontSize=11),
    )

    def counts(rows: pd.DataFrame, ink: str) -> alt.Chart:
        return alt.Chart(rows).mark_text(fontSize=9, color=ink).encode(x=x, y=y, text="count:Q")

    grid = (
        alt.Chart(every)
        .mark_rect(fill="transparent", stroke="#eeeeee", strokeWidth=0.5)
        .encode(x=x, y=y, tooltip=TOOLTIP)
        .add_params(alt.selection_point(name="cell", fields=["t", "p"]))
    )
    chosen = alt.Chart(every[(every.t == ct) & (every.p == cp)]).mark_rect(**HIGHLIGHT)
    layers = alt.layer(
        alt.Chart(full).mark_rect().encode(x=x, y=y, color=COLOUR.legend(None)),
        counts(full[~dark], "#333"),
        counts(full[dark], "white"),
        grid,
        chosen.encode(x=x, y=y),
    )
    return many_marks(layers.properties(height=max(300, 18 * len(classes) + 160), title=title))


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
