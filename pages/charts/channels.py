"""The Channels page's charts: every channel of a layer by its mean peak response (click
one: a selection named `channel`), and the classes a channel's strongest images belong to."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd


def channel_bars(summary: np.ndarray, channel: int) -> alt.LayerChart:
    """Each channel's mean peak response (`summary`), most active first, `channel` marked."""
    rank = np.argsort(np.argsort(-summary, kind="stable"))  # 0 = the most active channel
    bars = pd.DataFrame(
        {
            "channel": np.arange(len(summary)),
            "mean": summary,
            "rank": rank,
            "end": rank + 1,
            "chosen": np.arange(len(summary)) == channel,
        }
    )
    base = alt.Chart(bars).encode(
        x=alt.X(
            "rank:Q",
            title="channels, most active first (click one)",
            axis=alt.Axis(labels=False, ticks=False, grid=False),
            scale=alt.Scale(domain=[0, len(bars)], nice=False),
        ),
        y=alt.Y("mean:Q", title="mean peak response"),
    )
    columns = (
        base.mark_rect()
        .encode(
            x2="end",
            y2=alt.datum(0),
            tooltip=["channel", alt.Tooltip("mean", format=".2f")],
            color=alt.condition("datum.chosen", alt.value("#ff7f0e"), alt.value("#4c78a8")),
        )
        .add_params(alt.selection_point(name="channel", fields=["channel"]))
    )
    marker = base.transform_filter("datum.chosen")
    return (
        columns
        + marker.mark_rule(color="#ff7f0e", strokeWidth=2)
        + marker.mark_text(dy=-10, color="#ff7f0e", fontWeight="bold").encode(
            text=alt.Text("channel:Q", format="d")
        )
    ).properties(height=230)


def preferred_classes(classes: list[str], of: int, top: int = 8) -> alt.Chart:
    """The `top` classes most frequent among `classes` (those of a channel's `of` strongest
    images), as bars."""
    counts = pd.Series(classes).value_counts().head(top).rename_axis("class")
    return (
        alt.Chart(counts.reset_index())
        .mark_bar(color="#ff7f0e")
        .encode(
            x=alt.X("count:Q", title=f"of its top {of} images"),
            y=alt.Y(
                "class:N", sort="-x", title=None, axis=alt.Axis(labelLimit=150, labelOverlap=False)
            ),
            tooltip=["class", "count"],
        )
        .properties(height=230, title="Classes it prefers")
    )
