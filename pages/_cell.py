"""The Confusion page's shown cell (true class, answered class): one piece of state that
both matrices, the pairs list, the images and "why B and not A" read.

A click on a matrix or a pick in the pairs list makes its cell the shown one; before any,
the most confused pair is shown. The cell is kept per run (`CELL` names the run folder).
"""

from __future__ import annotations

import streamlit as st

from tinyviz.runs import Run

CELL = "tv_conf_cell"  # the shown cell: (run folder, true class, answered class)
SEEN = "tv_conf_seen"  # the last selection each chart sent


def pair_key(run: Run) -> str:
    """The pairs list's widget key."""
    return f"tv_conf_pair_{run.name}"


def pick(run: Run, chart_key: str) -> None:
    """A click on a chart's cell makes it the shown cell. A chart drawn anew (another
    order, a rerun after a fragment) can send its old selection again: only a selection
    that differs from the last one this chart sent is a click, so a stale one never takes
    the page back to an earlier cell."""
    chosen = st.session_state[chart_key].selection.get("cell") or []
    cell = (str(run.path), int(chosen[0]["t"]), int(chosen[0]["p"])) if chosen else None
    seen = st.session_state.setdefault(SEEN, {})
    if cell is None or seen.get(chart_key) == cell:
        return
    seen[chart_key] = cell
    st.session_state[CELL] = cell
    st.session_state[pair_key(run)] = None


def pick_pair(run: Run, pairs) -> None:
    """The pairs list's choice makes its pair the shown cell."""
    i = st.session_state.get(pair_key(run))
    if i is not None:
        st.session_state[CELL] = (str(run.path), pairs[i].true, pairs[i].pred)


def current(run: Run, pairs) -> tuple[int, int]:
    """The shown cell (true, predicted) of this run; the most confused pair before a click."""
    stored = st.session_state.get(CELL)
    if stored and stored[0] == str(run.path):
        return stored[1], stored[2]
    return (pairs[0].true, pairs[0].pred) if pairs else (0, 0)
