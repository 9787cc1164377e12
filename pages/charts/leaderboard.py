"""The Models page's charts: the leaderboard's bars, training curves, snapshot ensembles and
random-search scatters, each from the rows `tinyviz.runs.leaderboard` gives."""

from __future__ import annotations

import altair as alt
import pandas as pd

WHO = {"ours": "#4c78a8", "imported": "#f58518", "published": "#bab0ac"}


def top1_bars(bars: pd.DataFrame) -> alt.Chart:
    """One bar per row (columns run, model, top1 as a fraction, measured_on, who: "ours",
    "imported" or "published"), best on top."""
    return (
        alt.Chart(bars)
        .mark_bar()
        .encode(
            x=alt.X("top1:Q", title="validation top-1", axis=alt.Axis(format="%")),
            y=alt.Y("run:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
            color=alt.Color(
                "who:N", title=None, scale=alt.Scale(domain=list(WHO), range=list(WHO.values()))
            ),
            tooltip=["run", "model", alt.Tooltip("top1:Q", format=".1%"), "measured_on"],
        )
        .properties(height=22 * len(bars) + 40)
    )


def training_curves(curves: pd.DataFrame, metric: str) -> alt.LayerChart:
    """`metric` ("top1" or "loss") per epoch, a colour per run, solid for the validation
    split and dashed for training (columns run, epoch, split and the metric)."""
    base = alt.Chart(curves).encode(
        x=alt.X("epoch:Q"),
        y=alt.Y(
            f"{metric}:Q",
            title="top-1 accuracy" if metric == "top1" else "loss",
            axis=alt.Axis(format="%" if metric == "top1" else ""),
        ),
        color=alt.Color("run:N"),
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


def ensemble_curves(ens: pd.DataFrame) -> alt.Chart:
    """Top-1 of each run's snapshot ensemble by its size (columns label, members, top1)."""
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
            color=alt.Color("label:N", title="run"),
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
