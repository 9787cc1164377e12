"""The Models page's charts: the leaderboard's bars, training curves, snapshot ensembles and
random-search scatters, each from the rows `tinyviz.runs.leaderboard` gives."""

from __future__ import annotations

import altair as alt
import pandas as pd

WHO = {"ours": "#4c78a8", "imported": "#f58518", "published": "#bab0ac"}
# Vega's "tableau10" then the lighter half of "tableau20": a run keeps its colour in every
# chart of the page (`run_colours`), the palette repeating past twenty runs.
PALETTE = [
    "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
    "#9d755d", "#bab0ac", "#9ecae9", "#ffbf79", "#ff9d98", "#88d27a", "#83bcb6", "#d6a5c9",
    "#fcbfd2", "#d8b5a5", "#f2cf5b", "#79706e",
]  # fmt: skip


def run_colours(runs: list[str]) -> alt.Scale:
    """One colour per run of the page, the same in every chart that draws runs (a chart
    colouring only its own runs would give a run another colour in the next chart)."""
    return alt.Scale(domain=list(runs), range=[PALETTE[i % len(PALETTE)] for i in range(len(runs))])


def top1_bars(bars: pd.DataFrame) -> alt.Chart:
    """One bar per row (columns run, model, top1 as a fraction, data, measured_on, who:
    "ours", "imported" or "published"), best on top."""
    return (
        alt.Chart(bars)
        .mark_bar()
        .encode(
            x=alt.X("top1:Q", title="validation top-1", axis=alt.Axis(format="%")),
            y=alt.Y("run:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
            color=alt.Color(
                "who:N", title=None, scale=alt.Scale(domain=list(WHO), range=list(WHO.values()))
            ),
            tooltip=[
                "run",
                "model",
                alt.Tooltip("top1:Q", format=".1%"),
                alt.Tooltip("data:N", title="data set"),
                "measured_on",
            ],
        )
        .properties(height=22 * len(bars) + 40)
    )


def _drawn(rows: pd.DataFrame) -> alt.Legend:
    """A legend of the runs this chart draws (its colour scale knows every run of the page)."""
    return alt.Legend(values=list(dict.fromkeys(rows["run"])), labelLimit=320)


def training_curves(
    curves: pd.DataFrame, metric: str, runs: list[str] | None = None
) -> alt.LayerChart:
    """`metric` ("top1" or "loss") per epoch, a colour per run (of `runs`, every run the
    page colours: `run_colours`), solid for the validation split and dashed for training
    (columns run, epoch, split and the metric). Top-1 runs from 0 to 100% whatever the
    curves reach, so a curve near 100% is not cut at the top."""
    runs = list(runs) if runs is not None else sorted(curves["run"].unique())
    base = alt.Chart(curves).encode(
        x=alt.X("epoch:Q"),
        y=alt.Y(
            f"{metric}:Q",
            title="top-1 accuracy" if metric == "top1" else "loss",
            axis=alt.Axis(format="%" if metric == "top1" else ""),
            scale=alt.Scale(domain=[0, 1], clamp=False) if metric == "top1" else alt.Scale(),
        ),
        color=alt.Color("run:N", scale=run_colours(runs), legend=_drawn(curves)),
        tooltip=["run", "epoch", "split", alt.Tooltip(f"{metric}:Q", format=".3f")],
    )
    # Lines and points as two layers: with mark_line(point=True) the split legend would
    # draw points, so train and val entries would look the same; here they are line samples.
    lines = base.mark_line().encode(
        strokeDash=alt.StrokeDash(
            "split:N",
            title="split",
            scale=alt.Scale(domain=["val", "train"], range=[[1, 0], [5, 3]]),
            legend=alt.Legend(
                symbolType="stroke",
                symbolStrokeColor="#555",  # a strokeDash legend has no colour of its own
                symbolStrokeWidth=2,
                symbolSize=500,
            ),
        )
    )
    return (lines + base.mark_circle(size=30, opacity=1)).interactive()


def ensemble_curves(ens: pd.DataFrame, runs: list[str] | None = None) -> alt.Chart:
    """Top-1 of each run's snapshot ensemble by its size (columns run, label, tta, members,
    top1), in the run's colour of the page (`run_colours` of `runs`), dashed with
    test-time augmentation."""
    runs = list(runs) if runs is not None else sorted(ens["run"].unique())
    ttas = ["none", *sorted(set(ens["tta"]) - {"none"})][:4]  # none: solid
    return (
        alt.Chart(ens)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "members:Q",
                title="snapshots in the ensemble (best first)",
                axis=alt.Axis(tickMinStep=1),
            ),
            y=alt.Y(
                "top1:Q",
                title="validation top-1",
                scale=alt.Scale(zero=False),
                axis=alt.Axis(format="%"),
            ),
            color=alt.Color("run:N", title="run", scale=run_colours(runs), legend=_drawn(ens)),
            strokeDash=alt.StrokeDash(
                "tta:N",
                title="test-time augmentation",
                scale=alt.Scale(
                    domain=ttas, range=[[1, 0]] + [[5, 3], [2, 2], [8, 2]][: len(ttas) - 1]
                ),
                legend=alt.Legend(symbolType="stroke", symbolStrokeColor="#555"),
            ),
            detail="label:N",
            tooltip=["label", "members", alt.Tooltip("top1:Q", format=".1%")],
        )
    )


def search_scatter(trials: pd.DataFrame) -> alt.LayerChart:
    """A random search's trials on log axes of learning rate and weight decay, coloured by
    their validation top-1, the best ringed in red (columns trial, lr, weight_decay,
    val_top1, run, best)."""
    base = alt.Chart(trials).encode(
        x=alt.X(
            "lr:Q",
            title="learning rate",
            scale=alt.Scale(type="log"),
            axis=alt.Axis(format="~g", tickCount=6),
        ),
        y=alt.Y(
            "weight_decay:Q",
            title="weight decay",
            scale=alt.Scale(type="log"),
            axis=alt.Axis(format=".0e", tickCount=6),
        ),
        tooltip=[
            "trial",
            alt.Tooltip("lr:Q", title="learning rate", format=".2e"),
            alt.Tooltip("weight_decay:Q", title="weight decay", format=".2e"),
            alt.Tooltip("val_top1:Q", title="validation top-1", format=".1%"),
            "run",
        ],
    )
    points = base.mark_circle(size=220, opacity=0.9, stroke="#333", strokeWidth=0.5).encode(
        color=alt.Color(
            "val_top1:Q",
            title="validation top-1",
            scale=alt.Scale(scheme="viridis"),
            legend=alt.Legend(format=".1%"),
        )
    )
    best = base.transform_filter("datum.best").mark_point(
        size=600, color="#d62728", strokeWidth=2.5
    )
    return (points + best).properties(height=380)
