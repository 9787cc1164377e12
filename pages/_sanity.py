"""The Saliency page's "how far to trust it" parts: scores beside each map, and the section.

Drawing only: the checks are `tinyviz.explain.sanity` (computed once per run, by the command
line or by a background process this page starts, never in a script run) and the
completeness of Integrated Gradients is `sanity.completeness`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from pages import _cache, _images, _state
from pages._text import plain
from pages.charts import sanity as charts
from pages.charts.sanity import RANDOM
from tinyviz.demo.heatmaps import heat_to_rgb
from tinyviz.explain import faithfulness, saliency, sanity, tasks
from tinyviz.models.describe import part_title
from tinyviz.runs import Run

TASK = "sanity"
VERDICT = {"passes": ":green[passes]", "partly": ":orange[partly]", "fails": ":red[fails]"}
PAPER = "https://arxiv.org/abs/1810.03292"
SETTINGS = sanity.Settings()  # what the page asks for (the command line's defaults)


@_cache.forgettable
@st.cache_resource(show_spinner=False, max_entries=16)
def _report(path: str, stamp: tuple[int, int], data_cache: str, mtime: float, settings, _data):
    return sanity.load(Path(path), _data, settings)


def report(run: Run, data) -> sanity.TrustReport | None:
    """The run's stored check, if it was made for these weights, images and settings."""
    file = sanity.report_path(run.path)
    mtime = file.stat().st_mtime if file.exists() else 0.0
    if not mtime:
        return None
    rep = _report(str(run.path), run.stamp, str(data.cache), mtime, SETTINGS, data)
    if rep is not None and len(rep.titles) != len(rep.stages):  # stored without them
        names = _titles(str(run.path), run.stamp, _state.device(), rep.stages)
        rep = dataclasses.replace(rep, titles=names)
    return rep


@st.cache_data(show_spinner=False, max_entries=16)
def _titles(path: str, stamp: tuple[int, int], device: str, stages: tuple[str, ...]):
    net = _cache._model(path, stamp, None, device)
    return tuple(part_title(net, s) for s in stages)


@_cache.forgettable
@st.cache_resource(show_spinner=False, max_entries=16)
def _maps(path: str, mtime: float):
    return sanity.load_maps(Path(path))


@st.cache_data(show_spinner=False, max_entries=16)
def _estimate(path: str, stamp: tuple[int, int], device: str, settings, _net) -> float:
    return sanity.estimate_seconds(_net, settings)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ------------------------------------------------------------ beside each map


def card(rep: sanity.TrustReport | None, method: str) -> None:
    """Under a method's map: its sanity score with a small curve, and its faithfulness."""
    trust = rep.method(method) if rep else None
    if trust is None:
        return
    st.markdown(
        f"Sanity {VERDICT[trust.verdict]}: ρ = {trust.after_top:.2f} with the head and the "
        f"last block random, {trust.score:.2f} on average · :red[deletion "
        f"{trust.deletion_auc:.2f}] (random {rep.random_deletion_auc:.2f}), :blue[insertion "
        f"{trust.insertion_auc:.2f}] (random {rep.random_insertion_auc:.2f})",
        help="ρ: rank correlation of this map with the map of the same model after its "
        "weights were re-initialised, top layer first (the curve: one step per layer "
        "group; the average is over its steps). A map that explains what the model "
        "learned changes: ρ falls towards 0. "
        "Deletion / insertion: the class probability as the most salient pixels are "
        "blurred away / put back, area under the curve; lower / higher than a random "
        "pixel order is better. Below: ρ at each step, from 1 with the trained weights "
        "(top), and the two curves, deletion red and insertion blue, with the random "
        "order's dashed (bottom).",
    )
    curves = (tuple(trust.deletion), tuple(trust.insertion))
    random = (tuple(rep.random_deletion), tuple(rep.random_insertion))
    st.image(_card((1.0, *trust.abs_corr), curves, random), width="stretch")


@st.cache_data(show_spinner=False, max_entries=64)
def _card(rho: tuple, curves: tuple, random: tuple) -> bytes:
    """A method's card as a PNG (`charts.card_png`), drawn once per server."""
    return charts.card_png(rho, curves, random)


def completeness(att: saliency.Attribution) -> str:
    """Integrated Gradients' completeness error in words (empty for other methods)."""
    c = sanity.completeness(att)
    if c is None:
        return ""
    quality = "good" if c.relative < 0.05 else ("rough" if c.relative < 0.2 else "poor")
    return (
        f"Completeness: the pixels' shares add up to {c.total:+.2f}, against the score's "
        f"rise from a black image f(x) − f(black) = {c.gap:+.2f}, an error of "
        f"{c.delta:+.2f} ({c.relative:.0%} of it: {quality}; under 5% is good, more means "
        f"the {att.params.get('n_steps', '')} steps approximate the path integral coarsely)."
    )


def _curve(rep, trusts, *, height: int, signed: bool = False):
    """The cascade chart of `trusts` (`charts.sanity.cascade`): ρ at each step."""
    stages = ["none", *rep.stage_titles]
    rows = pd.DataFrame(
        [
            {
                "method": saliency.method_info(t.method).label,
                "random down to": stage,
                "step": k,
                "rho": 1.0 if k == 0 else (t.signed_corr if signed else t.abs_corr)[k - 1],
            }
            for t in trusts
            for k, stage in enumerate(stages)
        ]
    )
    return charts.cascade(rows, stages, height=height)


# ---------------------------------------------------------------- the section


def section(run: Run, data, net, rep: sanity.TrustReport | None) -> None:
    """The page's closing section: what the checks say, or how to get them."""
    st.subheader("How far to trust these maps")
    st.caption(
        f"Two checks of every method on {run.name}, made once on a fixed set of validation "
        f"images. **Sanity** ([Adebayo et al. 2018]({PAPER})): the weights are re-initialised "
        "from the top layer down, and each map is compared with the original one by rank "
        "correlation; a map that stays the same with random weights shows the image, not "
        "what the model learned. **Faithfulness** (RISE's deletion and insertion curves): how "
        "fast the class probability falls when the most salient pixels are blurred first."
    )
    if rep is None:
        _missing(run, data, net)
        return
    left, right = st.columns([1, 1], gap="medium")  # the table's six columns uncut
    with left:
        signed = st.toggle(
            "Signed maps (with their sign) instead of absolute ones", key="tv_san_signed"
        )
        st.altair_chart(_curve(rep, rep.methods, height=300, signed=signed))
        st.caption(
            f"Mean over {len(rep.images)} validation images (one per class), each map of the "
            f"model's own answer; measured in {_duration(rep.seconds)} on the "
            f"{rep.device.upper()} ({rep.created}).",
            help="Each step re-initialises one group of layers, ending at the one named. "
            "Their names in the code: "
            + "; ".join(f"{t} = `{n}`" for t, n in zip(rep.stage_titles, rep.stages, strict=True)),
        )
    with right:
        st.dataframe(_table(rep), hide_index=True, width="stretch")
        st.caption(
            "ρ top: with the head and the last block random. del. / ins.: deletion and "
            "insertion areas. "
            f"Verdict from the mean ρ over the steps: under {sanity.PASS_BELOW} passes, over "
            f"{sanity.FAIL_ABOVE} fails. Deletion: lower is better; insertion: higher; a "
            f"random pixel order scores {rep.random_deletion_auc:.2f} and "
            f"{rep.random_insertion_auc:.2f}."
        )
    _faithfulness(rep)
    _strip(run, data, rep)


def _table(rep: sanity.TrustReport) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "method": saliency.method_info(t.method).label,
                "sanity": t.verdict,
                "ρ top": t.after_top,
                "ρ mean": t.score,
                "del.": round(t.deletion_auc, 3),
                "ins.": round(t.insertion_auc, 3),
            }
            for t in rep.methods
        ]
    ).round(2)


def _strip(run: Run, data, rep: sanity.TrustReport) -> None:
    """The maps of one check image as the cascade goes down (the paper's figure)."""
    file = sanity.maps_path(run.path)
    maps = _maps(str(run.path), file.stat().st_mtime) if file.exists() else None
    if maps is None or not len(maps):
        return
    labels = [saliency.method_info(t.method).label for t in rep.methods]
    a, b = st.columns(2)
    j = a.selectbox(
        "Randomized maps of", range(len(labels)), format_func=labels.__getitem__, key="tv_san_m"
    )
    i = b.selectbox(
        "on check image",
        range(len(maps)),
        format_func=lambda k: f"{k + 1}: {data.classes.names[rep.targets[k]]}",
        key="tv_san_i",
    )
    rgb = np.asarray(data.val.images[rep.images[i]])
    stages = ["original", *(f"random down to {s}" for s in rep.stage_titles)]
    heat = [maps[i, j, k].astype(np.float32) / 255 for k in range(len(stages))]
    st.image(
        [_images.big(rgb, 112)] + [_images.big(heat_to_rgb(h), 112) for h in heat],
        caption=["the image", *stages],
        width=112,
    )
    st.caption(
        "The maps alone (the colour scale above): a map that keeps its shape from left to "
        "right does not depend on what the model learned."
    )


# --------------------------------------------------------- faithfulness curves


def _faith_rows(rep: sanity.TrustReport, trusts) -> pd.DataFrame:
    """Long format: one row per method (and the random order), curve and step, with the
    legend's label ("Grad-CAM · area 0.12") of that curve."""
    named = [(saliency.method_info(t.method).label, t.deletion, t.insertion) for t in trusts]
    named.append((RANDOM, rep.random_deletion, rep.random_insertion))
    rows = []
    for name, deletion, insertion in named:
        for curve, values in (("deletion", deletion), ("insertion", insertion)):
            area = faithfulness.auc(np.asarray(values))
            for k, p in enumerate(values):
                rows.append(
                    {
                        "method": name,
                        "curve": curve,
                        "label": f"{name} · area {area:.2f}",
                        "area": area,
                        "fraction": k / max(len(values) - 1, 1),
                        "p": p,
                    }
                )
    return pd.DataFrame(rows)


def _faithfulness(rep: sanity.TrustReport) -> None:
    """Deletion and insertion of every method beside each other, areas in the legends."""
    rows = _faith_rows(rep, rep.methods)
    st.markdown("**Faithfulness: deletion and insertion curves**")
    left, right = st.columns(2, gap="medium")
    left.altair_chart(charts.faithfulness(rows, "deletion"), width="stretch")
    right.altair_chart(charts.faithfulness(rows, "insertion"), width="stretch")
    st.caption(
        "The class probability as the most salient pixels are blurred away (deletion: a "
        "faithful map makes it fall at once, a small area) or put back into a blurred copy "
        "(insertion: it rises at once, a large area); mean over the check images. A method "
        "whose curve is no better than the dashed random order says little about what the "
        "model uses."
    )


def _missing(run: Run, data, net) -> None:
    """Not checked yet: the estimate and a button, or the background task's progress."""
    now = tasks.state(run.path, TASK)
    if now.active:
        st.fragment(_progress, run_every=3)(run, data)
        return
    if now.state == "failed":
        st.error(f"The last check stopped: {plain(now.error)}", icon=":material/error:")
    guess = _estimate(str(run.path), run.stamp, _state.device(), SETTINGS, net)
    st.info(
        f"**{plain(run.name)}** has not been checked yet. The check takes about "
        f"{_duration(guess)} on the {_state.device().upper()} (estimated from one timed "
        "batch); it runs in the background, so you can close the tab, and it is stored with "
        "the run for every visitor.",
        icon=":material/fact_check:",
    )
    if st.button("Check the methods of this run", icon=":material/play_arrow:", key="tv_san_go"):
        tasks.start(run.path, TASK, command(run))
        st.rerun()


def command(run: Run) -> list[str]:
    """The `tinyviz` arguments of the background check."""
    args = ["sanity", str(run.path), "--device", _state.device(), "--quiet"]
    args += ["--images", str(SETTINGS.images)]
    return args + (["--data", _state.data_path()] if _state.data_path() else [])


def _progress(run: Run, data) -> None:
    now = tasks.state(run.path, TASK)
    if not now.active:
        st.rerun(scope="app")
    left = f", about {_duration(now.eta_seconds)} left" if now.eta_seconds else ""
    st.progress(now.fraction, text=f"Checking in the background: {now.message}{left}")
