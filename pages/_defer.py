"""Draw a slow section of a page after the browser has drawn the rest.

A page's script sends its elements as it goes, but on a 2-core machine a section that
computes for a second or two right after the page's first chart takes the cores the
browser needs to draw that chart. `after_paint` shows a placeholder on a section's first
run; a tiny component (`_defer.js`) reruns the section's fragment when the browser is idle,
and that run computes it. Any later run of the page draws it at once (it was shown before).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

SHOWN = "tv_deferred_shown"  # the sections (their `what`) already given their first run
WAITS = "tv_deferred_waits"  # how many placeholders this session has shown: each its token

_after_paint = st.components.v2.component(
    "tinyviz.after_paint", js=Path(__file__).with_name("_defer.js").read_text()
)


def after_paint(what: str, draw: Callable[[], None], waiting: Callable[[], None]) -> None:
    """`draw()` the section named `what` (a string naming what it shows), in a fragment:
    at once if this session has given it its first run already, else `waiting()` now and
    `draw()` when the browser has drawn the page."""
    st.fragment(_section)(what, draw, waiting)


def _section(what: str, draw: Callable[[], None], waiting: Callable[[], None]) -> None:
    shown = st.session_state.setdefault(SHOWN, [])
    if what in shown:
        draw()
        return
    shown.append(what)
    del shown[:-16]  # a few recent sections are enough to know
    waiting()
    n = st.session_state[WAITS] = st.session_state.get(WAITS, 0) + 1
    # a token of its own per placeholder: the browser fires once per token, so a section
    # that comes back after it left the recent list is triggered again
    _after_paint(data={"what": f"{n} {what}"}, key=f"tv_defer_{n}", on_ready_change=lambda: None)
