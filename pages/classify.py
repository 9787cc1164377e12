"""Classify: hold up a photo and see what the trained models think it is, and where they looked.

Works without the data set: uploads (or the camera) and the shipped runs are all it needs.
"""

from typing import NamedTuple

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from pages import _cache, _dataset, _familiar, _images, _runs, _state
from pages._text import file_name, plain
from pages.charts.predictions import answer_head_html, captions_html, top5_html
from tinyviz.demo import images
from tinyviz.demo.heatmaps import overlay
from tinyviz.demo.predict import SURE_AT, verdict
from tinyviz.errors import TinyvizError
from tinyviz.explain import saliency as explain
from tinyviz.io import shown_name
from tinyviz.runs import Run, roots
from tinyviz.runtime import timings

_state.entry(__file__)

LOOKS = {"gradcam": "Grad-CAM", "gradient": "Gradient"}
HEAT = {"alpha": 0.6, "weighted": True}  # weighted: where it did not look, the photo shows
# The place a heat map will take, square as the map, until it is drawn (no jump of the
# top-5 below it when the map comes).
MAP_PLACE = (
    '<div style="aspect-ratio:1;border-radius:.5rem;background:rgba(151,166,195,.15)"></div>'
)

st.title("What does the model see?")
st.caption(
    "Upload photos or take one: each trained model gives its five most likely Tiny "
    "ImageNet classes and a heat map of where it looked. Like the training images, "
    "every photo is cropped to a square and shrunk to 64 × 64 pixels first."
)

runs = _runs.require_runs()
by_key = {str(r.path): r for r in runs}
choices = list(by_key) + [f"{k}#snapshots" for k, r in by_key.items() if r.snapshots]


def about(run) -> str:
    kind = "transfer" if run.transfer else "from scratch"
    scored = run.score.top1 is not None  # the figure first: lines are cut
    top1 = f"{_runs.score_text(run)} val top-1" if scored else _runs.score_text(run)
    return f"{top1} · {run.model_name}, {kind}"


def run_of(key: str):
    """The run of a choice (a run's path, or its path and "#snapshots")."""
    return by_key[key.split("#")[0]]


def failed(where, key: str, e: TinyvizError) -> None:
    """One line for a run that could not answer, `where` its answer would be."""
    where.error(f"**{plain(run_of(key).name)}**: {e}")


def label(key: str) -> str:
    """A chip's text: short, so that several chosen models all show in the picker."""
    run = run_of(key)
    if key.endswith("#snapshots"):
        return f"{run.name}: {len(run.snapshots)} snapshots"
    return f"{run.name} · {_runs.score_text(run)}"


# Column headers stay on one line (cut with "…"), so the columns of many models line up;
# the model picker wraps its chips onto more lines even when it is not focused (Streamlit
# keeps one line there, scrolled to the last chips, so most chosen models were hidden).
st.html(
    "<style>.st-key-tv_cls_pick .react-aria-ComboBox > div{max-height:none;height:auto}"
    ".st-key-tv_cls_pick [data-testid=stMultiSelectTagsContainer]"
    "{flex-wrap:wrap;overflow:visible;mask-image:none}</style>"
)


if [
    k for k in st.session_state.get("tv_cls_runs", []) if k not in choices
] or "tv_cls_runs" not in st.session_state:
    st.session_state["tv_cls_runs"] = [str(r.path) for r in roots.best_runs(runs)]
left, right = st.columns([3, 1], vertical_alignment="bottom")
chosen = left.container(key="tv_cls_pick").multiselect(
    "Models to compare",
    choices,
    format_func=label,
    key="tv_cls_runs",
    persist_state="session",
    help="Default: the best transfer model and the best model trained "
    "from scratch (the percentage: validation top-1). Runs with snapshots also offer "
    "their ensemble.",
)
look = right.segmented_control(
    "Where it looked",
    list(LOOKS),
    format_func=LOOKS.get,
    default="gradcam",
    required=True,
    key="tv_cls_look",
    persist_state="session",
    help=f"Grad-CAM: {explain.method_info('gradcam').shows}. "
    f"Gradient: {explain.method_info('gradient').shows}.",
)


class View(NamedTuple):
    """How every answer to the photos is drawn."""

    look: str  # "gradcam" or "gradient"
    full_names: dict[str, str]  # WordNet id -> the class's full name, on hover
    device: str  # where the models run, as said under each top-5
    small: bool  # the verdict smaller: three models a row


class Pending(NamedTuple):
    """A model's heat map still to draw, once every model's top-5 is out."""

    slot: DeltaGenerator  # the place held for it under the model's verdict (`st.empty`)
    run: Run
    seen_rgb: np.ndarray  # the photo as this model sees it
    target: int  # its top class
    name: str  # and that class's name
    snapshot: str | None  # the best snapshot's file, for an ensemble


def model_answer(key: str, up, view: View) -> Pending:
    """One model's answer to one photo, in the current column: its verdict, whether the
    photo looks like its classes at all, a place for where it looked, its top-5. The map
    is drawn into its place later (`model_map`), once every model has answered."""
    run = run_of(key)
    k = len(run.snapshots) if key.endswith("#snapshots") else 0
    seen_rgb = _dataset.model_input(run, up)
    pred = _cache.prediction(run, seen_rgb, ensemble=k, lane=_cache.CLASSIFY)
    run_name = f"{run.name}, {k} snapshots" if k else run.name
    said = verdict(pred)
    fam = _familiar.familiarity(run, seen_rgb, lane=_cache.CLASSIFY)  # final weights
    bold = said.sure and (fam is None or fam.verdict is not False)
    tip = "" if said.sure else f"Its best guess has less than {SURE_AT:.0%} probability."
    head = [shown_name(t) for t in (run_name, about(run), said.headline, said.detail)]
    st.html(answer_head_html(*head, bold=bold, small=view.small, tip=tip))
    _familiar.note(fam)
    slot = st.empty()
    slot.html(MAP_PLACE + captions_html("\u00a0"))  # the map's caption line too
    listed = ", ".join(f"{n} {p:.1%}" for n, p in zip(pred.names, pred.probs, strict=True))
    st.html(
        top5_html(pred, view.full_names, shown=shown_name)
        + captions_html(
            shown_name(f"Top-5 ({listed}) in {pred.seconds * 1000:.0f} ms on the {view.device}.")
        )
    )
    snapshot = run.snapshots[0].file if k else None
    return Pending(slot, run, seen_rgb, pred.classes[0], pred.names[0], snapshot)


def model_map(later: Pending, square, view: View) -> None:
    """Where a model looked for its top class, over the photo's centre crop `square`, with
    its caption, into the place `model_answer` held for it."""
    run = later.run
    net = _cache.model(run, lane=_cache.CLASSIFY)
    method = view.look if getattr(net, "gradcam_layer", None) else "gradient"
    att = _cache.attribution(
        run, later.seen_rgb, later.target, method, snapshot=later.snapshot, lane=_cache.CLASSIFY
    )
    note = "" if method == view.look else " (this model has no conv layer for Grad-CAM)"
    of = " of the best snapshot" if later.snapshot else ""
    with later.slot.container():
        st.image(overlay(square, att.heat, **HEAT), width="stretch")
        st.html(
            captions_html(
                shown_name(
                    f"Where it looked for {later.name}: {explain.method_info(method).label}"
                    f"{of}{note}, {att.seconds * 1000:.0f} ms."
                )
            )
        )


def photo_answers(name: str, up, chosen: list[str], look: str) -> None:
    """A photo, what the models see of it, and each chosen model's answer, three a row.

    Every model's top-5 first, the heat maps after (each into the place held for it): a
    map costs a model as much again as its answer (a forward and a backward pass), and at
    a crowded poster the answer is what a visitor waits for.

    Not in a container keyed by the upload: with such keys a visitor's browser built about
    1,400 more page nodes per photo up (14,700 against 8,700 after six photos) for as much
    work per upload (bench probe of Classify alone)."""
    per_row = min(len(chosen), 3)
    view = View(
        look,
        roots.full_names([run_of(k) for k in chosen]),
        _state.device().upper(),
        per_row >= 3,
    )
    st.divider()
    st.subheader(file_name(name), anchor=False)
    later: list[tuple[str, Pending]] = []
    for start in range(0, len(chosen), per_row):
        cols = st.columns([1] + [1.1] * per_row, gap="medium")
        if start == 0:
            with cols[0]:
                the_photo(up, chosen)
        for col, key in zip(cols[1:], chosen[start : start + per_row], strict=False):
            with col:
                try:
                    later.append((key, model_answer(key, up, view)))
                except TinyvizError as e:  # a broken run must not take the others down
                    failed(st, key, e)
    square = up.square(256) if later else None  # the models' centre crop, at display size
    for key, pending in later:
        try:
            model_map(pending, square, view)
        except TinyvizError as e:
            failed(pending.slot, key, e)


def the_photo(up, chosen: list[str]) -> None:
    """The photo as uploaded, what the models see of it, and the heat maps' colour scale."""
    w, h = up.original_size
    st.image(up.original, width="stretch", caption=f"{w} × {h} {up.format}")
    seen = sorted({_dataset.run_size(run_of(k)) for k in chosen})
    st.image(
        _images.big(up.rgb, 128),
        width=128,
        caption="What the models see: " + ", ".join(f"{n} × {n}" for n in seen),
    )
    _images.heat_scale("looked least", "most", **HEAT)


@st.fragment
def photos(chosen: list[str], look: str) -> None:
    """The upload box, the camera and the answers. A fragment: a new photo runs this part
    alone, so the server sends, and the visitor's browser redraws, the answers only, not
    the whole page with its sidebar (at a crowded poster the browsers' drawing was most of
    a visitor's wait). Timed as a run of the page where only it runs (`timings.timed`)."""
    with timings.timed("Classify"):
        upload_tab, camera_tab = st.tabs(["Upload photos", "Take a photo"])
        files = _images.image_uploader(
            f"Photos ({_images.UPLOAD_TYPES})", "tv_cls_files", multiple=True, where=upload_tab
        )
        snap = camera_tab.camera_input(
            "Point the camera at something and take a photo", key="tv_cls_camera"
        )
        # the newest upload first: its answer is drawn first, at the top, where the visitor
        # looks, not below the fold under the photos before it
        inputs = ([snap] if snap is not None else []) + list(reversed(files or []))
        if not chosen:
            st.info("Choose at least one model above.")
            return
        if not inputs:
            st.info("Upload a photo above (several at once are fine), or take one with the camera.")
            return
        for file, up in _images.decode_each(inputs, "tv_cls_decoded"):
            name = "camera photo" if file is snap else file.name
            if isinstance(up, images.ImageError):
                st.error(f"**{file_name(name)}**: {plain(str(up))}", icon=":material/broken_image:")
                continue
            photo_answers(name, up, chosen, look)


photos(chosen, look)
