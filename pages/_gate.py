"""The start of every explain page: the run's stored analysis, asked for in one question.

`analysis_start` draws the heading, takes the data set and a run trained on it, and asks
`tinyviz.explain.analysis_job.gate` once: the answer (a `Gate`: ready, partial with its
subset, running with progress and estimate, failed with its reason) is drawn as it is. The
analysis is never computed in the script run: while nothing is stored, a fragment follows
the background job and reruns the page when the subset or the full set arrives. With epoch
views, a slider picks the epoch whose analysis is drawn (`epoch_choice`).
"""

from __future__ import annotations

from typing import NamedTuple

import streamlit as st

from pages import _cache
from pages._dataset import data_for, require_data
from pages._runs import require_matching_run
from pages._text import plain
from tinyviz.runs import Run


def analysis_progress(message: str):
    """A progress bar for a long first computation; returns (callback, clear)."""
    bar = st.progress(0.0, text=message)

    def report(fraction: float, text: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{message} {text}")

    return report, bar.empty


def ensure_analysis(run: Run, data):
    """The run's stored analysis of the validation set, never computed in this script run.

    One question to the backend (`analysis_job.gate`, which starts or follows the background
    job shared by every session): the full set when it is stored; else the stratified subset
    under a note with the job's progress; when nothing is stored yet, the job's progress
    alone, and the page stops there. The page reruns by itself when the subset or the full
    set arrives.
    """
    from tinyviz.explain import analysis_job

    gate = analysis_job.gate(run, data)
    if gate.note:
        st.warning(gate.note, icon=":material/report:")  # a bad stored file counts as missing
    if not gate.drawable:
        st.fragment(_job_panel, run_every=2)(run, data, gate)
        st.stop()
    an = _cache.analysis(str(gate.folder))
    st.session_state["tv_an_sample"] = (len(an.outputs), an.total) if an.partial else None
    if gate.state != "ready":
        st.fragment(_job_panel, run_every=3)(run, data, gate)
    return an


def _job_panel(run: Run, data, first) -> None:
    """The background job's progress, drawn from the gate (asked again at each of the
    fragment's runs); reruns the page when a new stage is stored. `first` is the script
    run's gate: what the page drew."""
    from tinyviz.explain import analysis, analysis_job, speed

    gate = analysis_job.gate(run, data)
    if gate.stage != first.stage:
        st.rerun(scope="app")
    if gate.state == "failed":
        st.error(
            f"The analysis of **{plain(run.name)}** failed: {plain(gate.reason)}",
            icon=":material/error:",
        )
        if st.button("Try again", icon=":material/replay:", key="tv_an_retry"):
            analysis_job.gate(run, data, retry=True)
            st.rerun(scope="app")
        return
    job = gate.job
    sample = f"a first sample of {job.subset:,} images ({analysis.SUBSET_PER_CLASS} per class)"
    if gate.state == "running":
        soon = gate.first_eta_seconds
        when = f" in {speed.duration(soon)}" if soon is not None else ""
        st.info(
            f"**First look at {plain(run.name)}**: its predictions, features and channel "
            f"responses on the {job.total:,} validation images are being computed in the "
            "background, once, and stored with the run. "
            + (f"The page draws {sample}{when}, then the full set. " if job.subset else "")
            + "You can close this tab or switch pages: the job goes on, and every visitor "
            "looking at this run shares it.",
            icon=":material/hourglass_top:",
        )
    else:
        st.info(
            f"Showing {sample} of the {job.total:,} validation images: the full set is "
            "being analysed in the background, and the page switches to it when it is ready.",
            icon=":material/hourglass_top:",
        )
    st.progress(job.fraction, text=analysis_job.describe(job))


class AnalysisKey(NamedTuple):
    """What an explain page's derived results depend on: the cache key of its
    `st.cache_data` functions (a tuple, so Streamlit hashes it as one)."""

    run: str  # the run folder
    stamp: tuple  # its weights' size and mtime (`Run.stamp`): new weights, new results
    data_cache: str  # the decoded data set
    folder: str  # the analysis folder drawn: `_cache.analysis(key.folder)`
    epoch: int | None  # the epoch slider's choice (None: the final weights)


def analysis_start(title: str, caption: str):
    """The common start of the analysis pages: heading, the data set, a run trained on it,
    its stored validation outputs (`ensure_analysis`: the page stops while there are none)
    and an `AnalysisKey` for what the page derives from them. With epoch views, the
    outputs and the folder are those of the epoch chosen on the slider (`epoch_choice`)."""
    st.header(title)
    st.caption(caption)
    data = require_data()
    run = require_matching_run(data)
    data = data_for(run, data)
    an, epoch = epoch_choice(run, data, ensure_analysis(run, data))
    key = AnalysisKey(str(run.path), run.stamp, str(data.cache), str(an.folder), epoch)
    return data, run, an.outputs, key


def final_analysis(run: Run, data):
    """The run's own stored analysis (after `analysis_start`: there is one), whichever
    epoch the slider shows: the last stop of the embeddings' aligned maps."""
    from tinyviz.explain import analysis

    return _cache.analysis(str(analysis.available(run.path, data)))


EPOCH_KEY = "tv_epoch"  # the slider


CHOSEN_EPOCH = "tv_epoch_chosen"  # its choice, kept in the session: it follows the visitor


def _remember_epoch() -> None:
    st.session_state[CHOSEN_EPOCH] = st.session_state[EPOCH_KEY]


def epoch_choice(run: Run, data, final):
    """With epoch views (`tinyviz train --epoch-views`), a slider over the epochs whose
    analysis is stored, then "final"; returns the chosen analysis and its epoch (None for
    the final weights, `final`, which is also what a run without views gets). The choice
    is the session's, so Confusion, Channels and Embeddings show the same epoch."""
    from tinyviz.explain import epochs

    views = epochs.views(run, data)
    stored = [v for v in views if v.analysed]
    if not stored:
        return final, None
    options = [v.epoch for v in stored] + [epochs.FINAL]
    kept = st.session_state.get(CHOSEN_EPOCH, epochs.FINAL)
    st.session_state[EPOCH_KEY] = kept if kept in options else epochs.FINAL
    top1 = {v.epoch: v.top1 for v in stored}
    chosen = st.select_slider(
        "Epoch",
        options,
        key=EPOCH_KEY,
        on_change=_remember_epoch,
        format_func=lambda e: "final" if e == epochs.FINAL else f"epoch {e}",
        help="The run as it was at the epochs it kept a view of (`--epoch-views`): weights "
        "in half precision and their own analysis. Final: the run's weights. "
        + ", ".join(f"epoch {e}: {t:.1%} top-1" for e, t in top1.items() if t is not None),
    )
    missing = [v.epoch for v in views if not v.analysed]
    if missing:
        st.caption(
            f"Epoch {', '.join(map(str, missing))}: no analysis stored yet, so not on the "
            "slider; `tinyviz analyse RUN` computes it."
        )
    if chosen == epochs.FINAL:
        return final, None
    an = _cache.analysis(str(next(v.folder for v in stored if v.epoch == chosen)))
    st.session_state["tv_an_sample"] = (len(an.outputs), an.total) if an.partial else None
    return an, int(chosen)


def measured_on(
    n_images: int, what: str = "single model, no test-time augmentation", epoch: int | None = None
) -> str:
    """The caption line every figure carries: what it was measured on (a sample, while
    the page draws the stratified subset of `ensure_analysis`; the weights of `epoch`, when
    the epoch slider is on one)."""
    sample = st.session_state.get("tv_an_sample")
    when = f", weights of epoch {epoch}" if epoch else ""
    if sample and sample[0] == n_images:
        return (
            f"Measured on a first sample of the validation set: {n_images:,} of its "
            f"{sample[1]:,} images (the same number of each class), {what}{when}."
        )
    return f"Measured on the validation set: {n_images:,} images, {what}{when}."
