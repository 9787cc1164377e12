"""Widgets shared by the pages: the sidebar, the "needs ..." stops, images and charts.

Only choosing and drawing: what is drawn comes from `tinyviz` (through `pages._cache`).
Names of files and classes are drawn as plain text (`st.text`, or escaped before Markdown),
never interpreted: a file called `**x**![](http://...)` must not fetch anything.
"""

from __future__ import annotations

import html
import re
from typing import NamedTuple

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from pages import _cache, _state
from tinyviz.data import DataError, describe_missing, download
from tinyviz.demo import heatmaps
from tinyviz.errors import TinyvizError
from tinyviz.io import shown_name
from tinyviz.runs import Run

# Where Streamlit's Markdown would make a link of escaped text too (GFM autolinks:
# "http://", "www.", "a@b.c"): an invisible word joiner after these breaks the link.
_AUTOLINK = re.compile(r"(?i)www(?=\.)|@|\\:(?=//)")


def plain(text: str) -> str:
    """`text` made safe for `st.markdown`: every Markdown, HTML and LaTeX character escaped,
    and URLs and e-mail addresses shown as text, not links."""
    out = str(text).replace("\\", "\\\\")
    for ch in "`*_{}[]<>#!|$~:":
        out = out.replace(ch, "\\" + ch)
    out = _AUTOLINK.sub(lambda m: m.group(0) + "\u2060", out)
    return " ".join(out.split())


def file_name(name) -> str:
    """A file or run folder name for `st.markdown`: characters that hide or reorder text
    written as escapes (`tinyviz.io.shown_name`, as everywhere a name is shown), then `plain`."""
    return plain(shown_name(name))


# ---------------------------------------------------------------- data set


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


# -------------------------------------------------------------------- runs


NO_RUNS = (
    "No trained run found: train one on the Train page (or with `tinyviz train`), or "
    "add a run folder in the sidebar."
)


def require_runs() -> list[Run]:
    """Every run found, or a page-wide note that there is none (and the page stops)."""
    runs = _state.all_runs()
    if not runs:
        st.warning(NO_RUNS)
        st.stop()
    return runs


def require_run() -> Run:
    """The sidebar's run, or the same note as `require_runs`."""
    require_runs()
    return _state.current_run()


def require_matching_run(data) -> Run:
    """The sidebar's run if it was trained on the data set's classes; else a message and stop."""
    run = require_run()
    if list(run.wnids) != list(data.classes.wnids):
        st.error(
            f"**{plain(run.name)}** was trained on {len(run.wnids)} classes that are not "
            f"this data set's {len(data.classes.wnids)} classes, so its predictions "
            "cannot be compared with these images. Choose another run in the sidebar, or "
            "the data set it was trained on.",
            icon=":material/block:",
        )
        st.stop()
    return run


def run_label(run: Run) -> str:
    return f"{shown_name(run.name)}  ({run.model_name}, {run.top1:.1%})"


def run_labels(runs) -> dict[str, str]:
    """The run picker's label of each run (by path): runs of the same name in two roots
    also say which folder holds them (`roots.where`)."""
    from collections import Counter

    from tinyviz.runs import roots

    twice = Counter(r.name for r in runs)
    return {
        str(r.path): run_label(r) + (f" · in {roots.where(r.path)}" if twice[r.name] > 1 else "")
        for r in runs
    }


# ---------------------------------------------------------- cached analysis


def analysis_progress(message: str):
    """A progress bar for a long first computation; returns (callback, clear)."""
    bar = st.progress(0.0, text=message)

    def report(fraction: float, text: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=f"{message} {text}")

    return report, bar.empty


def ensure_analysis(run: Run, data):
    """The run's stored analysis of the validation set, never computed in this script run.

    One question to the backend (`analysis_job.gate`, which starts or follows the background
    job shared by every session): the full set when it is stored; else the stratified subset
    under a note with the job's progress; when nothing is stored yet, the job's progress
    alone, and the page stops there. The page reruns by itself when the subset or the full
    set arrives.
    """
    from tinyviz.explain import analysis_job

    gate = analysis_job.gate(run, data)
    if gate.note:
        st.warning(gate.note, icon=":material/report:")  # a bad stored file counts as missing
    if not gate.drawable:
        st.fragment(_job_panel, run_every=2)(run, data, gate)
        st.stop()
    an = _cache.analysis(str(gate.folder))
    st.session_state["tv_an_sample"] = (len(an.outputs), an.total) if an.partial else None
    if gate.state != "ready":
        st.fragment(_job_panel, run_every=3)(run, data, gate)
    return an


def _job_panel(run: Run, data, first) -> None:
    """The background job's progress, drawn from the gate (asked again at each of the
    fragment's runs); reruns the page when a new stage is stored. `first` is the script
    run's gate: what the page drew."""
    from tinyviz.explain import analysis, analysis_job, speed

    gate = analysis_job.gate(run, data)
    if gate.stage != first.stage:
        st.rerun(scope="app")
    if gate.state == "failed":
        st.error(
            f"The analysis of **{plain(run.name)}** failed: {plain(gate.reason)}",
            icon=":material/error:",
        )
        if st.button("Try again", icon=":material/replay:", key="tv_an_retry"):
            analysis_job.gate(run, data, retry=True)
            st.rerun(scope="app")
        return
    job = gate.job
    sample = f"a first sample of {job.subset:,} images ({analysis.SUBSET_PER_CLASS} per class)"
    if gate.state == "running":
        soon = gate.first_eta_seconds
        when = f" in {speed.duration(soon)}" if soon is not None else ""
        st.info(
            f"**First look at {plain(run.name)}**: its predictions, features and channel "
            f"responses on the {job.total:,} validation images are being computed in the "
            "background, once, and stored with the run. "
            + (f"The page draws {sample}{when}, then the full set. " if job.subset else "")
            + "You can close this tab or switch pages: the job goes on, and every visitor "
            "looking at this run shares it.",
            icon=":material/hourglass_top:",
        )
    else:
        st.info(
            f"Showing {sample} of the {job.total:,} validation images: the full set is "
            "being analysed in the background, and the page switches to it when it is ready.",
            icon=":material/hourglass_top:",
        )
    st.progress(job.fraction, text=analysis_job.describe(job))


class AnalysisKey(NamedTuple):
    """What an explain page's derived results depend on: the cache key of its
    `st.cache_data` functions (a tuple, so Streamlit hashes it as one)."""

    run: str  # the run folder
    stamp: tuple  # its weights' size and mtime (`Run.stamp`): new weights, new results
    data_cache: str  # the decoded data set
    folder: str  # the analysis folder drawn: `_cache.analysis(key.folder)`
    epoch: int | None  # the epoch slider's choice (None: the final weights)


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


def analysis_start(title: str, caption: str):
    """The common start of the analysis pages: heading, the data set, a run trained on it,
    its stored validation outputs (`ensure_analysis`: the page stops while there are none)
    and an `AnalysisKey` for what the page derives from them. With epoch views, the
    outputs and the folder are those of the epoch chosen on the slider (`epoch_choice`)."""
    st.header(title)
    st.caption(caption)
    data = require_data()
    run = require_matching_run(data)
    data = data_for(run, data)
    an, epoch = epoch_choice(run, data, ensure_analysis(run, data))
    key = AnalysisKey(str(run.path), run.stamp, str(data.cache), str(an.folder), epoch)
    return data, run, an.outputs, key


def final_analysis(run: Run, data):
    """The run's own stored analysis (after `analysis_start`: there is one), whichever
    epoch the slider shows: the last stop of the embeddings' aligned maps."""
    from tinyviz.explain import analysis

    return _cache.analysis(str(analysis.available(run.path, data)))


EPOCH_KEY = "tv_epoch"  # the slider
CHOSEN_EPOCH = "tv_epoch_chosen"  # its choice, kept in the session: it follows the visitor


def _remember_epoch() -> None:
    st.session_state[CHOSEN_EPOCH] = st.session_state[EPOCH_KEY]


def epoch_choice(run: Run, data, final):
    """With epoch views (`tinyviz train --epoch-views`), a slider over the epochs whose
    analysis is stored, then "final"; returns the chosen analysis and its epoch (None for
    the final weights, `final`, which is also what a run without views gets). The choice
    is the session's, so Confusion, Channels and Embeddings show the same epoch."""
    from tinyviz.explain import epochs

    views = epochs.views(run, data)
    stored = [v for v in views if v.analysed]
    if not stored:
        return final, None
    options = [v.epoch for v in stored] + [epochs.FINAL]
    kept = st.session_state.get(CHOSEN_EPOCH, epochs.FINAL)
    st.session_state[EPOCH_KEY] = kept if kept in options else epochs.FINAL
    top1 = {v.epoch: v.top1 for v in stored}
    chosen = st.select_slider(
        "Epoch",
        options,
        key=EPOCH_KEY,
        on_change=_remember_epoch,
        format_func=lambda e: "final" if e == epochs.FINAL else f"epoch {e}",
        help="The run as it was at the epochs it kept a view of (`--epoch-views`): weights "
        "in half precision and their own analysis. Final: the run's weights. "
        + ", ".join(f"epoch {e}: {t:.1%} top-1" for e, t in top1.items() if t is not None),
    )
    missing = [v.epoch for v in views if not v.analysed]
    if missing:
        st.caption(
            f"Epoch {', '.join(map(str, missing))}: no analysis stored yet, so not on the "
            "slider; `tinyviz analyse RUN` computes it."
        )
    if chosen == epochs.FINAL:
        return final, None
    an = _cache.analysis(str(next(v.folder for v in stored if v.epoch == chosen)))
    st.session_state["tv_an_sample"] = (len(an.outputs), an.total) if an.partial else None
    return an, int(chosen)


def measured_on(
    n_images: int, what: str = "single model, no test-time augmentation", epoch: int | None = None
) -> str:
    """The caption line every figure carries: what it was measured on (a sample, while
    the page draws the stratified subset of `ensure_analysis`; the weights of `epoch`, when
    the epoch slider is on one)."""
    sample = st.session_state.get("tv_an_sample")
    when = f", weights of epoch {epoch}" if epoch else ""
    if sample and sample[0] == n_images:
        return (
            f"Measured on a first sample of the validation set: {n_images:,} of its "
            f"{sample[1]:,} images (the same number of each class), {what}{when}."
        )
    return f"Measured on the validation set: {n_images:,} images, {what}{when}."


# ----------------------------------------------------------------- sidebar


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
            labels = run_labels(found.runs)
            if st.session_state.get(_state.RUN_KEY) not in options:
                st.session_state[_state.RUN_KEY] = str(_state.default_run(list(found.runs)).path)
            chosen = st.selectbox("Run", options, format_func=labels.get, key=_state.RUN_KEY)
            _cache.warm_run(next(r for r in found.runs if str(r.path) == chosen), path)
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


# ------------------------------------------------------------------ images

UPLOAD_TYPES = "JPEG, PNG, WEBP, GIF, BMP, TIFF or HEIC"
# The browser refuses a file that is too large or of another type before it is sent, and
# says why only on hover: the rules stay under the uploader, and each refused file's chip
# shows its reason in red.
_UPLOAD_CSS = (
    "<style>[data-testid=stFileChip] [role=alert]{position:static;width:auto;height:auto;"
    "clip:auto;clip-path:none;overflow:visible;white-space:normal;margin-left:.5rem;"
    "color:#b91c1c;font-size:.8rem}</style>"
)


def image_uploader(label: str, key: str, *, multiple: bool = False, where=None):
    """A file uploader for photos (`st.file_uploader`, typed), with its rules written under it.

    Its types end in MIME types, so Streamlit leaves the check of a file's name to us: a
    crafted request can deliver a file of any name, which Streamlit would refuse with an
    exception, drawn as a traceback box; `load_upload` reads the content, which no name can
    fake, and refuses it in one line.
    """
    from tinyviz.demo import images

    where = where or st
    images.prepare()  # a decoder worker starts while the visitor picks a photo
    st.html(_UPLOAD_CSS)
    files = where.file_uploader(
        label,
        type=list(images.UPLOAD_TYPES),
        accept_multiple_files=multiple,
        key=key,
        max_upload_size=images.BROWSER_MAX_MIB,
    )
    where.caption(
        f"Up to {images.describe_size(images.MAX_BYTES)} a file: {UPLOAD_TYPES}. "
        "A file marked in red was not taken: too large, or another type."
    )
    return files


def enlarge(rgb, px: int = 128):
    """A small image scaled up for display (bicubic), so 64 x 64 pictures are not tiny."""
    return Image.fromarray(np.asarray(rgb, np.uint8)).resize((px, px), Image.Resampling.BICUBIC)


def run_size(run: Run) -> int:
    """The side of the images a run was trained on (runs from before sizes: 64)."""
    return run.config.data.size or 64


def model_input(run: Run, up) -> np.ndarray:
    """An upload as the run's model sees it: the centre square at the run's image size."""
    size = run_size(run)
    return up.rgb if len(up.rgb) == size else up.square(size)


def big(rgb: np.ndarray, size: int = 192) -> np.ndarray:
    """A small image enlarged with square pixels, so 64 x 64 stays honest on screen."""
    return np.asarray(
        Image.fromarray(np.asarray(rgb, np.uint8)).resize((size, size), Image.Resampling.NEAREST)
    )


def image_grid(images, captions: list[str], per_row: int = 8, px: int = 128) -> None:
    """Images (H x W x 3 uint8) in rows of `per_row`, each with a small caption."""
    for start in range(0, len(images), per_row):
        cols = st.columns(per_row)
        for col, img, cap in zip(
            cols, images[start : start + per_row], captions[start : start + per_row], strict=False
        ):
            col.image(enlarge(img, px), caption=cap, width="stretch")


# ------------------------------------------------------------------ charts


def many_marks(chart):
    """`chart` drawn on a canvas, without per-mark ARIA descriptions. Streamlit picks the
    canvas only above 2,000 data points, so a confusion matrix of 1,500 cells was drawn as
    1,500 SVG nodes, and Vega-Lite builds each mark's spoken description with an
    interpreted expression: together a second of the browser's time on a small machine."""
    return chart.properties(usermeta={"embedOptions": {"renderer": "canvas"}}).configure_mark(
        aria=False
    )


def top5_chart(
    pred, full_names: dict[str, str] | None = None, *, true_class: int | None = None
) -> alt.Chart:
    """Horizontal bars of a `Prediction`, most probable on top; full names on hover.

    With `true_class`, its bar is green and the others grey (else the top bar is blue).
    """
    full_names = full_names or {}
    names = list(pred.names)
    pairs = list(zip(names, pred.wnids, strict=True))
    labels = [n if names.count(n) == 1 else f"{n} ({w})" for n, w in pairs]
    rows = pd.DataFrame(
        {
            "class": labels,
            "p": pred.probs,
            "wnid": pred.wnids,
            "rank": range(len(labels)),
            "full": [full_names.get(w, n) for n, w in pairs],
            "hit": [
                (c == true_class) if true_class is not None else i == 0
                for i, c in enumerate(pred.classes)
            ],
        }
    )
    y = alt.Y(
        "class:N",
        sort=labels,
        title=None,
        axis=alt.Axis(labelLimit=190, labelFontSize=13, ticks=False, domain=False),
    )
    x = alt.X("p:Q", title=None, scale=alt.Scale(domain=[0, 1]), axis=None)
    tip = [
        alt.Tooltip("full:N", title="class"),
        alt.Tooltip("wnid:N"),
        alt.Tooltip("p:Q", title="probability", format=".1%"),
    ]
    base = alt.Chart(rows).encode(y=y, x=x, tooltip=tip)
    hit = "#2e9d4a" if true_class is not None else "#1c6fd1"
    bars = base.mark_bar(cornerRadiusEnd=3, height=20).encode(
        color=alt.condition("datum.hit", alt.value(hit), alt.value("#a9b4c2"))
    )
    outside = (
        base.transform_filter("datum.p < 0.78")
        .mark_text(align="left", dx=4, fontSize=13)
        .encode(text=alt.Text("p:Q", format=".1%"))
    )
    inside = (
        base.transform_filter("datum.p >= 0.78")
        .mark_text(align="right", dx=-4, fontSize=13, color="white", fontWeight="bold")
        .encode(text=alt.Text("p:Q", format=".1%"))
    )
    return (
        (bars + outside + inside)
        .properties(height=28 * len(labels) + 8)
        .configure_view(stroke=None)
    )


def heat_scale(low: str = "low", high: str = "high", **blend) -> None:
    """The colour scale of the heat maps drawn next to it: a strip of the very colours
    (`heatmaps.colour_stops(**blend)`, the same blending as the maps), `low` to `high`."""
    stops = ", ".join(heatmaps.colour_stops(**blend))
    st.html(
        '<div style="display:flex;align-items:center;gap:.5em;font-size:.8rem;color:#555">'
        f"<span>{html.escape(low)}</span>"
        '<div style="flex:1;min-width:60px;height:12px;border-radius:3px;'
        f'border:1px solid #ddd;background:linear-gradient(to right, {stops})"></div>'
        f"<span>{html.escape(high)}</span></div>"
    )


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
    keyed(
        c[1].select_slider,
        "Corner crop (px, 0 = off)",
        "crop",
        sorted({0, 40, 48, 56, st.session_state[f"{prefix}crop"]}),
    )
    keyed(c[2].slider, "Brightness ±", "brightness", 0.0, 0.5, step=0.05)
    keyed(c[2].slider, "Contrast ±", "contrast", 0.0, 0.5, step=0.05)
    keyed(c[3].slider, "Mixup α (0 = off)", "mixup", 0.0, 1.0, step=0.1)
    keyed(c[3].slider, "CutMix α (0 = off)", "cutmix", 0.0, 2.0, step=0.1)
    keyed(c[4].slider, "Share of batches mixed", "mix_prob", 0.0, 1.0, step=0.1)
