"""What the pages share in a browser session: the data set path, the runs, the chosen run.

Widget state can be lost when switching pages, so everything that must survive lives in
`st.session_state` under our own keys; the data set path also lives in the URL's query
parameters, so it survives a reload and travels with a copied link into a new tab.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from tinyviz.data import DataError, locate
from tinyviz.runs import Run, Scan, roots, scan, scan_fingerprint
from tinyviz.runtime import pick_device

DATA_KEY, RUN_KEY, EXTRA_RUNS_KEY = "tv_data_path", "tv_run", "tv_extra_runs"
NAV_KEY, GOTO_KEY = "tv_nav", "tv_goto"
DATA_PARAM = "data"
SCAN_KEY = "tv_scan"  # this script run's scan of the run roots (`found`)


def entry(page_file: str) -> None:
    """Make sure a page runs under app.py's navigation.

    A link straight to a page (`/classify`) on a freshly started server runs the page file on
    its own, in Streamlit's legacy pages-folder mode, without our sidebar. Then go through
    app.py, which installs the navigation and comes back to this page.
    """
    if not st.session_state.get(NAV_KEY):
        st.session_state[GOTO_KEY] = f"pages/{Path(page_file).name}"
        st.switch_page("app.py")


# ---------------------------------------------------------------- data set


def default_data_path() -> str:
    try:
        return str(locate())
    except DataError:
        return ""


def init_data_path() -> None:
    """The sidebar's data field starts from the URL, else the environment or ./data/.

    Called by app.py before the navigation is drawn, so a page link clicked during the
    first script run cannot open a page that has no data set yet. The value is set again
    on every run (before the field is made): a field whose first run was cut short by such
    a click would otherwise show empty in the browser while the server holds the path, and
    the browser would send that empty value back with the next click.
    """
    if DATA_KEY in st.session_state:
        path = st.session_state[DATA_KEY]
    else:
        path = st.query_params.get(DATA_PARAM) or default_data_path()
    st.session_state[DATA_KEY] = path


def remember_data_path() -> None:
    """Keep the typed path in the URL (a reload or a copied link keeps it)."""
    path = st.session_state.get(DATA_KEY, "")
    if path and path != default_data_path():
        st.query_params[DATA_PARAM] = path
    elif DATA_PARAM in st.query_params:
        del st.query_params[DATA_PARAM]


def data_path() -> str:
    """The data set path the sidebar holds ("" when none was found)."""
    return st.session_state.get(DATA_KEY) or default_data_path()


# -------------------------------------------------------------------- runs


def run_roots() -> list[Path]:
    return [*roots.configured_roots(), *map(Path, st.session_state.get(EXTRA_RUNS_KEY, []))]


def new_script_run() -> None:
    """Called first by app.py on every script run: the run folders are read again, once."""
    st.session_state.pop(SCAN_KEY, None)


def found() -> Scan:
    """Every run folder found: the good runs, best first, and the broken ones. Read once
    per script run (`new_script_run`): the sidebar, the page and its helpers then hand the
    same opened `Run` objects around instead of opening the folders again."""
    cached = st.session_state.get(SCAN_KEY)
    if isinstance(cached, Scan):
        return cached
    ordered = _shared_scan(tuple(run_roots()))
    st.session_state[SCAN_KEY] = ordered
    return ordered


_SCANS_GUARD = threading.Lock()


@st.cache_resource(show_spinner=False)
def _last_scans() -> dict:
    """The last scan of each set of roots, with its fingerprint, for every session: reading
    and parsing the run folders on every script run of every visitor took a fifth of a
    crowded server's Python time (bench/crowd.py); their fingerprint is a few stats."""
    return {}


def _shared_scan(where: tuple[Path, ...], keep: int = 16) -> Scan:
    last, mark = _last_scans(), scan_fingerprint(where)
    hit = last.get(where)
    if hit is not None and hit[0] == mark:
        return hit[1]
    result = scan(where)
    ordered = Scan(tuple(sorted(result.runs, key=lambda r: r.top1, reverse=True)), result.broken)
    with _SCANS_GUARD:
        last.pop(where, None)
        last[where] = (mark, ordered)
        while len(last) > keep:  # the oldest set of roots goes (a visitor's added folders)
            last.pop(next(iter(last)))
    return ordered


def all_runs() -> list[Run]:
    return list(found().runs)


def current_run() -> Run | None:
    """The run chosen in the sidebar (`default_run` until something is chosen)."""
    runs = {str(r.path): r for r in all_runs()}
    return runs.get(st.session_state.get(RUN_KEY)) or default_run(list(runs.values()))


def default_run(runs: list[Run]) -> Run | None:
    """The best run; on a machine without a GPU the best of those whose pages answer fast
    there, judged from the speeds measured with their analysis (`tinyviz.explain.speed`)."""
    from tinyviz.explain import speed

    return speed.default_run(runs, device())


def add_run_folder(text: str) -> None:
    """Add a folder of runs for this session; refused outside the configured roots."""
    folder = str(roots.check_addable(text))
    extra = st.session_state.setdefault(EXTRA_RUNS_KEY, [])
    if folder not in extra:
        extra.append(folder)
        st.session_state.pop(SCAN_KEY, None)


def device() -> str:
    return str(pick_device("auto"))
