"""The Confusion page's "why B and not A" section for the chosen cell (true A, answered B).

Drawing only: the maps, channel contributions and neighbours are `tinyviz.explain.contrastive`;
the training images' features are `tinyviz.explain.train_features`, computed by a background
process when a pair's are missing (a thousand training images, too many to wait for on a
CPU), never in a script run.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from pages import _cache, _defer, _images, _queued, _state
from pages._text import plain, signed
from tinyviz.data.batches import to_model_input
from tinyviz.demo.heatmaps import overlay
from tinyviz.explain import contrastive, saliency, speed, tasks, train_features, work

TASK = train_features.TASK
STARTED = "tv_ctr_started"  # the pair this session last asked for: (run folder, a, b, launched)
SHOW, CHANNELS, TOP, NEAR = 6, 4, 6, 6
METHODS = ("gradcam", "gradient", "integrated_gradients")


class ContrastKey(NamedTuple):
    """What the section's cached results depend on (hashed by Streamlit as one tuple)."""

    run: str  # the run folder
    stamp: tuple  # its weights' size and mtime: new weights, new results
    data_cache: str  # the decoded data set


@_cache.forgettable
@st.cache_resource(show_spinner=False, max_entries=64)
def _map(key: ContrastKey, image: int, a: int, b: int, method: str, _net, _rgb) -> np.ndarray:
    return contrastive.contrastive_map(_net, to_model_input(_rgb), a, b, method).heat


@_cache.forgettable
@st.cache_resource(show_spinner=False, max_entries=16)
def _contributions(key: ContrastKey, images: tuple[int, ...], a: int, b: int, _net, _data):
    return contrastive.cell_contributions(_net, _data.val.images[list(images)], a, b)


@_cache.forgettable
@st.cache_resource(show_spinner=False, max_entries=8)
def _train(key: ContrastKey, a: int, b: int, _data):
    return {k: train_features.features(Path(key.run), _data, [k]) for k in (a, b)}


@st.cache_data(show_spinner=False, max_entries=16)
def _estimate(key: ContrastKey, a: int, b: int, _net, _data) -> float:
    return train_features.estimate_seconds(_net, Path(key.run), _data, [a, b])


def section_after_paint(data, run, out, a: int, b: int, rows: np.ndarray) -> None:
    """`section`, computed once the browser has drawn the page above it (`_defer`): a second
    or two of a CPU's model passes that would otherwise delay the confusion matrix."""

    def waiting() -> None:
        _title(run, a, b)
        st.caption(
            f":material/hourglass_top: Computing the contrastive maps, channel pushes and "
            f"nearest training images of this cell's {len(rows)} images..."
        )

    what = f"contrast {run.path} {run.stamp} {a} {b} {len(rows)}"
    _defer.after_paint(what, lambda: section(data, run, out, a, b, rows), waiting)


def _title(run, a: int, b: int) -> None:
    st.subheader(f"Why {run.class_names[b]} and not {run.class_names[a]}?")


def section(data, run, out, a: int, b: int, rows: np.ndarray) -> None:
    """Why the model answers `b` for the cell's images of `a` (rows of `out`, best first)."""
    names = run.class_names
    A, B = plain(names[a]), plain(names[b])
    _title(run, a, b)
    if not len(rows):
        st.info("This cell has no image: pick a coloured cell or a pair above.")
        return
    net = _cache.model(run)
    key = ContrastKey(str(run.path), run.stamp, str(data.cache))
    images = [int(i) for i in out.image_index(rows[:SHOW])]
    _maps_ui(key, data, run, net, images, a, b, A, B)
    _channels_ui(key, data, run, out, net, [int(i) for i in out.image_index(rows)], a, b, A, B)
    _nearest_ui(key, data, run, net, images, a, b, A, B)


def _maps_ui(key, data, run, net, images, a, b, A, B) -> None:
    offered = [m for m in METHODS if m != "gradcam" or getattr(net, "gradcam_layer", None)]
    if st.session_state.get("tv_ctr_method") not in offered:  # chosen for another run
        st.session_state.pop("tv_ctr_method", None)
    method = st.segmented_control(
        "Contrastive map",
        offered,  # Grad-CAM needs a convolutional layer: a linear model has none
        format_func=lambda m: saliency.method_info(m).label,
        default=offered[0],
        required=True,
        key="tv_ctr_method",
    )
    heats = _heats(key, data, run, net, images, a, b, method)
    if heats is None:
        st.image([_images.big(data.val.images[i], 128) for i in images], width=128,
                 caption=[f"image {i}" for i in images])  # fmt: skip
        return
    shown = zip(images, heats, strict=True)
    st.image(
        [overlay(_images.big(data.val.images[i], 128), h, 0.55, weighted=True) for i, h in shown],
        caption=[f"image {i}" for i in images],
        width=128,
    )
    st.caption(
        f"{saliency.method_info(method).label} of the logit of **{B}** minus the logit of "
        f"**{A}**: the parts of each image that tip the balance towards {B}. (A map of "
        f"{B} alone would also light up all that {A} and {B} share.)"
    )


def _heats(key, data, run, net, images, a, b, method) -> list | None:
    """The cell's contrastive maps: computed here when they take a moment on this machine,
    else by a background worker (`explain.work`, "contrastive-maps"; None until stored,
    its place in the queue shown meanwhile), so they never hold up another visitor."""
    cost = speed.of_run(run, _state.device())
    seconds = len(images) * cost.saliency_seconds(saliency.method_info(method)) if cost else 0.0
    if seconds <= speed.FAST_PAGE_SECONDS or _state.device() != "cpu":
        with st.spinner("Contrastive maps..."):
            return [_map(key, i, a, b, method, net, np.asarray(data.val.images[i])) for i in images]
    req = work.Request(
        "contrastive-maps", str(run.path), str(data.source), data.size,
        {"a": int(a), "b": int(b), "method": method, "images": images, "stamp": list(run.stamp)},
    )  # fmt: skip
    maps = work.stored_maps(req, work.CONTRASTIVE)
    if maps is None:
        now = work.request(req)
        maps = work.stored_maps(req, work.CONTRASTIVE) if now.state == "done" else None
        if maps is None:
            if now.state == "failed":
                st.error(f"The contrastive maps could not be computed: {plain(now.error)}")
            else:
                label = f"The {len(images)} contrastive maps ({speed.duration(seconds)} of work)"
                _queued.follow({label: req})
            return None
    return list(maps)


def _channels_ui(key, data, run, out, net, images, a, b, A, B) -> None:
    try:
        c = _contributions(key, tuple(images), a, b, net, data)
    except ValueError as e:  # a head that is not one linear layer
        st.info(f"Channel contributions need a linear head: {plain(str(e))}.")
        return
    top = c.top(CHANNELS * 2)
    rows = pd.DataFrame(
        {
            "channel": [f"#{ch}" for ch in top],
            "push": c.mean[top],
            "feature": c.features[:, top].mean(0),
            "weight": c.weight_diff[top],
        }
    )
    na, nb = run.class_names[a], run.class_names[b]
    left, right = st.columns([2, 3], gap="medium")
    with left:
        st.markdown(f"**The channels that push towards {B} rather than {A}**")
        st.altair_chart(
            alt.Chart(rows)
            .mark_bar(color="#d62728")
            .encode(
                x=alt.X("push:Q", title=f"mean push towards {nb} (logit units)"),
                y=alt.Y("channel:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False)),
                tooltip=[
                    "channel",
                    alt.Tooltip("push:Q", format="+.3f"),
                    alt.Tooltip("feature:Q", format=".3f", title="mean feature value"),
                    alt.Tooltip("weight:Q", format="+.3f", title=f"w({nb}) − w({na})"),
                ],
            )
            .properties(height=24 * len(rows) + 40),
            width="stretch",
        )
        diff = c.logit_difference()
        st.caption(
            f"Each penultimate channel's value times its weight for {B} minus its weight for "
            f"{A}, averaged over the cell's {len(images)} images; all {len(c.mean)} channels "
            f"together give the logit difference {signed(diff.mean())} "
            f"(with the bias difference {signed(c.bias_diff)})."
        )
    with right:
        for ch in top[:CHANNELS]:
            best = out.image_index(contrastive.top_images_of_channel(out.features, int(ch), TOP))
            st.markdown(f"Channel **#{ch}** (push {c.mean[ch]:+.2f}): its top validation images")
            st.image(  # 80 px: a class name's longest word fits under it whole, legibly
                [_images.big(data.val.images[int(i)], 80) for i in best],
                caption=[run.class_names[int(data.val.labels[int(i)])] for i in best],
                width=80,
            )


def _nearest_ui(key, data, run, net, images, a, b, A, B) -> None:
    st.markdown(f"**The nearest training images of {A} and of {B}**")
    if not train_features.is_cached(run.path, data, [a, b]):
        _missing(key, data, run, net, a, b, A, B)
        return
    j = st.selectbox(
        "For the cell's image",
        range(len(images)),
        format_func=lambda k: f"{k + 1}: image {images[k]}",
        key="tv_ctr_query",
    )
    query = contrastive.image_features(net, data.val.images[[images[j]]])[0]
    stored = _train(key, a, b, data)
    cols = st.columns([1, 4, 4], gap="medium")
    cols[0].image(_images.big(data.val.images[images[j]], 96), caption="this image", width=96)
    for col, k, label in ((cols[1], a, A), (cols[2], b, B)):
        feats, idx = stored[k]
        near = contrastive.nearest_training(query, feats, idx, k, NEAR)
        col.markdown(f"{label} (its true class)" if k == a else f"{label} (the model's answer)")
        col.image(
            [_images.big(data.train.images[int(i)], 64) for i in near.indices],
            caption=[f"{d:.2f}" for d in near.distances],
            width=64,
        )
    st.caption(
        "Nearest by cosine distance of the penultimate features (under each image; 0 = same "
        f"direction), among the {len(stored[a][1]):,} training images of {A} and the "
        f"{len(stored[b][1]):,} of {B}. Nearer {B} images than {A} ones: the model has "
        f"learned to see this image as {B}."
    )


def _missing(key, data, run, net, a, b, A, B) -> None:
    """The shown pair's training features are not stored: the button computes them in the
    background; while the task runs the page says which pair it computes, and a pair asked
    for meanwhile starts when it ends (`STARTED`: run, a, b, launched)."""
    now = tasks.state(run.path, TASK)
    here = (str(run.path), a, b)
    asked = st.session_state.get(STARTED)
    mine = bool(asked) and tuple(asked[:3]) == here
    if now.active:
        doing = train_features.computing(run.path)
        if doing is None or not {a, b} <= set(doing):
            other = " and ".join(plain(run.class_names[k]) for k in doing) if doing else ""
            st.caption(
                f"Computing the features of {other or 'other classes'} first (asked for "
                "before, here or in another tab); "
                + (f"those of {A} and {B} start when it is done." if mine else "then these.")
            )
            if not mine and st.button(f"Compute {A} and {B} after it", key="tv_ctr_after"):
                st.session_state[STARTED] = (*here, False)
                st.rerun()
        st.fragment(_progress, run_every=2)(run, data, a, b)
        return
    if mine and len(asked) > 3 and not asked[3]:  # asked for while another pair's ran
        _start(run, a, b)
        st.rerun()
    if now.state == "failed":
        st.error(f"Computing the features stopped: {plain(now.error)}")
    n = len(data.train.of_class(a)) + len(data.train.of_class(b))
    guess = _estimate(key, a, b, net, data)
    st.info(
        f"This needs the model's features of the {n:,} training images of {A} and {B}: about "
        f"{guess:.0f} s on the {_state.device().upper()}, in the background, stored with the "
        "run (the Embeddings page can then draw them too).",
        icon=":material/neurology:",
    )
    if st.button("Compute them", icon=":material/play_arrow:", key="tv_ctr_go"):
        _start(run, a, b)
        st.rerun()


def _start(run, a: int, b: int) -> None:
    """Launch the task for the pair (a, b), the one on screen, and remember it was asked."""
    args = ["train-features", str(run.path), "--classes", str(a), str(b), "--quiet"]
    args += ["--device", _state.device()]
    args += ["--data", _state.data_path()] if _state.data_path() else []
    tasks.start(run.path, TASK, args)
    st.session_state[STARTED] = (str(run.path), a, b, True)


def _progress(run, data, a: int, b: int) -> None:
    now = tasks.state(run.path, TASK)
    if not now.active or train_features.is_cached(run.path, data, [a, b]):
        st.rerun(scope="app")
    st.progress(now.fraction, text=f"Computing the features: {now.message}")
