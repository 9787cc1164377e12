"""Caches shared by the pages: models, analysis arrays, predictions, saliency maps.

`st.cache_resource` objects are shared by every session and thread: the services that use a
cached model take `tinyviz.runtime.locks.model_lock`, so sessions never see each other's
hooks. Entries are bounded (`max_entries`), so the server's memory stays flat however many
visitors come and go: at most 8 models for the explain pages and 4 for Classify (with 16
layer descriptions), 2 snapshot ensembles, 4 analyses, 4 class-name lists, 256 top-5 lists,
256 looks (an image's features and logits) and 256 saliency maps (64 x 64) are held here at
once; the pages' own caches are bounded the same way (see their `max_entries`).

Classify has model objects of its own (`lane=CLASSIFY`): an explain page holds its model's
lock for as long as its short work takes (a cell's channel pushes, three saliency maps: up to
seconds on a busy CPU), and a visitor's photo must not wait for another visitor's
explanation. Its models are also kept apart from the explain pages' in the cache, so a crowd
going through every run never evicts them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import threading
import weakref
from collections.abc import Callable
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
from tinyviz.runtime import stacks
from tinyviz.runtime.device import limit_threads, share_interpreter
from tinyviz.runtime.janitor import Janitor, limit_arenas

EXPLAIN, CLASSIFY = "explain", "classify"  # whose model objects (see above)


@st.cache_resource(show_spinner=False, max_entries=8)
def _explain_model(
    path: str, stamp: tuple[int, int], snapshot: str | None, device: str, epoch: int | None = None
):
    return load_model(Path(path), snapshot=snapshot, device=device, epoch=epoch)


@st.cache_resource(show_spinner=False, max_entries=4)
def _classify_model(path: str, stamp: tuple[int, int], snapshot: str | None, device: str):
    return load_model(Path(path), snapshot=snapshot, device=device)


def _model(
    path: str,
    stamp: tuple[int, int],
    snapshot: str | None,
    device: str,
    epoch: int | None = None,
    lane: str = EXPLAIN,
):
    if lane == CLASSIFY and epoch is None:
        return _classify_model(path, stamp, snapshot, device)
    return _explain_model(path, stamp, snapshot, device, epoch)


_HANDED: dict[tuple, None] = {}  # the latest models handed to a page (`model`), in order
_HANDED_LOCK = threading.Lock()


def model(run: Run, snapshot: str | None = None, epoch: int | None = None, lane: str = EXPLAIN):
    """The run's model (a snapshot's, or an epoch view's), shared across sessions (Classify's
    apart: `lane`); reloaded when its weights change.

    Its spinner is drawn here, in the page's run, not by the cache: the warm-up threads
    call `_model` from no page, where a spinner has nowhere to go and Streamlit warned
    "missing ScriptRunContext" for it. And only for a model no page was handed yet: each
    `st.spinner` starts a timer thread, and a thread's start waits for the interpreter lock
    (10-25 ms with one to six other busy threads): twice per photo on Classify, in a crowd.
    A model the cache let go meanwhile loads again without one."""
    args = (str(run.path), run.stamp, snapshot, _state.device(), epoch, lane)
    if args in _HANDED:
        return _model(*args)
    with st.spinner("Loading the model..."):
        net = _model(*args)
    with _HANDED_LOCK:
        _HANDED[args] = None
        while len(_HANDED) > 32:
            del _HANDED[next(iter(_HANDED))]
    return net


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


def prediction(run: Run, rgb: np.ndarray, ensemble: int = 0, lane: str = EXPLAIN):
    """Top-5 of the run (or of its `ensemble` best snapshots) on a 64 x 64 image; cached."""
    return _prediction(
        str(run.path), run.stamp, ensemble, image_key(rgb), _state.device(), rgb, lane
    )


@st.cache_resource(show_spinner=False, max_entries=256)
def _prediction(
    path: str,
    stamp: tuple[int, int],
    ensemble: int,
    key: str,
    device: str,
    _rgb: np.ndarray,
    lane: str = EXPLAIN,
):
    run = open_run(Path(path))
    nets = (
        _snapshot_models(path, stamp, ensemble, device)
        if ensemble
        else [_model(path, stamp, None, device, lane=lane)]
    )
    label = f"{run.name}, {len(nets)} snapshots" if ensemble else run.name
    if not ensemble and predict.one_pass(nets[0]):  # the pass the familiarity check reads too
        seen = _look(path, stamp, key, device, _rgb, lane)
        return predict.from_look(seen, run.class_names, run.wnids, label=label)
    for net in nets:
        _warm(
            net,
            "forward",
            lambda net=net: predict.predict_ensemble([net], _rgb, run.class_names, run.wnids),
        )
    return predict.predict_ensemble(nets, _rgb, run.class_names, run.wnids, label=label)


@st.cache_resource(show_spinner=False, max_entries=256)
def _look(path: str, stamp: tuple[int, int], key: str, device: str, _rgb, lane: str = EXPLAIN):
    """One forward pass of the run's model (final weights) on an image, `predict.look`:
    its top-5 (`_prediction`) and its familiarity (`pages._familiar`) are both read from
    it, so a photo costs each model one pass for the two."""
    net = _model(path, stamp, None, device, lane=lane)
    _warm(net, "features", lambda: predict.look(net, _rgb))
    return predict.look(net, _rgb)


def attribution(
    run: Run,
    rgb: np.ndarray,
    target: int,
    method: str,
    layer: str | None = None,
    snapshot: str | None = None,
    lane: str = EXPLAIN,
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
        lane,
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
    lane: str = EXPLAIN,
):
    net, x = _model(path, stamp, snapshot, device, lane=lane), to_model_input(_rgb)
    _warm(net, "backward", lambda: explain.attribute(net, x, target, "gradient"))
    return explain.attribute(net, x, target, method, layer=layer)


WARM_MODULES = (  # what the explain pages import: scikit-learn, SciPy, captum, plotly, matplotlib
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
    "matplotlib.figure",
)


SERVER_THREADS = 1  # torch threads per operation in the server: sessions run side by side


WARM_UP_THREAD = "tinyviz-warm-up"  # its thread's name (the tests wait for it: conftest.py)


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Import the explain pages' libraries in the background, once per server: they take
    seconds to import, and a visitor's first click on such a page should not wait for it
    (an import the page needs meanwhile simply waits for this one to finish). Also keeps
    torch in the server to one thread per operation (`limit_threads`): each session's
    script runs in a thread of its own, and the heavy work runs in niced workers; and, once
    the libraries are in, hands the interpreter between those threads more often
    (`share_interpreter`). Not before: importing them parses source with `ast.parse`
    (matplotlib's settings, torch's scripted functions: about fifty times), and CPython
    3.11's `ast.parse` in two threads at once can fail ("AST constructor recursion depth
    mismatch", seen in the tests) when the interpreter changes hands mid-parse, as it does
    sooner at a short interval; Streamlit compiles the pages meanwhile with `ast.parse`. And
    starts the server's `Janitor`, which gives memory back once a crowd has left, and lets
    `kill -USR1` print every thread's stack (`stacks`: where a stuck page waits)."""
    limit_threads(SERVER_THREADS)
    stacks.enable()
    _janitor()

    def work() -> None:
        for name in WARM_MODULES:
            with contextlib.suppress(Exception):  # the page itself will say what is wrong
                importlib.import_module(name)
        share_interpreter()

    thread = threading.Thread(target=work, name=WARM_UP_THREAD, daemon=True)
    thread.start()
    return thread


_FORGETTABLE: dict[str, Callable] = {}  # the pages' own caches that `_forget` drops as well


def forgettable(cached: Callable) -> Callable:
    """Mark a page's shared cache (an `st.cache_resource` function) as one that `_forget`
    drops with the explain pages' models once the server is quiet: matrices, maps, sprite
    sheets and sanity reports a crowd left behind. Applied where the page defines it (a
    page's script defines it again on every run: the latest definition is kept)."""
    _FORGETTABLE[f"{cached.__module__}.{cached.__qualname__}"] = cached
    return cached


@st.cache_resource(show_spinner=False)
def _janitor() -> Janitor:
    limit_arenas()  # before most sessions' threads: their freed heap stays reusable
    return Janitor(forget=_forget).start()


def _forget() -> None:
    """Once the server has been quiet a while (a crowd has left, `Janitor`): close the
    sessions of tabs closed long enough ago (`close_left_sessions`: they hold on to what
    their pages used), drop the explain pages' models, layer descriptions, snapshot ensembles
    and analyses (a crowd going through every run left them all loaded: a quarter of a GB for
    the shipped runs) with the pages' own caches (`forgettable`, and every `st.cache_data`),
    and let the sidebar warm the next chosen run again. Classify's models stay: its first
    photo must load nothing."""
    close_left_sessions()
    with _HANDED_LOCK:
        _HANDED.clear()
    caches = (_explain_model, _layers, _snapshot_models, _analysis, _warm_run)
    for cached in (*caches, *list(_FORGETTABLE.values())):
        cached.clear()
    st.cache_data.clear()


def close_left_sessions(wait: float = 10.0) -> int:
    """Shut down the sessions of tabs that closed more than `server.disconnectedSessionTTL`
    seconds ago; returns how many.

    Streamlit keeps a closed tab's session (its state, its uploads and images, and through
    them what its pages used: models, analyses) in case the tab reconnects, and lets it go
    only when another tab disconnects later, without shutting it down (streamlit issue
    12506): after a crowd has left nothing comes to let theirs go, and over a long day their
    uploads stay in memory. Their store is Streamlit's own (this version's: where another
    keeps it elsewhere, nothing happens), and sessions are shut down on the server's event
    loop, as Streamlit does it."""
    from streamlit import runtime

    if not runtime.exists():
        return 0
    rt = runtime.get_instance()
    try:
        stored = rt._session_mgr._session_storage._cache  # a TTLCache of SessionInfo
        loop = rt._get_async_objs().eventloop
        expire = stored.expire
    except (AttributeError, RuntimeError):
        return 0
    closed, done = [], threading.Event()

    def close() -> None:
        try:
            for _, info in expire():
                info.session.shutdown()
                closed.append(info)
        finally:
            done.set()

    try:
        loop.call_soon_threadsafe(close)
    except RuntimeError:  # the server is stopping
        return 0
    done.wait(wait)
    return len(closed)


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
