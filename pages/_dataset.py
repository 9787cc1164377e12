"""The data set a page needs: opened, or downloaded and decoded first, with progress.

`require_data` is the start of every page that shows images: the data set chosen in the
sidebar, or a page-wide note saying how to get it (and the page stops there). `data_for`
gives it at the image size a run was trained at, and `model_input` an upload as that run's
model sees it.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from pages import _cache, _state
from pages._text import plain
from tinyviz.data import DataError, describe_missing, download
from tinyviz.runs import Run


def _decode_progress():
    """A progress callback for decoding the data set, shown from its first report."""
    holder: list = []

    def report(done: int, total: int) -> None:
        if not holder:
            holder.append(st.progress(0.0))
        if not total:  # the first second: the archive's index is read, nothing decoded yet
            holder[0].progress(0.0, text="Reading the data set's list of images (seconds)...")
            return
        holder[0].progress(
            min(done / max(total, 1), 1.0),
            text=f"Decoding the data set once (cached afterwards): {done:,} / {total:,} images",
        )

    return report, lambda: holder[0].empty() if holder else None


def data(size: int | None = None):
    """The data set chosen in the sidebar (at `size`: default, the size it was last decoded
    at), or None (with the reason in session state)."""
    path = _state.data_path()
    if not path:
        st.session_state["tv_data_error"] = "no Tiny ImageNet found"
        return None
    report, clear = _decode_progress()
    try:
        loaded = _cache.load_data(path, report, size)
    except DataError as e:
        st.session_state["tv_data_error"] = str(e)
        return None
    finally:
        clear()
    return loaded


def require_data():
    """The data set, or a page-wide explanation of how to get it (and the page stops)."""
    d = data()
    if d is not None:
        return d
    st.warning(f"This page needs the Tiny ImageNet images: {st.session_state['tv_data_error']}.")
    st.markdown(describe_missing().replace("\n", "  \n"))
    if st.button("Download Tiny ImageNet (about 250 MB) into ./data/", icon=":material/download:"):
        bar = st.progress(0.0, text="Downloading...")
        try:
            path = download(
                progress=lambda done, total: bar.progress(
                    min(done / total, 1.0) if total else 0.0,
                    text=f"Downloading: {done / 2**20:,.0f} MB",
                )
            )
            st.session_state["tv_data_pending"] = str(path)  # the sidebar picks it up
            st.rerun()
        except DataError as e:
            st.error(str(e))
    st.stop()


def data_for(run: Run, data):
    """The data set at the image size `run` was trained at (decoded once more, the first
    time, when the data set was last decoded at another size)."""
    if data.size == run_size(run):
        return data
    return data_at(run_size(run)) if data is not None else None


def data_at(size: int):
    d = data(size)
    if d is None:
        st.error(plain(st.session_state.get("tv_data_error", "no data set")))
        st.stop()
    return d


def run_size(run: Run) -> int:
    """The side of the images a run was trained on (runs from before sizes: 64)."""
    return run.config.data.size or 64


def model_input(run: Run, up) -> np.ndarray:
    """An upload as the run's model sees it: the centre square at the run's image size."""
    size = run_size(run)
    return up.rgb if len(up.rgb) == size else up.square(size)
