"""Charts of a model's answer: its top-5 as bars; the canvas setting of large charts."""

from __future__ import annotations

import altair as alt
import pandas as pd


def many_marks(chart):
    """`chart` drawn on a canvas, without per-mark ARIA descriptions. Streamlit picks the
    canvas only above 2,000 data points, so a confusion matrix of 1,500 cells was drawn as
    1,500 SVG nodes, and Vega-Lite builds each mark's spoken description with an
    interpreted expression: together a second of the browser's time on a small machine."""
    return chart.properties(usermeta={"embedOptions": {"renderer": "canvas"}}).configure_mark(
        aria=False
    )


def top5_chart(
    pred, full_names: dict[str, str] | None = None, *, true_class: int | None = None
) -> alt.Chart:
    """Horizontal bars of a `Prediction`, most probable on top; full names on hover.

    With `true_class`, its bar is green and the others grey (else the top bar is blue).
    """
    full_names = full_names or {}
    names = list(pred.names)
    pairs = list(zip(names, pred.wnids, strict=True))
    labels = [n if names.count(n) == 1 else f"{n} ({w})" for n, w in pairs]
    rows = pd.DataFrame(
        {
            "class": labels,
            "p": pred.probs,
            "wnid": pred.wnids,
            "rank": range(len(labels)),
            "full": [full_names.get(w, n) for n, w in pairs],
            "hit": [
                (c == true_class) if true_class is not None else i == 0
                for i, c in enumerate(pred.classes)
            ],
        }
    )
    y = alt.Y(
        "class:N",
        sort=labels,
        title=None,
        axis=alt.Axis(labelLimit=190, labelFontSize=13, ticks=False, domain=False),
    )
    x = alt.X("p:Q", title=None, scale=alt.Scale(domain=[0, 1]), axis=None)
    tip = [
        alt.Tooltip("full:N", title="class"),
        alt.Tooltip("wnid:N"),
        alt.Tooltip("p:Q", title="probability", format=".1%"),
    ]
    base = alt.Chart(rows).encode(y=y, x=x, tooltip=tip)
    hit = "#2e9d4a" if true_class is not None else "#1c6fd1"
    bars = base.mark_bar(cornerRadiusEnd=3, height=20).encode(
        color=alt.condition("datum.hit", alt.value(hit), alt.value("#a9b4c2"))
    )
    outside = (
        base.transform_filter("datum.p < 0.78")
        .mark_text(align="left", dx=4, fontSize=13)
        .encode(text=alt.Text("p:Q", format=".1%"))
    )
    inside = (
        base.transform_filter("datum.p >= 0.78")
        .mark_text(align="right", dx=-4, fontSize=13, color="white", fontWeight="bold")
        .encode(text=alt.Text("p:Q", format=".1%"))
    )
    return (
        (bars + outside + inside)
        .properties(height=28 * len(labels) + 8)
        .configure_view(stroke=None)
    )
