"""The Two models page's charts: how often the two agree, and the classes one wins."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd


def agreement(counts: np.ndarray, n: int) -> alt.LayerChart:
    """The 2 x 2 table of A right/wrong against B right/wrong (`counts`, of `n` images)."""
    cells = pd.DataFrame(
        [
            {"A": ra, "B": rb, "images": int(counts[i, j]), "share": counts[i, j] / max(n, 1)}
            for i, ra in enumerate(["A right", "A wrong"])
            for j, rb in enumerate(["B right", "B wrong"])
        ]
    )
    base = alt.Chart(cells).encode(
        x=alt.X("B:N", title=None, axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y("A:N", title=None),
    )
    return (
        base.mark_rect().encode(
            color=alt.Color("share:Q", scale=alt.Scale(scheme="greens"), legend=None),
            tooltip=["A", "B", "images", alt.Tooltip("share:Q", format=".1%")],
        )
        + base.mark_text(fontSize=16)
        .encode(
            text=alt.Text("label:N"),
            color=alt.condition("datum.share > 0.15", alt.value("white"), alt.value("#222")),
        )
        .transform_calculate(
            label="format(datum.images, ',') + ' (' + format(datum.share, '.0%') + ')'"
        )
    ).properties(height=220, title="Agreement")


def class_wins(rows: pd.DataFrame) -> alt.Chart:
    """A's and B's accuracy on each class of `rows` (columns class, model, accuracy), one
    small row of two bars per class, in the order given."""
    return (
        alt.Chart(rows)
        .mark_bar()
        .encode(
            x=alt.X("accuracy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("model:N", title=None, axis=None),
            row=alt.Row(
                "class:N",
                sort=list(dict.fromkeys(rows["class"])),
                header=alt.Header(labelAngle=0, labelAlign="left", title=None),
            ),
            color=alt.Color(
                "model:N",
                scale=alt.Scale(domain=["A", "B"], range=["#1f77b4", "#ff7f0e"]),
                legend=alt.Legend(orient="top", title=None),
            ),
            tooltip=["class", "model", alt.Tooltip("accuracy:Q", format=".0%")],
        )
        .properties(height=14, title="The classes where one model wins most")
    )
