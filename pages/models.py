"""Models: every run as a leaderboard row beside the published figures; training curves."""

import pandas as pd
import streamlit as st

from pages import _leaderboard, _runs, _state
from pages._text import file_name, plain
from pages.charts import leaderboard as charts
from tinyviz.io import shown_name
from tinyviz.literature import cite
from tinyviz.runs import leaderboard
from tinyviz.runs.imported import describe as describe_import
from tinyviz.runs.search import find_searches, trial_rows

_state.entry(__file__)

st.title("Models")
st.caption(
    "Every run found under `checkpoints/`, `runs/` and the folders added in the sidebar, "
    "beside the figures of five published reports on Tiny ImageNet."
)

broken = _state.found().broken  # listed here too, each with why: never left out in silence
if broken:
    with st.expander(f"{len(broken)} run folder(s) cannot be used", icon=":material/report:"):
        st.dataframe(pd.DataFrame(leaderboard.broken_rows(broken)), hide_index=True)
runs = _runs.require_runs()
groups = leaderboard.data_sets(runs)  # runs on different data sets do not compare
group = groups[0]
if len(groups) > 1:
    labels = [g.label for g in groups]
    picked = st.segmented_control(
        "Data set", labels, default=labels[0], required=True, key="tv_models_data"
    )
    group = groups[labels.index(picked)] if picked in labels else group
runs = list(group.runs)
if group.tiny_imagenet:
    st.caption(
        "Validation set of Tiny ImageNet (10,000 images, 50 per class) unless a row says otherwise."
    )

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
        f"{group.label}: its own validation images, unless a row says otherwise; the "
        "reports' published figures are Tiny ImageNet's, so they are not shown beside these "
        "runs."
    )
show_seeds = group.tiny_imagenet and st.toggle(
    "Show the reports' published figures in the table", value=True
)
table = pd.concat([ours, seeds]) if show_seeds else ours
table = table.sort_values("top1", ascending=False, na_position="last")
table = _leaderboard.table(table)

bars = table.dropna(subset=["top1"]).assign(
    who=lambda d: d.source.where(d.source == "ours", "published").mask(
        d.source.str.startswith("imported"), "imported"
    ),
    top1=lambda d: d.top1 / 100,
)
st.altair_chart(charts.top1_bars(bars), width="stretch")

imported = [r for r in runs if r.imported is not None]
if imported:
    with st.expander(f"How the {len(imported)} imported run(s) read the images"):
        for r in imported:
            st.text(f"{shown_name(r.name)}: {describe_import(r.imported)}")

st.subheader("Training curves")
colour_runs = [r.name for r in runs]  # a run's colour, the same in both charts below
names = [r.name for r in runs if r.imported is None]  # imported runs trained elsewhere
if imported:
    st.caption(
        f"{', '.join(file_name(r.name) for r in imported)}: trained elsewhere, so no curves here."
    )
chosen = names and st.multiselect(
    "Runs", names, default=names[: min(3, len(names))], key=f"tv_curve_runs_{group.label}"
)
metric = names and st.radio(
    "Metric",
    ["top1", "loss"],
    horizontal=True,
    key="tv_curve_metric",
    format_func={"top1": "top-1 accuracy", "loss": "loss"}.get,
)
curves = pd.DataFrame(leaderboard.curves([r for r in runs if r.name in chosen]))
if len(curves):
    st.altair_chart(charts.training_curves(curves, metric, colour_runs), width="stretch")
    st.caption(
        "Solid: validation set after each epoch (single model, no TTA). Dashed: the "
        "running average over the epoch's augmented (and possibly mixed) training "
        "batches, which is why it can sit below validation."
    )

st.subheader("Snapshot ensembles")
ens = pd.DataFrame(leaderboard.ensemble_curves(runs))
if len(ens):
    st.altair_chart(charts.ensemble_curves(ens, colour_runs), width="stretch")
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
        st.caption(f":orange[{plain(folder.name)}: {plain(reason)}]")
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
        st.altair_chart(charts.search_scatter(trials), width="stretch")
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
