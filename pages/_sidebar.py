"""The sidebar every page shares: the data set, the run, broken run folders, added folders."""

from __future__ import annotations

import streamlit as st

from pages import _cache, _classify_ready, _state
from pages._runs import about, run_labels, short_label
from tinyviz.errors import TinyvizError
from tinyviz.io import shown_name


def _keep_data_path_in_url() -> None:
    """Switching pages drops the URL's query: put the typed data set path back, so that a
    reload or a copied link of any page keeps it (only when it is missing: no extra update)."""
    path = st.session_state.get(_state.DATA_KEY, "")
    typed = path and path != _state.default_data_path()
    if typed and st.query_params.get(_state.DATA_PARAM) != path:
        st.query_params[_state.DATA_PARAM] = path


def sidebar() -> None:
    """Data set and run choices, shared by every page."""
    with st.sidebar:
        st.markdown("### tinyviz")
        if "tv_data_pending" in st.session_state:
            st.session_state[_state.DATA_KEY] = st.session_state.pop("tv_data_pending")
        _state.init_data_path()
        _keep_data_path_in_url()
        path = st.text_input(
            "Data set (zip or folder)",
            key=_state.DATA_KEY,
            placeholder="data/tiny-imagenet-200.zip",
            on_change=_state.remember_data_path,
            help="The official tiny-imagenet-200.zip or its extracted folder, or your own "
            "images in class folders (train/<class>/ and val/<class>/, or one <class>/ "
            "each). Also read from TINYVIZ_DATA; kept in the page's address.",
        )
        if not path:
            st.caption(
                ":orange[No data set found.] Pages that need images explain how to "
                "get it; Models and Classify work without it."
            )
        found = _state.found()
        if found.runs:
            options = [str(r.path) for r in found.runs]
            labels = run_labels(found.runs, short_label)
            if st.session_state.get(_state.RUN_KEY) not in options:
                st.session_state[_state.RUN_KEY] = str(_state.default_run(list(found.runs)).path)
            chosen = st.selectbox("Run", options, format_func=labels.get, key=_state.RUN_KEY)
            run = next(r for r in found.runs if str(r.path) == chosen)
            st.caption(about(run))  # whole: the field above cuts a long label
            _cache.warm_run(run, path)
            _classify_ready.warm(list(found.runs))
        else:
            st.caption("No runs yet.")
        if found.broken:
            with st.expander(f"{len(found.broken)} run folder(s) cannot be used"):
                for b in found.broken:
                    st.text(f"{shown_name(b.name)}: {b.reason}")
        with st.expander("Add a run folder"):
            folder = st.text_input("Folder holding run folders (or one run)", key="tv_add_runs")
            if st.button("Add", disabled=not folder):
                try:
                    _state.add_run_folder(folder)
                    st.rerun()
                except TinyvizError as e:
                    st.error(str(e))
