"""Classify first: the other pages' script runs take turns in the server.

A Streamlit server runs every visitor's script in a thread of one Python process, and the
pure-Python part of a page (building tables, frames and chart specifications) holds the
interpreter lock. With twelve visitors on the explain pages at once, a photo's Classify run
had about a twelfth of it: 1.1 s from upload to top-5 for one visitor, 11 s at the median
for twelve (bench/crowd.py), on a server using under half a core. So every page but Classify
runs its script one at a time (`TURNS`), and Classify never waits for a turn: it shares the
interpreter with at most one other page's run. The heavy computations were already
elsewhere (the background queue); what takes turns here is the drawing.

A page waiting for its turn says so, and gives way at once when its visitor moves on:
writing the message is where Streamlit stops a script run whose visitor has clicked
elsewhere, so a visitor who leaves a waiting page for Classify does not wait for the turn.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator

import streamlit as st

from tinyviz.errors import TinyvizError
from tinyviz.runtime import timings

TURNS = 1  # pages other than Classify whose scripts run at once
WAIT = 0.2  # seconds between looks for a turn (and for the visitor having moved on)
_HELD = threading.local()  # whether this thread's script run holds a turn


@st.cache_resource(show_spinner=False)
def _turns() -> threading.BoundedSemaphore:
    """The server's turns, shared by every session."""
    return threading.BoundedSemaphore(TURNS)


@contextlib.contextmanager
def turn() -> Iterator[None]:
    """Run the block in this page's turn (waiting, and saying so, while others have it).
    A block inside another (a page's fragment in the page's own run) is in that turn."""
    if getattr(_HELD, "held", False):
        yield
        return
    turns = _turns()
    if not turns.acquire(blocking=False):
        _wait(turns)
    _HELD.held = True
    try:
        yield
    finally:
        _HELD.held = False
        turns.release()


def fragment(page: str) -> Callable[[Callable], Callable]:
    """Decorator: draw the function as a fragment of `page`, so a widget in it reruns and
    redraws it alone (the browser redraws that part only, not the page's other charts).
    A fragment's own rerun does not pass through app.py, so it takes the page's turn
    here, is timed as a run of `page`, and a `TinyvizError` is one line in it (the rest of
    the page stays), as app.py does for the page."""

    def wrap(draw: Callable) -> Callable:
        @functools.wraps(draw)
        def part(*args, **kwargs):
            with timings.timed(page), turn():
                try:
                    draw(*args, **kwargs)
                except TinyvizError as e:
                    st.error(str(e), icon=":material/error:")

        return st.fragment(part)

    return wrap


def _wait(turns: threading.BoundedSemaphore) -> None:
    """Until this run holds a turn. Writing to the page is where Streamlit stops a run whose
    visitor moved on: when that happens just after the turn was taken (clearing the note),
    the turn is given back before the run stops, or no other page would ever run again."""
    note, start = st.empty(), time.monotonic()
    while not turns.acquire(timeout=WAIT):
        waited = time.monotonic() - start
        note.caption(f"Other visitors' pages are being drawn first ({waited:.0f} s)...")
    try:
        note.empty()
    except BaseException:
        turns.release()
        raise
