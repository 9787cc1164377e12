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
  again when the browser builds it anew; and a chart whose selection is already a cell
  sends nothing when that cell is clicked again. So a chart whose selection is not the
  shown cell (the cell changed by the list, the other chart or an order) is made a new
  widget, without a selection (`chart_key`: its key counts these renewals). A chart
  clicked keeps its key, and its spec does not change with the shown cell (the ring is
  data), so the browser does not build it again for a click: it moves the ring.

A click on a matrix or in the list reruns only the page's fragment of what depends on the
cell (pages/confusion.py).
"""

from __future__ import annotations

import streamlit as st

from tinyviz.runs import Run

CELL = "tv_conf_cell"  # the shown cell: (run folder, true class, answered class)
ZOOMED = "tv_conf_zoomed"  # (order, cell) the zoomed block last followed
ZOOMS = "tv_conf_zooms"  # how many times the zoom slider was made anew to follow the cell
RENEWED = "tv_conf_renewed"  # chart -> (its order, how many times it was made anew)


def pair_key(run: Run) -> str:
    """The pairs list's widget key."""
    return f"tv_conf_pair_{run.name}"


def chart_key(chart: str, order_by: str, cell: tuple[int, int]) -> str:
    """The key of a matrix chart ("overview", "block") drawn in `order_by` with `cell`
    shown: last run's while the chart's order is the same and its selection is none or
    `cell` (the browser keeps the chart), else a key never used before (a new widget,
    without a selection, which no browser remembers a selection of)."""
    renewed = st.session_state.setdefault(RENEWED, {})
    order, n = renewed.get(chart, (order_by, 0))
    key = f"tv_conf_{chart}_{order}_{n}"
    if order != order_by or _selected(key) not in (None, tuple(cell)):
        n += 1
        key = f"tv_conf_{chart}_{order_by}_{n}"
    renewed[chart] = (order_by, n)
    return key


def _selected(key: str) -> tuple[int, int] | None:
    """The cell the chart `key` holds selected (from its last run), or None."""
    state = st.session_state.get(key)
    chosen = (state.selection.get("cell") or []) if state is not None else []
    return (int(chosen[0]["t"]), int(chosen[0]["p"])) if chosen else None


def pick(run: Run, key: str) -> None:
    """A click on a chart's cell makes it the shown cell (a chart holding another cell than
    the shown one is renewed, so any selection it sends is a click on it as drawn)."""
    chosen = _selected(key)
    if chosen:  # none: the click missed every cell, or took it back
        st.session_state[CELL] = (str(run.path), *chosen)


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
