"""Models: every run as a leaderboard row beside the seeds' figures; training curves."""

import altair as alt
import pandas as pd
import streamlit as st

from pages import _state, _widgets
from tinyviz import leaderboard

_state.entry(__file__)

st.title("Models")
st.caption(
    "Every run found under `checkpoints/`, `runs/` and the folders added in the sidebar, "
    "beside the figures the seed papers publish. Validation set of Tiny ImageNet "
    "(10,000 images, 50 per class) unless a row says otherwise."
)

runs = _widgets.require_runs()

ours = pd.DataFrame(leaderboard.rows(runs))
seeds = pd.DataFrame(leaderboard.seed_rows())
best = ours.iloc[0]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Runs", len(ours))
c2.metric("Best top-1 (single model)", f"{best.top1:.1%}", help=best.measured_on)
boosted = ours.dropna(subset=["best_top1"]).sort_values("best_top1", ascending=False)
if len(boosted):
    b = boosted.iloc[0]
    c3.metric("Best with TTA / ensemble", f"{b.best_top1:.1%}", help=f"{b.run}: {b.best_with}")
seed_best = seeds.dropna(subset=["top1"]).sort_values("top1", ascending=False).iloc[0]
c4.metric("Best seed figure", f"{seed_best.top1:.1%}", help=seed_best.run)

show_seeds = st.toggle("Show the seeds' published figures in the table", value=True)
table = pd.concat([ours, seeds]) if show_seeds else ours
table = table.sort_values("top1", ascending=False, na_position="last")
numeric = [
    "top1",
    "top5",
    "loss",
    "best_top1",
    "params",
    "flops",
    "epochs",
    "train_minutes",
    "images_per_s",
]
table[numeric] = table[numeric].astype(float)  # None -> NaN: shown as blank, not "None"
st.dataframe(
    table.drop(columns=["path"]),
    hide_index=True,
    width="stretch",
    placeholder="–",
    height=min(36 * (len(table) + 1) + 2, 760),
    column_config={
        "run": st.column_config.TextColumn("run", width="medium"),
        "top1": st.column_config.ProgressColumn(
            "top-1", format="percent", min_value=0, max_value=1
        ),
        "top5": st.column_config.NumberColumn("top-5", format="percent"),
        "loss": st.column_config.NumberColumn("loss", format="%.3f"),
        "best_top1": st.column_config.NumberColumn(
            "best top-1",
            format="percent",
            help="with test-time augmentation or a snapshot ensemble",
        ),
        "best_with": "measured with",
        "measured_on": st.column_config.TextColumn("top-1 measured on", width="medium"),
        "params": st.column_config.NumberColumn("parameters", format="compact"),
        "flops": st.column_config.NumberColumn("FLOPs / image", format="compact"),
        "train_minutes": st.column_config.NumberColumn("training (min)", format="%.1f"),
        "images_per_s": st.column_config.NumberColumn("images/s", format="localized"),
    },
)

bars = table.dropna(subset=["top1"]).assign(
    who=lambda d: d.source.where(d.source == "ours", "seed paper")
)
st.altair_chart(
    alt.Chart(bars)
    .mark_bar()
    .encode(
        x=alt.X("top1:Q", title="validation top-1", axis=alt.Axis(format="%")),
        y=alt.Y("run:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
        color=alt.Color("who:N", title=None, scale=alt.Scale(range=["#4c78a8", "#bab0ac"])),
        tooltip=["run", "model", alt.Tooltip("top1:Q", format=".1%"), "measured_on"],
    )
    .properties(height=22 * len(bars) + 40),
    width="stretch",
)

st.subheader("Training curves")
names = [r.name for r in runs]
chosen = st.multiselect("Runs", names, default=names[: min(3, len(names))], key="tv_curve_runs")
metric = st.radio(
    "Metric",
    ["top1", "loss"],
    horizontal=True,
    key="tv_curve_metric",
    format_func={"top1": "top-1 accuracy", "loss": "loss"}.get,
)
curves = pd.DataFrame(leaderboard.curves([r for r in runs if r.name in chosen]))
if len(curves):
    st.altair_chart(
        alt.Chart(curves)
        .mark_line(point=True)
        .encode(
            x=alt.X("epoch:Q"),
            y=alt.Y(
                f"{metric}:Q", title=metric, axis=alt.Axis(format="%" if metric == "top1" else "")
            ),
            color=alt.Color("run:N"),
            strokeDash=alt.StrokeDash(
                "split:N",
                title="split",
                scale=alt.Scale(domain=["val", "train"], range=[[1, 0], [5, 3]]),
            ),
            tooltip=["run", "epoch", "split", alt.Tooltip(f"{metric}:Q", format=".3f")],
        )
        .interactive(),
        width="stretch",
    )
    st.caption(
        "Solid: validation set after each epoch (single model, no TTA). Dashed: the "
        "running average over the epoch's augmented (and possibly mixed) training "
        "batches, which is why it can sit below validation."
    )

st.subheader("Snapshot ensembles")
ens = pd.DataFrame(leaderboard.ensemble_curves(runs))
if len(ens):
    st.altair_chart(
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
            tooltip=["label", "members", alt.Tooltip("top1:Q", format=".2%")],
        ),
        width="stretch",
    )
    st.caption(
        "As seed 004's figure 6: the K best epochs of one run (by validation top-1), "
        "their softmax probabilities averaged. Chosen and scored on the validation set."
    )
else:
    st.caption("No ensemble evaluated yet: `python -m tinyviz evaluate RUN --ensemble 8`.")
