"""The data set a page needs: opened, or downloaded and decoded first, with progress.

`require_data` is the start of every page that shows images: the data set chosen in the
sidebar, or a page-wide note saying how to get it (and the page stops there). `data_for`
gives it at the image size a run was trained at, and `model_input` an upload as that run's
model sees it.

Nothing slow happens in a script run: a data set decoded before opens in milliseconds; a
small one (`tinyviz.data.cache.is_small`: a second or two) is decoded here; a large one is
decoded by a background process (`start_decode`: `tinyviz data PATH`), shared by every
session and the command line, and the page follows it in a fragment that reruns the page
when the cache is complete. The download is a background process too (`start_download`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from pages import _cache, _state
from pages._text import plain
from tinyviz.data import DataError, cache, describe_missing, locate, open_decoded
from tinyviz.data.download import FILENAME, download_task, start_download
from tinyviz.explain import speed
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
    at), or None (with the reason in session state). While a background process decodes
    it, its progress is drawn and the page stops here."""
    path = _state.data_path()
    if not path:
        st.session_state["tv_data_error"] = "no Tiny ImageNet found"
        return None
    try:
        src = locate(path)
        loaded = open_decoded(src, size=size)  # milliseconds: no file list is read
        if loaded is not None:
            return loaded
        task = cache.decode_task(src.resolve(), _size(src, size))
        now = task.state()
        if not now.active and cache.is_small(src):
            return _decode_here(path, size)  # a second or two: not worth a process
        if now.state == "failed" and not st.session_state.pop(RETRY_DECODE, False):
            st.session_state[RETRY_DECODE + "_offer"] = True
            raise DataError(now.error.removeprefix("error: "))
        if not now.active:
            task.clear()
            cache.start_decode(src, size)
    except DataError as e:
        st.session_state["tv_data_error"] = str(e)
        return None
    _follow(task, "decode")
    st.stop()


RETRY_DECODE = "tv_data_retry"  # set by "Try again": a failed decode is started anew


def _size(src, size: int | None) -> int:
    return cache.check_size(size) if size else cache.last_size(cache.cache_root(), src.resolve())


def _decode_here(path: str, size: int | None):
    report, clear = _decode_progress()
    try:
        return _cache.load_data(path, report, size)
    finally:
        clear()


def _follow(task, what: str) -> None:
    """The background task's progress, asked again every second; the page is drawn anew
    when it has ended (the data set is there, or the page says why not)."""
    st.info(
        "Decoding the data set once, in the background: every later visit, and every other "
        "visitor, opens it at once. You can switch pages or close the tab meanwhile."
        if what == "decode"
        else "Downloading Tiny ImageNet (about 250 MB) into ./data/, in the background.",
        icon=":material/hourglass_top:",
    )
    st.fragment(_progress_of, run_every=1)(task)


def _progress_of(task) -> None:
    now = task.state()
    if not now.active:
        st.rerun(scope="app")
    eta = now.eta_seconds
    left = f" ({speed.duration(eta)} left)" if eta is not None else ""
    text = now.message if now.state == "running" else "starting (a few seconds)"
    if now.state == "waiting":
        text = f"waiting for {now.place} other task(s) to finish"
    st.progress(now.fraction, text=f"{text[:1].upper()}{text[1:]}{left}")


def require_data():
    """The data set, or a page-wide explanation of how to get it (and the page stops)."""
    d = data()
    if d is not None:
        return d
    downloading = download_task(DOWNLOAD_TO.resolve())
    if downloading.state().active:
        _follow(downloading, "download")
        st.stop()
    if downloading.state().state == "done" and (DOWNLOAD_TO / FILENAME).exists():
        downloading.clear()
        st.session_state["tv_data_pending"] = str((DOWNLOAD_TO / FILENAME).resolve())
        st.rerun()  # the sidebar picks it up
    st.warning(f"This page needs the Tiny ImageNet images: {st.session_state['tv_data_error']}.")
    if st.session_state.pop(RETRY_DECODE + "_offer", False) and st.button(
        "Try again", icon=":material/replay:", key="tv_data_again"
    ):
        st.session_state[RETRY_DECODE] = True
        st.rerun()
    st.markdown(describe_missing().replace("\n", "  \n"))
    if downloading.state().state == "failed":
        st.error(plain(downloading.state().error.removeprefix("error: ")))
    if st.button("Download Tiny ImageNet (about 250 MB) into ./data/", icon=":material/download:"):
        downloading.clear()
        start_download(DOWNLOAD_TO.resolve())
        st.rerun()
    st.stop()


DOWNLOAD_TO = Path("data")  # where the Download button puts the zip (the server's ./data/)


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
