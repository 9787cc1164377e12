"""The Saliency page's trust charts: the sanity cascade and the deletion and insertion
curves, from the long tables `pages/_sanity.py` builds of a `sanity.TrustReport`; and the
small card under each map, an image (`card_png`).

A chart with its legend below its plot keeps its height for the plot (`FIT_WIDTH`):
Streamlit fits a chart's whole drawing, legend and axis titles too, into the given height
by default, which squeezed the curves flat under a legend of seven methods.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import altair as alt
import pandas as pd

RANDOM = "random order"  # the baseline curve's method name
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#9d755d", "#72b7b2")
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")  # height: the plot's own


def cascade(rows: pd.DataFrame, stages: list[str], *, height: int) -> alt.Chart:
    """The rank correlation of each method's map with its original (`rho`) at each step
    of the randomization (`random down to`, in the order of `stages`), each method in the
    colour it has on the faithfulness charts (its place in `rows`)."""
    x = alt.X(
        "random down to:N",
        sort=stages,
        title="weights randomized down to (top layer first)",
        axis=alt.Axis(labelAngle=-35, labelLimit=150, labelOverlap=False),
    )
    title = "similarity to the original map (ρ)"
    y = alt.Y("rho:Q", scale=alt.Scale(domain=[-0.2, 1]), title=title)
    methods = list(dict.fromkeys(rows.method))  # the same colour as on `faithfulness`
    colour = alt.Color(
        "method:N",
        sort=methods,
        scale=alt.Scale(
            domain=methods, range=[PALETTE[i % len(PALETTE)] for i in range(len(methods))]
        ),
        legend=alt.Legend(orient="right"),
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


DELETION, INSERTION = "#e45756", "#4c78a8"  # as on the page's legends
RHO = "#31333f"  # the card's ρ line: dark, apart from the red and blue curves below it


def card_png(
    rho: Sequence[float],
    curves: tuple[Sequence[float], Sequence[float]],
    random: tuple[Sequence[float], Sequence[float]],
) -> bytes:
    """Under one method's map: its ρ at each step of the cascade (top, dark), and its
    deletion (red) and insertion (blue) `curves` with the `random` order's dashed and
    faint (bottom); a PNG, 2x for sharp screens.

    An image, not two Vega charts: six maps brought twelve charts, about 0.8 s of a
    visitor's browser at every visit of the page (a probe of one visitor without them),
    while the card only sums up what the section below shows with its tooltips. Drawn with
    matplotlib's object interface (no pyplot state): script threads draw side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.0, 1.5), dpi=200)
    top, bottom = fig.subplots(2, 1, gridspec_kw={"hspace": 0.45})
    top.plot(range(len(rho)), rho, color=RHO, marker="o", markersize=2.5, linewidth=1.2)
    top.set_ylim(-0.2, 1.05)
    for (deleted, put_back), dashed in ((curves, False), (random, True)):
        for values, ink in ((deleted, DELETION), (put_back, INSERTION)):
            x = [k / max(len(values) - 1, 1) for k in range(len(values))]
            style = {"linestyle": (0, (3, 3)), "alpha": 0.5} if dashed else {}
            bottom.plot(x, values, color=ink, linewidth=1.2, **style)
    bottom.set_ylim(0, 1.05)
    for ax in (top, bottom):
        ax.set_yticks([0, 1])
        ax.set_xticks([])
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.tick_params(labelsize=6, length=0, colors="#555555")
        ax.spines[:].set_visible(False)
    titles = ("ρ as layers are randomized →", "pixels deleted / put back →")
    for ax, says in zip((top, bottom), titles, strict=True):
        ax.set_title(says, loc="left", fontsize=5.5, color="#808495", pad=2)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.92, bottom=0.03)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
