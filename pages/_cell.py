"""The Confusion page's shown cell (true class, answered class): the one piece of state
that both matrices, the pairs list, the images and "why B and not A" (its "Compute them"
button and the job's result) read.

A click on a matrix or a pick in the pairs list makes its cell the shown one; before any,
the most confused pair is shown. The cell is kept per run (`CELL` names the run folder).

The widgets are made to agree with it rather than keep a state of their own:

- The pairs list's choice is set from the shown cell before the list is drawn (its pair,
  or none when the shown cell is not in the list).
- The zoomed block moves to the shown cell when the cell changes and lies outside it.
- A chart remembers the last cell clicked on it (in the browser) and sends that selection
  again on later reruns; after a pick in the list and another class order, an old chart's
  selection took the page back to the cell clicked first. So each chart's key is made of
  the class order and the shown cell (`chart_key`): whenever either changes, the chart is
  a new widget with no selection, and a selection a chart sends is a click on the chart as
  it is drawn now. Clicking the cell clicked before, after a pick in the list, shows it
  again (an old chart would not send an unchanged selection).
"""

from __future__ import annotations

import streamlit as st

from tinyviz.runs import Run

CELL = "tv_conf_cell"  # the shown cell: (run folder, true class, answered class)
ZOOMED = "tv_conf_zoomed"  # (order, cell) the zoomed block last followed
ZOOMS = "tv_conf_zooms"  # how many times the zoom slider was made anew to follow the cell


def pair_key(run: Run) -> str:
    """The pairs list's widget key."""
    return f"tv_conf_pair_{run.name}"


def chart_key(chart: str, order_by: str, cell: tuple[int, int]) -> str:
    """The key of a matrix chart ("overview", "block") drawn in `order_by` with `cell`
    shown: a new widget, without a selection, whenever the order or the shown cell changes."""
    return f"tv_conf_{chart}_{order_by}_{cell[0]}_{cell[1]}"


def pick(run: Run, key: str) -> None:
    """A click on a chart's cell makes it the shown cell (a chart's key changes with the
    shown cell, so any selection it sends is a click on it as drawn)."""
    chosen = st.session_state[key].selection.get("cell") or []
    if chosen:  # an empty selection: the click missed every cell, or took it back
        st.session_state[CELL] = (str(run.path), int(chosen[0]["t"]), int(chosen[0]["p"]))


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


def sync_pairs_list(run: Run, pairs, cell: tuple[int, int]) -> None:
    """Before the pairs list is drawn: its choice is the shown cell's pair (or none)."""
    where = [i for i, q in enumerate(pairs) if (q.true, q.pred) == tuple(cell)]
    st.session_state[pair_key(run)] = where[0] if where else None


def zoom(order_by: str, cell: tuple[int, int], pos, block: int) -> tuple[str, tuple[int, int]]:
    """(the zoom slider's key, its default block): the block shows the shown cell (its row
    and column when they fit in one block, else its row). When the cell changes and lies
    outside the block chosen, the slider is a new widget (a new key) starting at the cell's
    block; otherwise the zoom chosen by hand stays. `pos`: each class's place in the order."""
    c = len(pos)
    a, b = sorted((int(pos[cell[0]]), int(pos[cell[1]])))
    middle = (a + b) // 2 if b - a < block else int(pos[cell[0]])
    start = max(0, min(middle - block // 2, c - block))
    around = (start, min(start + block, c) - 1)
    n = st.session_state.get(ZOOMS, 0)
    chosen = st.session_state.get(f"tv_conf_zoom_{order_by}_{c}_{n}")  # the last run's
    moved = st.session_state.get(ZOOMED) != (order_by, tuple(cell))
    if moved and chosen is not None and not (chosen[0] <= a and b <= chosen[1]):
        n = st.session_state[ZOOMS] = n + 1
    st.session_state[ZOOMED] = (order_by, tuple(cell))
    return f"tv_conf_zoom_{order_by}_{c}_{n}", around
