"""Results computed by the background workers (`tinyviz.explain.work`), as a page follows
them: where each one is (its place in the queue, or how far it is), redrawn every
`FOLLOW_EVERY` seconds by a fragment until one of them is stored, when the whole page is
drawn again with it."""

from __future__ import annotations

import streamlit as st

from tinyviz.explain import speed, work
from tinyviz.runtime.tasks import TaskState

# Each redraw is a script run in the server and a redraw in the visitor's browser (about
# 70 ms of its main thread on the Saliency page): at a crowded poster most visitors wait at
# once, so every 2 s rather than every second; a result then shows 1 s later on average.
FOLLOW_EVERY = 2.0
KEY = "tv_queued"  # the followed states' container (`.st-key-tv_queued`: the crowd bench)


def describe(now: TaskState) -> str:
    """Where a request is, in words: its place in the queue, or its progress."""
    if now.state == "waiting":
        if not now.place:
            return "next in the queue of background computations"
        n = now.place
        return f"in the queue: {n} background computation{'s' if n > 1 else ''} before it"
    if now.state == "running":
        eta = now.eta_seconds
        left = f", {speed.duration(eta)} left" if eta is not None else ""
        return f"computing in the background: {now.message or 'started'}{left}"
    return "starting in the background (a few seconds)"


def follow(pending: dict[str, work.Request], every: float = FOLLOW_EVERY) -> None:
    """Each pending request's state under its label, kept current; the page is drawn again
    as soon as one of them is stored (or has failed: the page says why)."""
    st.fragment(_follow, run_every=every)(pending)


def _follow(pending: dict[str, work.Request]) -> None:
    states = {label: work.status(req) for label, req in pending.items()}
    if any(not now.active for now in states.values()):
        st.rerun(scope="app")
    with st.container(key=KEY):
        for label, now in states.items():
            st.progress(now.fraction, text=f"{label}: {describe(now)}")
