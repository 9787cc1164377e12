"""How long each page's script run took inside the server, written where `TINYVIZ_TIMINGS`
points (nothing is written when it is unset).

A visitor's wait is the server's script run plus the upload, the network and the browser's
drawing. On a poster's 2-core machine crowded by twelve headless browsers (bench/crowd.py),
the browsers' share of the CPU made the waits measured in them mostly the browsers' own:
the server used 111 s of CPU in 300 s. These lines say what the server itself took, per
page, so that the two can be told apart.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator

ENV = "TINYVIZ_TIMINGS"
_GUARD = threading.Lock()
_OPEN = threading.local()  # a script run's timed block, in the thread that runs it


def record(page: str, seconds: float, *, ended: str = "end") -> None:
    """One script run of `page`: its wall seconds, and how it ended (`ended`: "end", or the
    name of the exception that ended it: Streamlit's StopException is the page's own
    `st.stop()`, its RerunException the visitor's next click)."""
    write({"page": page, "at": round(time.time(), 3), "seconds": round(seconds, 4),
           "ended": ended})  # fmt: skip


def write(row: dict) -> None:
    """`row` as one JSON line where `TINYVIZ_TIMINGS` points (nothing when it is unset):
    app.py's script runs, and the bench's probes beside them (bench/served.py)."""
    where = os.environ.get(ENV)
    if not where:
        return
    with _GUARD, contextlib.suppress(OSError), open(where, "a") as f:
        f.write(json.dumps(row) + "\n")  # one short write per line: appends from threads stay whole


@contextlib.contextmanager
def timed(page: str) -> Iterator[None]:
    """Record the block as one script run of `page`. A block inside another (in the same
    thread) is part of that run and is not recorded on its own: a page's fragment is timed
    this way, recorded when only the fragment runs (a new photo on Classify), not twice
    when the whole page does."""
    if getattr(_OPEN, "page", None) is not None:
        yield
        return
    began, ended = time.perf_counter(), "end"
    _OPEN.page = page
    try:
        yield
    except BaseException as e:
        ended = type(e).__name__
        raise
    finally:
        _OPEN.page = None
        record(page, time.perf_counter() - began, ended=ended)


def read(path) -> list[dict]:
    """The script runs recorded at `path` (a torn last line is skipped)."""
    rows = []
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            with contextlib.suppress(ValueError):
                rows.append(json.loads(line))
    return rows
