"""Models: every run as a leaderboard row beside the published figures; training curves."""

import altair as alt
import pandas as pd
import streamlit as st

from pages import _state, _widgets
from tinyviz.literature import cite
from tinyviz.runs import leaderboard
from tinyviz.runs.search import find_searches, trial_rows

_state.entry(__file__)

st.title("Models")
st.caption(
    "Every run found under `checkpoints/`, `runs/` and the folders added in the sidebar, "
    "beside the figures of five published reports on Tiny ImageNet. Validation set of Tiny "
    "ImageNet (10,000 images, 50 per class) unless a row says otherwise."
)

broken = _state.found().broken  # listed here too, each with why: never left out in silence
if broken:
    with st.expander(f"{len(broken)} run folder(s) cannot be used", icon=":material/report:"):
        st.dataframe(pd.DataFrame(leaderboard.broken_rows(broken)), hide_index=True)
runs = _widgets.require_runs()
groups = leaderboard.data_sets(runs)  # runs on different data sets do not compare
group = groups[0]
if len(groups) > 1:
    labels = [g.label for g in groups]
    picked = st.segmented_control(
        "Data set", labels, default=labels[0], required=True, key="tv_models_data"
    )
    group = groups[labels.index(picked)] if picked in labels else group
runs = list(group.runs)

ours = pd.DataFrame(leaderboard.rows(runs))
# the reports' figures are Tiny ImageNet's: beside your own data set's runs they would mislead
seeds = pd.DataFrame(leaderboard.seed_rows() if group.tiny_imagenet else [], columns=ours.columns)
best = ours.iloc[0]
c1, c2, c3, c4 = st.columns(4)
c1.metric("Runs", len(ours))
c2.metric("Best top-1 (single model)", f"{best.top1:.1%}", help=best.measured_on)
boosted = ours.dropna(subset=["best_top1"]).sort_values("best_top1", ascending=False)
if len(boosted):
    b = boosted.iloc[0]
    c3.metric("Best with TTA / ensemble", f"{b.best_top1:.1%}", help=f"{b.run}: {b.best_with}")
if group.tiny_imagenet:
    seed_best = seeds.dropna(subset=["top1"]).sort_values("top1", ascending=False).iloc[0]
    c4.metric(
        "Best published figure",
        f"{seed_best.top1:.1%}",
        help=f"{seed_best.run}. {seed_best.citation}",
    )
else:
    st.caption(
        f"{group.label}: the reports' published figures are Tiny ImageNet's, so they are not "
        "shown beside these runs."
    )
show_seeds = group.tiny_imagenet and st.toggle(
    "Show the reports' published figures in the table", value=True
)
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
PERCENT = ["top1", "top5", "best_top1"]
table[PERCENT] = table[PERCENT] * 100  # shown with one decimal everywhere: 78.7% beside 76.7%


def fits(column: str, floor: int = 80, cap: int = 2000) -> int:
    """A column's width in pixels that shows its longest text whole (the table scrolls
    sideways instead of cutting "measured with" off); at most `cap` (a cell's full text
    also shows on hover)."""
    longest = max([len(str(v)) for v in table[column].dropna()] + [len(column)])
    return min(cap, max(floor, 7 * longest + 28))


# What a figure is first (run, scores, with what), then the long notes and the details.
ORDER = [
    "run", "model", "source", "top1", "top5", "best_top1", "best_with", "loss", "measured_on",
    "params", "flops", "epochs", "train_minutes", "images_per_s", "hardware", "citation",
]  # fmt: skip


st.dataframe(
    table.drop(columns=["path"]),
    column_order=ORDER,
    hide_index=True,
    width="stretch",
    placeholder="–",
    height=min(36 * (len(table) + 1) + 2, 760),
    column_config={
        "run": st.column_config.TextColumn("run", width=fits("run")),
        "source": st.column_config.TextColumn(
            "from",
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
        "best_with": st.column_config.TextColumn("measured with", width=fits("best_with")),
        "measured_on": st.column_config.TextColumn(
            "top-1 measured on", width=fits("measured_on", cap=420)
        ),
        "hardware": st.column_config.TextColumn("hardware", help="blank: the report does not say"),
        "citation": st.column_config.TextColumn("source", width=fits("citation")),
        "params": st.column_config.NumberColumn("parameters", format="compact"),
        "flops": st.column_config.NumberColumn("FLOPs / image", format="compact"),
        "train_minutes": st.column_config.NumberColumn("training (min)", format="%.1f"),
        "images_per_s": st.column_config.NumberColumn("images/s", format="localized"),
    },
)

bars = table.dropna(subset=["top1"]).assign(
    who=lambda d: d.source.where(d.source == "ours", "published").mask(
        d.source.str.startswith("imported"), "imported"
    ),
    top1=lambda d: d.top1 / 100,
)
st.altair_chart(
    alt.Chart(bars)
    .mark_bar()
    .encode(
        x=alt.X("top1:Q", title="validation top-1", axis=alt.Axis(format="%")),
        y=alt.Y("run:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
        color=alt.Color(
            "who:N",
            title=None,
            scale=alt.Scale(
                domain=["ours", "imported", "published"], range=["#4c78a8", "#f58518", "#bab0ac"]
            ),
        ),
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
    st.altair_chart((lines + base.mark_circle(size=30, opacity=1)).interactive(), width="stretch")
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
            tooltip=["label", "members", alt.Tooltip("top1:Q", format=".1%")],
        ),
        width="stretch",
    )
    st.caption(
        f"As figure 6 of {cite('004')}: the K best epochs of one run (by validation top-1), "
        "their softmax probabilities averaged. Chosen and scored on the validation set."
    )
else:
    st.caption("No ensemble evaluated yet: `python -m tinyviz evaluate RUN --ensemble 8`.")

st.subheader("Random search")
searches = find_searches(_state.run_roots())
readable = [(folder, rec) for folder, rec in searches if not isinstance(rec, str)]
for folder, reason in searches:
    if isinstance(reason, str):
        st.caption(f":orange[{_widgets.plain(folder.name)}: {_widgets.plain(reason)}]")
if not readable:
    st.caption(
        "No search yet: `python -m tinyviz search --model logreg --epochs 1 --trials 8 "
        "--out runs/search-logreg` trains short runs with random learning rates and weight "
        f"decays, as {cite('002')} and {cite('004')} tuned theirs."
    )
else:
    labels = {
        str(f): f"{f.name} ({r.model}, {len(r.trials)} trials of {r.epochs} epoch"
        f"{'s' if r.epochs != 1 else ''})"
        for f, r in readable
    }
    chosen_search = st.selectbox("Search", list(labels), format_func=labels.get)
    record = dict((str(f), r) for f, r in readable)[chosen_search]
    trials = pd.DataFrame(trial_rows(record))
    if trials.empty:
        st.caption("No trial has finished yet.")
    else:
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
        st.altair_chart((points + best).properties(height=380), width="stretch")
        b = record.best
        limit = f"{record.train_limit:,} training images" if record.train_limit else "all images"
        st.caption(
            f"Each dot is one short run of {record.model} ({record.epochs} epoch"
            f"{'s' if record.epochs != 1 else ''}, {limit}), coloured by its best validation "
            "top-1; both axes are logarithmic, as the trials were drawn log-uniformly. "
            f"Ringed in red: the best, {b.val_top1:.1%} at learning rate {b.lr:.2g} and "
            f"weight decay {b.weight_decay:.2g}. As the scatter plot of {cite('002')}, on a "
            "reduced training set, to find a range worth a full run."
        )
