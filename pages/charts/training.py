"""The Train page's live curves: top-1 and loss per epoch, training against validation."""

from __future__ import annotations

import altair as alt
import pandas as pd

SPLITS = alt.Scale(domain=["train", "val"], range=["#f58518", "#1c6fd1"])


def epoch_curves(rows: list[dict], epochs: int) -> dict[str, alt.Chart]:
    """{"top1": chart, "loss": chart} of a run's epoch rows (`EpochMetrics` as dicts: epoch,
    train_top1, val_top1, train_loss, val_loss), on an axis of `epochs` epochs."""
    long = pd.DataFrame(rows).melt("epoch", ["train_top1", "val_top1", "train_loss", "val_loss"])
    long["split"] = long.variable.str.split("_").str[0]
    axis = alt.Scale(domain=[1, max(2, int(epochs or len(rows)))])
    return {
        what: alt.Chart(long[long.variable.str.endswith(what)])
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q", scale=axis, axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y(
                "value:Q",
                title="top-1 accuracy" if what == "top1" else "loss",
                axis=alt.Axis(format=fmt),
            ),
            color=alt.Color("split:N", title=None, scale=SPLITS),
            tooltip=["epoch", "split", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=220)
        for what, fmt in (("top1", ".0%"), ("loss", ".2f"))
    }
