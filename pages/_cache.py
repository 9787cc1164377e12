"""Caches shared by the pages: models, analysis arrays, predictions, saliency maps.

`st.cache_resource` objects are shared by every session and thread: the services that use a
cached model take `tinyviz.runtime.locks.model_lock`, so sessions never see each other's
hooks. Entries are bounded (`max_entries`), so the server's memory stays flat however many
visitors come and go: at most 8 models (with 16 layer descriptions), 2 snapshot ensembles,
4 analyses, 4 class-name lists, 256 top-5 lists and 256 saliency maps (64 x 64) are held
here at once; the pages' own caches are bounded the same way (see their `max_entries`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import threading
import weakref
from pathlib import Path

import numpy as np
import streamlit as st

from pages import _state
from tinyviz.data import DataError, load, open_archive, open_decoded
from tinyviz.data.batches import to_model_input
from tinyviz.demo import predict
from tinyviz.explain import analysis as analysis_store
from tinyviz.explain import saliency as explain
from tinyviz.models.describe import LayerInfo, describe_layers
from tinyviz.runs import Run, load_model, open_run


@st.cache_resource(show_spinner=False, max_entries=8)
def _model(
    path: str, stamp: tuple[int, int], snapshot: str | None, device: str, epoch: int | None = None
):
    return load_model(Path(path), snapshot=snapshot, device=device, epoch=epoch)


def model(run: Run, snapshot: str | None = None, epoch: int | None = None):
    """The run's model (a snapshot's, or an epoch view's), shared across sessions; reloaded
    when its weights change. Its spinner is drawn here, in the page's run (it shows after
    half a second, so a loaded model shows none), not by the cache: `_warm_run` calls
    `_model` from a thread of no page, where a spinner has nowhere to go and Streamlit
    warned "missing ScriptRunContext" for it."""
    with st.spinner("Loading the model..."):
        return _model(str(run.path), run.stamp, snapshot, _state.device(), epoch)


@st.cache_resource(show_spinner=False, max_entries=16)
def _layers(path: str, stamp: tuple[int, int], device: str) -> dict[str, LayerInfo]:
    return {i.name: i for i in describe_layers(_model(path, stamp, None, device))}


def layers(run: Run) -> dict[str, LayerInfo]:
    """The run's inspectable layers by module name, named for a student (one forward pass)."""
    return _layers(str(run.path), run.stamp, _state.device())


@st.cache_resource(show_spinner="Loading the snapshots...", max_entries=2)
def _snapshot_models(path: str, stamp: tuple[int, int], k: int, device: str):
    return predict.load_snapshot_ensemble(Path(path), k, device=device)


def load_data(path: str, progress, size: int | None = None):
    """Open the decoded data set (milliseconds once decoded: no file list is read again);
    `progress(done, total)`; at `size`, else the size it was last decoded at."""
    return load(path, size=size, progress=progress)


def analysis(folder: str):
    """The stored analysis in `folder` (`analysis.available`), shared by sessions."""
    try:
        stamp = (Path(folder) / analysis_store.META).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _analysis(folder, stamp)


@st.cache_resource(show_spinner=False, max_entries=4)
def _analysis(folder: str, stamp: int):
    """Read-only arrays shared by sessions (cache_resource: no copy per rerun)."""
    return analysis_store.read(Path(folder))


def val_outputs(run: Run, data):
    """The run's stored validation outputs (the full set, else the subset), or None: never
    computed here (`_gate.ensure_analysis` starts the background job)."""
    folder = analysis_store.available(run.path, data)
    return None if folder is None else analysis(str(folder)).outputs


@st.cache_data(show_spinner=False, max_entries=4)
def full_names_of_archive(path: str) -> dict[str, str]:
    """wnid -> all WordNet names, from a data set's word list (no image is decoded)."""
    try:
        classes = open_archive(path).classes
    except DataError:
        return {}
    return dict(zip(classes.wnids, classes.full_names, strict=True))


def image_key(rgb: np.ndarray) -> str:
    """A short digest of an image, to key caches by content."""
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest()[:16]


_WARM: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> passes run once


def _warm(net, what: str, run_once) -> None:
    """Run `run_once` the first time `net` does `what`, so that one-off set-up costs (memory,
    kernel selection: up to seconds on a CPU) stay out of the latencies the pages show."""
    done = _WARM.setdefault(net, set())
    if what not in done:
        run_once()
        done.add(what)


def prediction(run: Run, rgb: np.ndarray, ensemble: int = 0):
    """Top-5 of the run (or of its `ensemble` best snapshots) on a 64 x 64 image; cached."""
    return _prediction(str(run.path), run.stamp, ensemble, image_key(rgb), _state.device(), rgb)


@st.cache_resource(show_spinner=False, max_entries=256)
def _prediction(
    path: str, stamp: tuple[int, int], ensemble: int, key: str, device: str, _rgb: np.ndarray
):
    run = open_run(Path(path))
    nets = (
        _snapshot_models(path, stamp, ensemble, device)
        if ensemble
        else [_model(path, stamp, None, device)]
    )
    label = f"{run.name}, {len(nets)} snapshots" if ensemble else run.name
    for net in nets:
        _warm(
            net,
            "forward",
            lambda net=net: predict.predict_ensemble([net], _rgb, run.class_names, run.wnids),
        )
    return predict.predict_ensemble(nets, _rgb, run.class_names, run.wnids, label=label)


def attribution(
    run: Run,
    rgb: np.ndarray,
    target: int,
    method: str,
    layer: str | None = None,
    snapshot: str | None = None,
):
    """`explain.attribute` of the run's model on a 64 x 64 image; cached by content."""
    return _attribution(
        str(run.path),
        run.stamp,
        snapshot,
        image_key(rgb),
        int(target),
        method,
        layer,
        _state.device(),
        rgb,
    )


@st.cache_resource(show_spinner=False, max_entries=256)
def _attribution(
    path: str,
    stamp: tuple[int, int],
    snapshot: str | None,
    key: str,
    target: int,
    method: str,
    layer: str | None,
    device: str,
    _rgb: np.ndarray,
):
    net, x = _model(path, stamp, snapshot, device), to_model_input(_rgb)
    _warm(net, "backward", lambda: explain.attribute(net, x, target, "gradient"))
    return explain.attribute(net, x, target, method, layer=layer)


WARM_MODULES = (  # what the explain pages import: scikit-learn, SciPy, captum, plotly
    "tinyviz.explain.embed",
    "tinyviz.explain.saliency",
    "tinyviz.explain.contrastive",
    "tinyviz.explain.train_features",
    "tinyviz.explain.compare",
    "tinyviz.explain.epochs",
    "tinyviz.explain.sanity",
    "tinyviz.explain.channels",
    "tinyviz.explain.confusion",
    "tinyviz.demo.heatmaps",
    "plotly.express",
)


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Import the explain pages' libraries in the background, once per server: they take
    seconds to import, and a visitor's first click on such a page should not wait for it
    (an import the page needs meanwhile simply waits for this one to finish)."""

    def work() -> None:
        for name in WARM_MODULES:
            with contextlib.suppress(Exception):  # the page itself will say what is wrong
                importlib.import_module(name)

    thread = threading.Thread(target=work, name="tinyviz-warm-up", daemon=True)
    thread.start()
    return thread


def warm_run(run: Run | None, data_path: str) -> None:
    """Load the chosen run's stored analysis and model into the shared caches in the
    background, once per run and data set: a visitor's first explain page then finds them
    (a weights digest, an analysis read and a model load: about half a second on a CPU,
    twice that while the browser draws). Nothing when the data set was never decoded: its
    decoding shows its own progress on the page that needs it."""
    if run is not None and data_path:
        _warm_run(str(run.path), run.stamp, data_path, _state.device())


@st.cache_resource(show_spinner=False, max_entries=8)
def _warm_run(path: str, stamp: tuple[int, int], data_path: str, device: str) -> threading.Thread:
    def work() -> None:
        with contextlib.suppress(Exception):  # the page itself will say what is wrong
            data = open_decoded(data_path)
            folder = None if data is None else analysis_store.available(Path(path), data)
            if folder is not None:
                analysis(str(folder))
                _model(path, stamp, None, device)

    thread = threading.Thread(target=work, name="tinyviz-warm-run", daemon=True)
    thread.start()
    return thread
