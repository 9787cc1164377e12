"""The Confusion page's closing section: the best and worst classes, and every class's
accuracy in a sortable table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.charts import confusion as charts
from tinyviz.explain import confusion as confusions


def section(conf: confusions.Confusion, names: list[str], wnids: list[str], caption: str) -> None:
    """Bars of the best and worst classes beside the table of all (`caption`: what it was
    measured on)."""
    rows = pd.DataFrame(confusions.per_class_table(conf, names, wnids))
    half = min(len(conf.best), len(names) // 2)
    best_worst = pd.concat(
        [
            rows.loc[conf.best[:half]].assign(group="best"),
            rows.loc[conf.worst[:half]].assign(group="worst"),
        ]
    )
    chart_col, table_col = st.columns([2, 3])
    chart_col.altair_chart(charts.best_and_worst(best_worst, half))
    table_col.dataframe(
        rows.sort_values("accuracy"),
        hide_index=True,
        height=18 * len(best_worst) + 90,
        column_order=["name", "accuracy", "correct", "images", "confused_with", "confused_count"],
        column_config={
            "accuracy": st.column_config.ProgressColumn(
                "accuracy", format="percent", min_value=0, max_value=1
            ),
            "confused_with": "most often taken for",
            "confused_count": "times",
            "correct": "right",
            "name": "class",
        },
    )
    st.caption("Click a column header to sort. " + caption)
