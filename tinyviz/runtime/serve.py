"""`tinyviz serve`: the dashboard (`streamlit run app.py`) with the memory settings a
crowded server needs, which only the process's environment at its start can give.

A Streamlit server runs each visitor's script in a thread of one Python process. After a
crowd (bench/crowd.py: 12 visitors for 5 minutes on a 2-core machine) the server kept
0.9 GB more than before it, although the objects alive afterwards were only 0.27 GB more:
the rest was memory freed but held, in Python's small-object arenas (1 MiB each, returned
only when wholly empty: 799 of them holding 331 MB of objects) and in glibc's per-thread
heaps. With Python's objects in glibc's heap (`PYTHONMALLOC=malloc`) and the threads
sharing two heaps (`MALLOC_ARENA_MAX=2`), what the server's janitor hands back when it
falls quiet (`malloc_trim`, page by page) is nearly all of it: +0.34 GB after the same
crowd (one run each; with the data set also shared by the sessions, `data.cache._open`,
+0.23 and +0.27 GB in two runs, against +0.40 GB started as `streamlit run app.py`). Both
must be set before Python starts, so a page cannot do it; this command does, and
`streamlit run app.py` still works, with more memory kept after crowds.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import TinyvizError

# What a crowded server needs in its environment; a value the user set is kept.
SETTINGS = {"PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2"}
APP = Path(__file__).resolve().parents[2] / "app.py"


def environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` with `SETTINGS` added where `base` does not set them itself."""
    return {**SETTINGS, **base}


def command(options: Sequence[str], app: Path | None = None) -> list[str]:
    """The server's command line: `streamlit run` of `app` (tinyviz's) with Streamlit's
    `options`."""
    app = app or APP
    if not app.is_file():
        raise TinyvizError(
            f"no dashboard at {app}: `tinyviz serve` runs the app.py of a tinyviz checkout "
            "(install it with `pip install -e .` there)"
        )
    return [sys.executable, "-m", "streamlit", "run", str(app), *options]


def serve(options: Sequence[str]) -> None:
    """Replace this process by the dashboard's server (it never returns)."""
    argv = command(options)
    os.chdir(APP.parent)  # .streamlit/config.toml is read from the working folder
    os.execve(argv[0], argv, environment(os.environ))
