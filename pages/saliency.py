"""Saliency: six ways of asking which pixels made the model choose a class, side by side."""

import streamlit as st

from pages import (
    _attribution,
    _cache,
    _dataset,
    _familiar,
    _images,
    _pick_image,
    _queued,
    _runs,
    _sanity,
    _state,
    _turns,
)
from pages._text import plain
from pages.charts.predictions import top5_html
from tinyviz.demo.heatmaps import overlay
from tinyviz.explain import saliency as explain
from tinyviz.explain import speed
from tinyviz.io import shown_name

_state.entry(__file__)

FAST = {"gradient", "gradcam", "guided_backprop"}  # one backward pass; the others take tens

st.title("Saliency maps")
data = _dataset.require_data()
run = _runs.require_matching_run(data)
data = _dataset.data_for(run, data)
names, net = data.classes.names, _cache.model(run)
st.caption(
    f"Model: **{run.name}** ({run.model_name}, chosen in the sidebar). Every map "
    "explains this model's score for the target class on the image below."
)

trust = _sanity.report(run, data)  # the methods' sanity checks, if stored


def options(rgb, title: str, truth, pred) -> tuple[int, str | None, float]:
    """The image, its answer and top-5, and the choices of a map: (target, layer, alpha)."""
    top = list(pred.classes)
    pic, chart, opts = st.columns([1, 1.6, 1.6], gap="medium")
    side = len(rgb)
    pic.image(_images.big(rgb, 192), width=192, caption=f"{plain(title)} ({side} × {side})")
    with chart:
        verdict = (
            "" if truth is None else (" :green[(correct)]" if truth == top[0] else " :red[(wrong)]")
        )
        st.markdown(
            f"**True:** {names[truth] if truth is not None else 'unknown (upload)'}  \n"
            f"**Predicted:** {pred.names[0]} ({pred.probs[0]:.0%}){verdict}"
        )
        full = dict(zip(data.classes.wnids, data.classes.full_names, strict=True))
        st.html(top5_html(pred, full, true_class=truth, shown=shown_name))
        if truth is None:  # an upload: does it look like any of the classes at all?
            _familiar.note(_familiar.familiarity(run, rgb))
    with opts:
        probs = dict(zip(top, pred.probs, strict=True))
        target = st.selectbox(
            "Explain the score of",
            top + [c for c in range(len(names)) if c not in probs],
            key="tv_sal_target",
            format_func=lambda c: names[c] + (f" ({probs[c]:.0%}, top-5)" if c in probs else ""),
            help="Default: the predicted class. Any class can be explained.",
        )
        layer = layer_choice()
        alpha = st.slider(
            "Heat-map opacity", 0.0, 1.0, 0.55, 0.05, key="tv_sal_alpha", persist_state="session"
        )
    return target, layer, alpha


def layer_choice() -> str | None:
    """The Grad-CAM layer (None for a model without one)."""
    default = getattr(net, "gradcam_layer", None)
    layers = list(getattr(net, "channel_layers", ()))
    layers += [default] if default and default not in layers else []
    if not layers:
        return None
    return st.selectbox(
        "Grad-CAM layer",
        layers,
        disabled=not default,
        index=layers.index(default) if default in layers else 0,
        format_func=lambda n: described[n].label if n in described else n,
        help="Late layers: coarse, class-specific; early layers: fine detail. Module "
        "names in the code: "
        + "; ".join(f"{described[n].title} = `{n}`" for n in layers if n in described),
    )


def ticked(slow: set[str], seconds: dict[str, float], has_layer: bool) -> list:
    """The methods' ticks (the slow ones with their estimated time): the methods ticked."""
    st.markdown(
        "**Methods**"
        + (
            " (the slow ones start unticked and are computed in the background, one visitor's "
            "at a time; the time is estimated for this model here)"
            if cpu
            else ""
        )
    )
    methods = [m for m in explain.METHODS if m.name != "gradcam" or has_layer]
    ticks = st.columns(3) * 2

    def tick_label(m) -> str:
        if m.name not in slow:
            return m.label
        return f"{m.label} ({speed.duration(seconds[m.name])})" if cost else f"{m.label} (slow)"

    chosen = [
        m
        for m, col in zip(methods, ticks[: len(methods)], strict=True)
        if col.checkbox(
            tick_label(m),
            value=m.name not in slow,
            key=f"tv_sal_m_{m.name}",
            persist_state="session",
        )
    ]
    if slow:
        st.checkbox(
            "Keep the slow methods ticked for the next image",
            key="tv_sal_keep_slow",
            persist_state="session",
        )
    return chosen


def maps(rgb, target: int, layer, alpha: float, chosen: list, slow: set[str]) -> dict:
    """The chosen methods' maps, three a row, each with its sanity card; returns the slow
    maps background workers compute (label -> request). One spinner for them all, not one
    per map: each starts a timer thread, whose start waits for the interpreter lock (10-25
    ms with other sessions busy), at every click on the page."""
    pending = {}
    with st.spinner("Computing the maps..."):
        for start in range(0, len(chosen), 3):
            row = st.columns(3, gap="medium")
            for col, m in zip(row, chosen[start : start + 3], strict=False):
                with col:
                    pending |= _one_map(rgb, target, layer, alpha, m, slow)
    return pending


def _one_map(rgb, target: int, layer, alpha: float, m, slow: set[str]) -> dict:
    """One method's map with its title and sanity card, or its place in the background
    queue (then {label: request})."""
    att, queued = _attribution.get(
        run, data, rgb, target, m.name, layer if m.name == "gradcam" else None,
        background=m.name in slow,
    )  # fmt: skip
    if queued is not None:
        req, now = queued
        st.image(_images.big(rgb, 256), width=256)
        if now.state == "failed":
            st.error(f"**{m.label}** could not be computed: {plain(now.error)}")
            return {}
        st.markdown(f"**{m.label}** · {_queued.describe(now)}")
        return {m.label: req}
    # weighted: pixels without heat keep the image's own colour (a transparent upload's
    # white stays white, as in the model's input)
    st.image(overlay(_images.big(rgb, 256), att.heat, alpha, weighted=True), width=256)
    on = described[att.layer].title if att.layer in described else att.layer
    extra = f", on {on}" if att.layer else ""  # the module name: the picker's help
    st.markdown(f"**{m.label}** · {att.seconds * 1000:,.0f} ms{extra}  \n:gray[{m.shows}]")
    if att.delta is not None:
        st.caption(_sanity.completeness(att))
    _sanity.card(trust, m.name)
    return {}


@_turns.fragment("Saliency")
def explained() -> None:
    """The image, its answer, the choices and the maps: all that a click (an image, a
    method, a class) changes. A fragment: such a click reruns and redraws this part alone,
    so the trust section's charts below are neither sent nor drawn again (issue 19)."""
    rgb, title, truth = _pick_image.pick(run, data)
    pred = _cache.prediction(run, rgb)
    seconds = {m.name: cost.saliency_seconds(m) if cost else 0.0 for m in explain.METHODS}
    slow = {m.name for m in explain.METHODS if m.name not in FAST or seconds[m.name] > 2}
    slow = slow if cpu else set()
    if st.session_state.get("tv_sal_for") != (_cache.image_key(rgb), str(run.path)):
        st.session_state["tv_sal_for"] = (_cache.image_key(rgb), str(run.path))
        st.session_state["tv_sal_target"] = pred.classes[0]
        if not st.session_state.get("tv_sal_keep_slow"):  # a new image: slow ones unticked
            for name in slow:
                st.session_state[f"tv_sal_m_{name}"] = False
    target, layer, alpha = options(rgb, title, truth, pred)
    chosen = ticked(slow, seconds, layer is not None)
    st.caption(
        f"Saliency of **{run.name}** for class **{names[target]}** on {plain(title)}, "
        f"on the {_state.device().upper()}."
    )
    _images.heat_scale("each map: least", "most (its own maximum)", alpha=alpha, weighted=True)
    pending = maps(rgb, target, layer, alpha, chosen, slow)
    if pending:
        _queued.follow(pending)


cpu = _state.device() == "cpu"
cost = speed.of_run(run, _state.device())
described = _cache.layers(run)  # "Stage 4, block 2 · 8×8 · 512 channels"
explained()
_sanity.section(run, data, net, trust)
