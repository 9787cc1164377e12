"""The runs a page needs, or a page-wide note that stops it; how a run is named in pickers."""

from __future__ import annotations

import streamlit as st

from pages import _state
from pages._text import plain
from tinyviz.io import shown_name
from tinyviz.runs import Run

NO_RUNS = (
    "No trained run found: train one on the Train page (or with `tinyviz train`), or "
    "add a run folder in the sidebar."
)


def require_runs() -> list[Run]:
    """Every run found, or a page-wide note that there is none (and the page stops)."""
    runs = _state.all_runs()
    if not runs:
        st.warning(NO_RUNS)
        st.stop()
    return runs


def require_run() -> Run:
    """The sidebar's run, or the same note as `require_runs`."""
    require_runs()
    return _state.current_run()


def require_matching_run(data) -> Run:
    """The sidebar's run if it was trained on the data set's classes; else a message and stop."""
    run = require_run()
    if list(run.wnids) != list(data.classes.wnids):
        st.error(
            f"**{plain(run.name)}** was trained on {len(run.wnids)} classes that are not "
            f"this data set's {len(data.classes.wnids)} classes, so its predictions "
            "cannot be compared with these images. Choose another run in the sidebar, or "
            "the data set it was trained on.",
            icon=":material/block:",
        )
        st.stop()
    return run


def score_text(run: Run) -> str:
    """The run's top-1 as shown beside its name: "not scored" for a run without a score
    (a run stopped before its first epoch ended, an import not yet evaluated), never 0.0%."""
    top1 = run.score.top1
    return "not scored" if top1 is None else f"{top1:.1%}"


def run_label(run: Run) -> str:
    return f"{shown_name(run.name)}  ({run.model_name}, {score_text(run)})"


def run_labels(runs, label=run_label) -> dict[str, str]:
    """The run picker's label of each run (by path, `label(run)`): runs of the same name in
    two roots also say which folder holds them (`roots.where`)."""
    from collections import Counter

    from tinyviz.runs import roots

    twice = Counter(r.name for r in runs)
    return {
        str(r.path): label(r) + (f" · in {roots.where(r.path)}" if twice[r.name] > 1 else "")
        for r in runs
    }


def short_label(run: Run) -> str:
    """The sidebar picker's label, short enough for its narrow field: name and top-1 (the
    model is in the line under it, `about`)."""
    return f"{shown_name(run.name)} · {score_text(run)}"


def about(run: Run) -> str:
    """The line under the sidebar's picker: the whole name (the field cuts a long one),
    the model and the top-1, wrapped as long as it needs."""
    top1 = score_text(run)
    top1 = f"{top1} val top-1" if run.score.top1 is not None else top1
    return f"{plain(shown_name(run.name))} · {plain(run.model_name)} · {top1}"
