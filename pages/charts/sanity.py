"""The Saliency page's trust charts: the sanity cascade and the deletion and insertion
curves, from the long tables `pages/_sanity.py` builds of a `sanity.TrustReport`.

A chart with its legend below its plot keeps its height for the plot (`FIT_WIDTH`):
Streamlit fits a chart's whole drawing, legend and axis titles too, into the given height
by default, which squeezed the curves flat under a legend of seven methods.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

RANDOM = "random order"  # the baseline curve's method name
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#9d755d", "#72b7b2")
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")  # height: the plot's own


def cascade(rows: pd.DataFrame, stages: list[str], *, height: int, axis: bool) -> alt.Chart:
    """The rank correlation of each method's map with its original (`rho`) at each step
    of the randomization (`random down to`, in the order of `stages`), each method in the
    colour it has on the faithfulness charts (its place in `rows`); `axis`: the full chart
    with titles and a legend, else the small one under a map."""
    x = alt.X(
        "random down to:N",
        sort=stages,
        title="weights randomized down to (top layer first)" if axis else None,
        axis=alt.Axis(labelAngle=-35, labelLimit=150, labelOverlap=False) if axis else None,
    )
    y = alt.Y(
        "rho:Q",
        scale=alt.Scale(domain=[-0.2, 1]),
        title="similarity to the original map (ρ)" if axis else None,
        axis=alt.Axis() if axis else alt.Axis(values=[0, 1], title=None, grid=True),
    )
    methods = list(dict.fromkeys(rows.method))  # the same colour as on `faithfulness`
    colour = alt.Color(
        "method:N",
        sort=methods,
        scale=alt.Scale(
            domain=methods, range=[PALETTE[i % len(PALETTE)] for i in range(len(methods))]
        ),
        legend=alt.Legend(orient="right") if axis else None,
    )
    tips = ["method", "random down to", alt.Tooltip("rho:Q", format=".2f")]
    base = alt.Chart(rows).encode(x=x, y=y, color=colour, tooltip=tips)
    chart = base.mark_line() + base.mark_point(size=25, filled=True)
    return chart.properties(height=height, autosize=FIT_WIDTH)


def faithfulness(rows: pd.DataFrame, curve: str, height: int = 220) -> alt.Chart:
    """One curve ("deletion" or "insertion") of every method: the probability of the class
    against the share of pixels deleted (or put back), most salient first; each method in
    its own colour on both charts, its area in the legend (`label`); the random order
    dashed grey. `rows`: method, curve, label, area, fraction, p."""
    part = rows[rows.curve == curve]
    labels = list(dict.fromkeys(part.label))
    methods = list(dict.fromkeys(part.method))
    colours = [
        "#9e9e9e" if m == RANDOM else PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)
    ]
    return (
        alt.Chart(part)
        .mark_line(point=alt.OverlayMarkDef(size=14))
        .encode(
            x=alt.X(
                "fraction:Q",
                title=f"share of pixels {'blurred' if curve == 'deletion' else 'put back'}, "
                "most salient first",
                axis=alt.Axis(format="%"),
            ),
            y=alt.Y("p:Q", title="probability of the class", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "label:N",
                sort=labels,
                scale=alt.Scale(domain=labels, range=colours),
                legend=alt.Legend(
                    title=f"{curve} (area)", orient="bottom", columns=2, labelLimit=260
                ),
            ),
            strokeDash=alt.condition(
                alt.datum.method == RANDOM, alt.value([4, 3]), alt.value([1, 0])
            ),
            tooltip=[
                "method:N",
                alt.Tooltip("fraction:Q", format=".0%", title="pixels"),
                alt.Tooltip("p:Q", format=".2f", title="probability"),
                alt.Tooltip("area:Q", format=".3f"),
            ],
        )
        .properties(height=height, autosize=FIT_WIDTH)
    )


def faithfulness_small(rows: pd.DataFrame) -> alt.Chart:
    """Under one method's map: its deletion (red) and insertion (blue) curves, the random
    order's dashed and faint. `rows` as for `faithfulness`, plus `which` (the line's name)."""
    return (
        alt.Chart(rows)
        .mark_line()
        .encode(
            x=alt.X("fraction:Q", axis=None),
            y=alt.Y(
                "p:Q",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(values=[0, 1], title=None, grid=True),
            ),
            color=alt.Color(
                "curve:N",
                scale=alt.Scale(domain=["deletion", "insertion"], range=["#e45756", "#4c78a8"]),
                legend=None,
            ),
            strokeDash=alt.condition(
                alt.datum.method == RANDOM, alt.value([3, 3]), alt.value([1, 0])
            ),
            opacity=alt.condition(alt.datum.method == RANDOM, alt.value(0.5), alt.value(1.0)),
            detail="which:N",
            tooltip=[
                "which:N",
                alt.Tooltip("fraction:Q", format=".0%", title="pixels"),
                alt.Tooltip("p:Q", format=".2f", title="probability"),
                alt.Tooltip("area:Q", format=".3f"),
            ],
        )
        .properties(height=60, autosize=FIT_WIDTH)
    )
