"""Widgets and caches shared by the pages: the sidebar's data set and run, model loading.

Everything computed lives in `tinyviz`; this module only chooses, caches and draws. Cached
models are shared by every browser session (`st.cache_resource`), which is why the services
that hook into models take `tinyviz.locks.model_lock`.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from tinyviz import analysis, checkpoints, explain, models, predict
from tinyviz.data import DataError, describe_missing, download, load, locate, open_archive
from tinyviz.images import to_model_input
from tinyviz.runtime import pick_device

ROOT = Path(__file__).resolve().parents[1]
DATA_KEY, RUN_KEY, EXTRA_RUNS_KEY = "tv_data_path", "tv_run", "tv_extra_runs"
NAV_KEY, GOTO_KEY = "tv_nav", "tv_goto"


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


def _load_data(path: str):
    """Open the decoded cache (milliseconds); the first time, decode with a progress bar."""
    bar = []

    def report(done: int, total: int) -> None:
        if not bar:
            bar.append(st.progress(0.0))
        bar[0].progress(done / total, text=f"Decoding the data set once (cached afterwards): "
                                           f"{done:,} / {total:,} images")
    data = load(path, progress=report)
    if bar:
        bar[0].empty()
    return data


def data():
    """The data set chosen in the sidebar, or None (with the reason in session state)."""
    path = st.session_state.get(DATA_KEY) or default_data_path()
    if not path:
        st.session_state["tv_data_error"] = "no Tiny ImageNet found"
        return None
    try:
        return _load_data(str(Path(path).expanduser().resolve()))
    except DataError as e:
        st.session_state["tv_data_error"] = str(e)
        return None


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
            path = download(progress=lambda done, total: bar.progress(
                min(done / total, 1.0) if total else 0.0,
                text=f"Downloading: {done / 2**20:,.0f} MB"))
            st.session_state["tv_data_pending"] = str(path)  # the sidebar picks it up
            st.rerun()
        except DataError as e:
            st.error(str(e))
    st.stop()


# -------------------------------------------------------------------- runs


def runs_dir() -> Path:
    """Where the Train page puts new runs and its job lock: TINYVIZ_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("TINYVIZ_RUNS_DIR") or ROOT / "runs")


def run_roots() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("TINYVIZ_RUNS", "").split(os.pathsep) if p]
    shipped = Path(os.environ.get("TINYVIZ_CHECKPOINTS") or ROOT / "checkpoints")
    return [shipped, runs_dir(), *extra,
            *[Path(p) for p in st.session_state.get(EXTRA_RUNS_KEY, [])]]


def best_top1(run: checkpoints.Run) -> float:
    return max((m.get("val_top1", 0) for m in run.metrics), default=0)


def all_runs() -> list[checkpoints.Run]:
    """Every run found, best validation top-1 first (the sidebar's default is the best)."""
    return sorted(checkpoints.list_runs(run_roots()), key=best_top1, reverse=True)


def run_label(run: checkpoints.Run) -> str:
    return f"{run.name}  ({run.model_name}, {best_top1(run):.1%})"


def current_run() -> checkpoints.Run | None:
    """The run chosen in the sidebar."""
    runs = {str(r.path): r for r in all_runs()}
    chosen = st.session_state.get(RUN_KEY)
    if chosen in runs:
        return runs[chosen]
    return next(iter(runs.values()), None)


NO_RUNS = ("No trained run found: train one on the Train page (or with `python -m tinyviz "
           "train`), or add a run folder in the sidebar.")


def require_runs() -> list[checkpoints.Run]:
    """Every run found, or a page-wide note that there is none (and the page stops)."""
    runs = all_runs()
    if not runs:
        st.warning(NO_RUNS)
        st.stop()
    return runs


def require_run() -> checkpoints.Run:
    """The sidebar's run, or the same note as `require_runs`."""
    require_runs()
    return current_run()


@st.cache_resource(show_spinner="Loading the model...", max_entries=8)
def _model(path: str, mtime: float, snapshot: str | None):
    return checkpoints.load_model(Path(path), snapshot=snapshot, device=device())


def model(run: checkpoints.Run, snapshot: str | None = None):
    """The run's model, shared across sessions; reloaded when its weights change."""
    return _model(str(run.path), run.mtime(), snapshot)


def device() -> str:
    return str(pick_device("auto"))


# ---------------------------------------------------------- cached analysis


def analysis_progress(message: str):
    """A progress bar for a long first computation; returns (callback, clear)."""
    bar = st.progress(0.0, text=message)

    def report(fraction: float, text: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{message} {text}")
    return report, bar.empty


def ensure_analysis(run: checkpoints.Run, data) -> None:
    """Compute the run's validation outputs once (minutes on a CPU), with a progress bar."""
    if analysis.is_cached(run.path, data):
        return
    note = st.info("First visit of this run: computing its predictions, features and channel "
                   "activations on the 10,000 validation images. This is done once and cached "
                   "in the run folder; later visits are instant.")
    report, clear = analysis_progress("Analysing the validation set:")
    analysis.compute_cache(run.path, data, device=device(), progress=report)
    clear()
    note.empty()


@st.cache_resource(show_spinner=False, max_entries=4)
def _val_outputs(path: str, mtime: float, data_cache: str, _data):
    """Read-only arrays shared by sessions (cache_resource: no copy per rerun)."""
    return analysis.val_outputs(Path(path), _data, device=device())


def val_outputs(run: checkpoints.Run, data):
    ensure_analysis(run, data)
    return _val_outputs(str(run.path), run.mtime(), str(data.cache), data)


# ----------------------------------------------------------------- sidebar


def sidebar() -> None:
    """Data set and run choices, shared by every page."""
    with st.sidebar:
        st.markdown("### tinyviz")
        if "tv_data_pending" in st.session_state:
            st.session_state[DATA_KEY] = st.session_state.pop("tv_data_pending")
        if DATA_KEY not in st.session_state:
            st.session_state[DATA_KEY] = default_data_path()
        path = st.text_input("Data set (zip or folder)", key=DATA_KEY,
                             placeholder="data/tiny-imagenet-200.zip",
                             help="The official tiny-imagenet-200.zip or its extracted folder. "
                                  "Also read from TINYVIZ_DATA.")
        if not path:
            st.caption(":orange[No data set found.] Pages that need images explain how to "
                       "get it; Models and Classify work without it.")
        runs = all_runs()
        if runs:
            options = [str(r.path) for r in runs]
            labels = {str(r.path): run_label(r) for r in runs}
            if st.session_state.get(RUN_KEY) not in options:
                st.session_state[RUN_KEY] = options[0]
            st.selectbox("Run", options, format_func=labels.get, key=RUN_KEY)
        else:
            st.caption("No runs yet.")
        with st.expander("Add a run folder"):
            folder = st.text_input("Folder holding run folders (or one run)", key="tv_add_runs")
            if st.button("Add", disabled=not folder):
                extra = st.session_state.setdefault(EXTRA_RUNS_KEY, [])
                if folder not in extra:
                    extra.append(folder)
                st.rerun()


# ------------------------------------------------ analysis pages (Confusion, Channels, ...)


def require_matching_run(data) -> checkpoints.Run:
    """The sidebar's run if it was trained on the data set's classes; else a message and stop."""
    run = require_run()
    if list(run.wnids) != list(data.classes.wnids):
        st.error(f"**{run.name}** was trained on {len(run.wnids)} classes that are not this "
                 f"data set's {len(data.classes.wnids)} classes, so its predictions cannot be "
                 "compared with these images. Choose another run in the sidebar, or the data "
                 "set it was trained on.", icon=":material/block:")
        st.stop()
    return run


def measured_on(n_images: int, what: str = "single model, no test-time augmentation") -> str:
    """The caption line every figure carries: what it was measured on."""
    return f"Measured on the validation set: {n_images:,} images, {what}."


def enlarge(rgb, px: int = 128):
    """A small image scaled up for display (bicubic), so 64 x 64 pictures are not tiny."""
    from PIL import Image

    return Image.fromarray(rgb).resize((px, px), Image.Resampling.BICUBIC)


def image_grid(images, captions: list[str], per_row: int = 8, px: int = 128) -> None:
    """Images (H x W x 3 uint8) in rows of `per_row`, each with a small caption."""
    for start in range(0, len(images), per_row):
        cols = st.columns(per_row)
        for col, img, cap in zip(cols, images[start:start + per_row],
                                 captions[start:start + per_row], strict=False):
            col.image(enlarge(img, px), caption=cap, width="stretch")


# ------------------------------------------------- demo pages: runs, predictions, charts


def data_path() -> str:
    """The data set path the sidebar holds ("" when none was found)."""
    return st.session_state.get(DATA_KEY) or default_data_path()


def is_transfer(run: checkpoints.Run) -> bool:
    """Whether the run started from ImageNet-pretrained weights."""
    try:
        pretrained = models.spec(run.model_name).pretrained
    except KeyError:
        return False
    return pretrained and (run.config["model"].get("options") or {}).get("pretrained", True)


def best_runs(runs: list[checkpoints.Run]) -> list[checkpoints.Run]:
    """The best transfer run and the best from-scratch run (by validation top-1), if any."""
    picks = []
    for transfer in (True, False):
        group = [r for r in runs if is_transfer(r) == transfer]
        if group:
            picks.append(max(group, key=best_top1))
    return picks or runs[:1]


def class_full_names(runs=()) -> dict[str, str]:
    """wnid -> all WordNet names of the class: from the runs' configs (recent runs store
    them), else from the sidebar's data set's word list (no image is decoded), else empty.
    """
    names = {}
    for run in runs:
        classes = run.config.get("classes", {})
        names.update(zip(classes.get("wnids", []), classes.get("full_names", []), strict=False))
    if names:
        return names
    path = data_path()
    if not path:
        return {}
    try:
        return _full_names(str(Path(path).expanduser().resolve()))
    except DataError:
        return {}


@st.cache_data(show_spinner=False, max_entries=4)
def _full_names(path: str) -> dict[str, str]:
    classes = open_archive(path).classes
    return dict(zip(classes.wnids, classes.full_names, strict=True))


def image_key(rgb: np.ndarray) -> str:
    """A short digest of an image, to key caches by content."""
    return hashlib.sha1(np.ascontiguousarray(rgb).tobytes()).hexdigest()[:16]


@st.cache_resource(show_spinner="Loading the snapshots...", max_entries=2)
def _snapshot_models(path: str, mtime: float, k: int):
    return predict.load_snapshot_ensemble(Path(path), k, device=device())


def prediction(run: checkpoints.Run, rgb: np.ndarray, ensemble: int = 0):
    """Top-5 of the run (or of its `ensemble` best snapshots) on a 64 x 64 image; cached."""
    return _prediction(str(run.path), run.mtime(), ensemble, image_key(rgb), rgb)


_WARM: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> passes run once


def _warm(net, what: str, run_once) -> None:
    """Run `run_once` the first time `net` does `what`, so that one-off set-up costs (memory,
    kernel selection: up to seconds on a CPU) stay out of the latencies the pages show."""
    done = _WARM.setdefault(net, set())
    if what not in done:
        run_once()
        done.add(what)


@st.cache_resource(show_spinner=False, max_entries=256)
def _prediction(path: str, mtime: float, ensemble: int, key: str, _rgb: np.ndarray):
    run = checkpoints.open_run(Path(path))
    nets = _snapshot_models(path, mtime, ensemble) if ensemble else [_model(path, mtime, None)]
    label = f"{run.name}, {len(nets)} snapshots" if ensemble else run.name
    for net in nets:
        _warm(net, "forward", lambda net=net: predict.predict_ensemble(
            [net], _rgb, run.class_names, run.wnids))
    return predict.predict_ensemble(nets, _rgb, run.class_names, run.wnids, label=label)


def attribution(run: checkpoints.Run, rgb: np.ndarray, target: int, method: str,
                layer: str | None = None, snapshot: str | None = None):
    """`explain.attribute` of the run's model on a 64 x 64 image; cached by content."""
    return _attribution(str(run.path), run.mtime(), snapshot, image_key(rgb), rgb, int(target),
                        method, layer)


@st.cache_resource(show_spinner=False, max_entries=256)
def _attribution(path: str, mtime: float, snapshot: str | None, key: str, _rgb: np.ndarray,
                 target: int, method: str, layer: str | None):
    net, x = _model(path, mtime, snapshot), to_model_input(_rgb)
    _warm(net, "backward", lambda: explain.attribute(net, x, target, "gradient"))
    return explain.attribute(net, x, target, method, layer=layer)


def big(rgb: np.ndarray, size: int = 192) -> np.ndarray:
    """A small image enlarged with square pixels, so 64 x 64 stays honest on screen."""
    return np.asarray(Image.fromarray(np.asarray(rgb, np.uint8)).resize(
        (size, size), Image.Resampling.NEAREST))


def top5_chart(pred, full_names: dict[str, str] | None = None, *,
               true_class: int | None = None) -> alt.Chart:
    """Horizontal bars of a `Prediction`, most probable on top; full names on hover.

    With `true_class`, its bar is green and the others grey (else the top bar is blue).
    """
    full_names = full_names or {}
    names = list(pred.names)
    pairs = list(zip(names, pred.wnids, strict=True))
    labels = [n if names.count(n) == 1 else f"{n} ({w})" for n, w in pairs]
    rows = pd.DataFrame({
        "class": labels, "p": pred.probs, "wnid": pred.wnids, "rank": range(len(labels)),
        "full": [full_names.get(w, n) for n, w in pairs],
        "hit": [(c == true_class) if true_class is not None else i == 0
                for i, c in enumerate(pred.classes)],
    })
    y = alt.Y("class:N", sort=labels, title=None,
              axis=alt.Axis(labelLimit=190, labelFontSize=13, ticks=False, domain=False))
    x = alt.X("p:Q", title=None, scale=alt.Scale(domain=[0, 1]), axis=None)
    tip = [alt.Tooltip("full:N", title="class"), alt.Tooltip("wnid:N"),
           alt.Tooltip("p:Q", title="probability", format=".1%")]
    base = alt.Chart(rows).encode(y=y, x=x, tooltip=tip)
    hit = "#2e9d4a" if true_class is not None else "#1c6fd1"
    bars = base.mark_bar(cornerRadiusEnd=3, height=20).encode(
        color=alt.condition("datum.hit", alt.value(hit), alt.value("#a9b4c2")))
    outside = base.transform_filter("datum.p < 0.78").mark_text(
        align="left", dx=4, fontSize=13).encode(text=alt.Text("p:Q", format=".1%"))
    inside = base.transform_filter("datum.p >= 0.78").mark_text(
        align="right", dx=-4, fontSize=13, color="white", fontWeight="bold").encode(
        text=alt.Text("p:Q", format=".1%"))
    return (bars + outside + inside).properties(height=28 * len(labels) + 8).configure_view(
        stroke=None)


def augment_ui(prefix: str) -> None:
    """The widgets of every `AugmentConfig` field, in five columns, keyed `{prefix}{field}`.

    Shared by the Train page (settings of a run) and the Data page (the preview), so both
    offer the same ranges; the values are read back from session state by field name.
    """
    c = st.columns(5)

    def keyed(widget, label: str, name: str, *args, **kw):
        return widget(label, *args, key=f"{prefix}{name}", persist_state="session", **kw)

    keyed(c[0].checkbox, "Horizontal flip", "flip")
    keyed(c[0].slider, "Shift (pixels)", "translate", 0, 16)
    keyed(c[1].slider, "Rotate (degrees)", "rotate", 0.0, 45.0, step=1.0)
    keyed(c[1].select_slider, "Corner crop (px, 0 = off)", "crop",
          sorted({0, 40, 48, 56, st.session_state[f"{prefix}crop"]}))
    keyed(c[2].slider, "Brightness ±", "brightness", 0.0, 0.5, step=0.05)
    keyed(c[2].slider, "Contrast ±", "contrast", 0.0, 0.5, step=0.05)
    keyed(c[3].slider, "Mixup α (0 = off)", "mixup", 0.0, 1.0, step=0.1)
    keyed(c[3].slider, "CutMix α (0 = off)", "cutmix", 0.0, 2.0, step=0.1)
    keyed(c[4].slider, "Share of batches mixed", "mix_prob", 0.0, 1.0, step=0.1)


def analysis_start(title: str, caption: str):
    """The common start of the analysis pages: heading, the data set, a run trained on it,
    its validation outputs (computed with a progress bar on the first visit) and a cache key
    for what the page derives from them."""
    st.header(title)
    st.caption(caption)
    data = require_data()
    run = require_matching_run(data)
    out = val_outputs(run, data)
    return data, run, out, (str(run.path), run.mtime(), str(data.cache))
