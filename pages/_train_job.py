"""The Train page's job panel: the training job of this machine, followed live (a
fragment that reruns the page when a job starts or ends), and the latest runs."""

from __future__ import annotations

import dataclasses
import time

import streamlit as st

from pages import _state
from pages._text import plain
from pages._train_form import start_again
from pages.charts import training
from tinyviz.errors import TinyvizError
from tinyviz.runs import jobs
from tinyviz.runs.folder import RunFolder, read_metrics
from tinyviz.runs.progress import TrainProgress
from tinyviz.runs.roots import runs_dir


def duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min {s:02d} s"


def panel() -> None:
    """The latest job: progress, curves and its output, followed live (a fragment that
    reruns every two seconds while a job runs). Its buttons are `controls`, drawn once by
    the page's own run, not at every rerun of the fragment."""
    now = jobs.current(runs_dir())
    if bool(now and now.active) != st.session_state.get("tv_tr_active"):
        st.rerun()  # started in another tab, or just ended: refresh the whole page
    job = now or jobs.latest(runs_dir())
    if job is None:
        st.info("No training job yet. Choose settings above and press Start.")
        return
    p = job.progress or TrainProgress("running", 0, 0.0, 0.0)
    st.markdown(
        f"**{plain(job.run_dir.name)}**: {job.status}"
        + (f" ({plain(job.message)})" if job.message else "")
    )
    st.progress(
        p.fraction, text=f"step {p.step:,} of {p.total_steps:,}" if p.total_steps else "starting"
    )
    c = st.columns(4)
    c[0].metric("Epoch", f"{p.epoch} of {p.epochs or '?'}")
    c[1].metric("Images / s", f"{p.images_per_s:,.0f}")
    c[2].metric(
        "Time left",
        duration(p.eta_s) if job.active and p.eta_s else "estimating" if job.active else "-",
    )
    end = time.time() if job.active else p.updated or time.time()
    c[3].metric(
        "Running for" if job.active else "Ran for",
        duration(end - job.started) if job.started else "-",
    )
    try:
        rows = [dataclasses.asdict(r) for r in read_metrics(RunFolder(job.run_dir))]
    except TinyvizError:
        rows = []
    if rows:
        charts = st.columns(2)
        drawn = training.epoch_curves(rows, p.epochs)
        charts[0].altair_chart(drawn["top1"], width="stretch")
        charts[1].altair_chart(drawn["loss"], width="stretch")
        st.caption(
            "train: the epoch's augmented batches, as they were trained on; "
            "val: the validation images after each epoch."
        )
    st.code(
        "\n".join(jobs.log_tail(job.run_dir, 12)) or "(no output yet)",
        language=None,
        wrap_lines=True,
    )


def controls(now) -> None:
    """Stop (the job running, `now`), or Resume or Start again (the latest job), once."""
    job = now or jobs.latest(runs_dir())
    if job is None:
        return
    # "Stop training", not "Stop": Streamlit's own Stop (of a script run) shows at the top
    # right while the panel reruns every two seconds, and two "Stop" buttons read as one
    if job.active and st.button("Stop training", icon=":material/stop:", key="tv_tr_stop"):
        jobs.stop(job, jobs_dir=runs_dir())
        st.rerun()
    if job.resumable and st.button("Resume", icon=":material/replay:", key="tv_tr_resume_job"):
        resume(job.run_dir)
    elif job.status in ("stopped", jobs.ENDED) and not job.resumable and not job.finished_all:
        st.warning(
            "Nothing to resume: the run stopped before its first epoch ended, so no "
            "weights were saved. Start it again from the beginning (a new run folder; "
            "this one is kept).",
            icon=":material/restart_alt:",
        )
        st.button(
            "Start again",
            icon=":material/restart_alt:",
            key="tv_tr_again",
            disabled=bool(now and now.active),
            on_click=start_again,
            args=(job.run_dir,),
        )


def resume(run_dir) -> None:
    try:
        jobs.resume(run_dir, jobs_dir=runs_dir(), data=_state.data_path())
        st.rerun()
    except jobs.JobError as e:
        st.error(str(e))


def recent(running) -> None:
    """The latest run folders of `runs_dir()`, each with its job's state (and Resume)."""
    recent = jobs.recent_runs(runs_dir())
    if not recent:
        return
    st.subheader(f"Runs in {runs_dir()}", anchor=False)
    busy = bool(running and running.active)
    for r in recent:
        c = st.columns([2.5, 3, 1.8, 1.2, 1.2], vertical_alignment="center")
        c[0].markdown(f"**{plain(r.path.name)}**")
        scored = "not scored" if r.best_top1 is None else f"best val top-1 {r.best_top1:.1%}"
        c[1].text(r.problem or f"{r.epochs} epochs · {scored}")
        c[2].write(r.job.status)
        c[3].caption(r.model)
        if r.job.resumable and c[4].button(
            "Resume", key=f"tv_tr_resume_{r.path.name}", disabled=busy
        ):
            resume(r.path)
