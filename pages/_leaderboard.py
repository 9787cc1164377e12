"""The Models page's leaderboard table: every run and published figure, each column as wide as
its longest text, scores as percentages with one decimal."""

from __future__ import annotations

import pandas as pd
import streamlit as st

NUMERIC = [
    "top1", "top5", "loss", "best_top1", "params", "flops", "epochs", "train_minutes",
    "images_per_s",
]  # fmt: skip
PERCENT = ["top1", "top5", "best_top1"]
# What a figure is first (run, its scores, what and whose), then the long notes and details:
# the scores in the first screen's width, whatever the length of a report's title.
ORDER = [
    "run", "top1", "top5", "model", "source", "best_top1", "best_with", "loss", "measured_on",
    "params", "flops", "epochs", "train_minutes", "images_per_s", "hardware", "citation",
]  # fmt: skip


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Draw the leaderboard of `rows` (`leaderboard.rows` and `seed_rows`); returns them as
    drawn (numbers as floats, scores in percent)."""
    table = rows.copy()
    table[NUMERIC] = table[NUMERIC].astype(float)  # None -> NaN: shown as blank, not "None"
    table[PERCENT] = table[PERCENT] * 100  # one decimal everywhere: 78.7% beside 76.7%
    st.dataframe(
        table.drop(columns=["path"]),
        column_order=ORDER,
        hide_index=True,
        width="stretch",
        placeholder="–",
        height=min(36 * (len(table) + 1) + 2, 760),
        column_config={
            "run": st.column_config.TextColumn("run", width=fits(table, "run", "run", cap=340)),
            "model": st.column_config.TextColumn(
                "model", width=fits(table, "model", "model", cap=240)
            ),
            "source": st.column_config.TextColumn(  # a report's title and author: whole
                "from",
                width=fits(table, "source", "from", cap=400),
                help="ours, imported from a file (tinyviz import), or the report that published it",
            ),
            "top1": st.column_config.ProgressColumn(
                "top-1", format="%.1f%%", min_value=0, max_value=100
            ),
            "top5": st.column_config.NumberColumn("top-5", format="%.1f%%"),
            "loss": st.column_config.NumberColumn("loss", format="%.3f"),
            "best_top1": st.column_config.NumberColumn(
                "best top-1",
                format="%.1f%%",
                help="with test-time augmentation or a snapshot ensemble",
            ),
            "best_with": st.column_config.TextColumn(
                "measured with", width=fits(table, "best_with", "measured with")
            ),
            "measured_on": st.column_config.TextColumn(
                "top-1 measured on", width=fits(table, "measured_on", "top-1 measured on", cap=420)
            ),
            "hardware": st.column_config.TextColumn(
                "hardware", help="blank: the report does not say"
            ),
            "citation": st.column_config.TextColumn(
                "source", width=fits(table, "citation", "source")
            ),
            "params": st.column_config.NumberColumn("parameters", format="compact"),
            "flops": st.column_config.NumberColumn("FLOPs / image", format="compact"),
            "train_minutes": st.column_config.NumberColumn("training (min)", format="%.1f"),
            "images_per_s": st.column_config.NumberColumn("images/s", format="localized"),
        },
    )

    return table


def fits(table: pd.DataFrame, column: str, header: str, floor: int = 80, cap: int = 2000) -> int:
    """A column's width in pixels that shows its longest text and its `header` whole (the
    table scrolls sideways instead of cutting "measured with" off); at most `cap` (a cell's
    full text also shows on hover). A header is bold and has the sort arrow beside it."""
    longest = max([len(str(v)) for v in table[column].dropna()] + [0])
    return min(cap, max(floor, 7 * longest + 28, 8 * len(header) + 44))
