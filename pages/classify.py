"""Classify: hold up a photo and see what the trained models think it is, and where they looked.

Works without the data set: uploads (or the camera) and the shipped runs are all it needs.
"""

import streamlit as st

from pages import _cache, _dataset, _familiar, _images, _runs, _state
from pages._text import file_name, plain
from pages.charts.predictions import top5_html
from tinyviz.demo import images
from tinyviz.demo.heatmaps import overlay
from tinyviz.demo.predict import SURE_AT, verdict
from tinyviz.errors import TinyvizError
from tinyviz.explain import saliency as explain
from tinyviz.io import shown_name
from tinyviz.runs import roots

_state.entry(__file__)

LOOKS = {"gradcam": "Grad-CAM", "gradient": "Gradient"}
HEAT = {"alpha": 0.6, "weighted": True}  # weighted: where it did not look, the photo shows

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


def label(key: str) -> str:
    """A chip's text: short, so that several chosen models all show in the picker."""
    run = by_key[key.split("#")[0]]
    if key.endswith("#snapshots"):
        return f"{run.name}: {len(run.snapshots)} snapshots"
    return f"{run.name} · {_runs.score_text(run)}"


# Column headers stay on one line (cut with "…"), so the columns of many models line up;
# the model picker wraps its chips onto more lines even when it is not focused (Streamlit
# keeps one line there, scrolled to the last chips, so most chosen models were hidden).
st.html(
    "<style>[class*='st-key-tv_cls_head'] :is(p, h3, h4){white-space:nowrap;overflow:hidden;"
    "text-overflow:ellipsis}"
    ".st-key-tv_cls_pick .react-aria-ComboBox > div{max-height:none;height:auto}"
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

upload_tab, camera_tab = st.tabs(["Upload photos", "Take a photo"])
files = _images.image_uploader(
    f"Photos ({_images.UPLOAD_TYPES})", "tv_cls_files", multiple=True, where=upload_tab
)
snap = camera_tab.camera_input(
    "Point the camera at something and take a photo", key="tv_cls_camera"
)
inputs = ([snap] if snap is not None else []) + list(files or [])
if not chosen:
    st.info("Choose at least one model above.")
    st.stop()
if not inputs:
    st.info("Upload a photo above (several at once are fine), or take one with the camera.")
    st.stop()

full_names = roots.full_names([by_key[k.split("#")[0]] for k in chosen])
device = _state.device().upper()
per_row = min(len(chosen), 3)
for n_file, file in enumerate(inputs):
    name = "camera photo" if file is snap else file.name
    try:
        up = images.load_upload(file.getvalue())
    except images.ImageError as e:
        st.error(
            f"**{file_name(name)}**: {plain(str(e))}",
            icon=":material/broken_image:",
        )
        continue
    st.divider()
    w, h = up.original_size
    st.subheader(file_name(name), anchor=False)
    square = up.square(256)  # the models' centre crop, at display size
    for start in range(0, len(chosen), per_row):
        cols = st.columns([1] + [1.1] * per_row, gap="medium")
        if start == 0:
            cols[0].image(up.original, width="stretch", caption=f"{w} × {h} {up.format}")
            seen = sorted({_dataset.run_size(by_key[k.split("#")[0]]) for k in chosen})
            cols[0].image(
                _images.big(up.rgb, 128),
                width=128,
                caption="What the models see: " + ", ".join(f"{n} × {n}" for n in seen),
            )
            with cols[0]:
                _images.heat_scale("looked least", "most", **HEAT)
        for j, (col, key) in enumerate(
            zip(cols[1:], chosen[start : start + per_row], strict=False), start
        ):
            run = by_key[key.split("#")[0]]
            k = len(run.snapshots) if key.endswith("#snapshots") else 0
            try:
                pred = _cache.prediction(
                    run, _dataset.model_input(run, up), ensemble=k, lane=_cache.CLASSIFY
                )
            except TinyvizError as e:  # a broken run must not take the other columns down
                col.error(f"**{plain(run.name)}**: {e}")
                continue
            with col:
                run_name = f"{run.name}, {k} snapshots" if k else run.name
                said = verdict(pred)
                fam = _familiar.familiarity(  # final weights
                    run, _dataset.model_input(run, up), lane=_cache.CLASSIFY
                )
                bold = said.sure and (fam is None or fam.verdict is not False)
                size = "###" if per_row < 3 else "####"
                with st.container(key=f"tv_cls_head_{n_file}_{j}"):
                    st.markdown(f"**{plain(run_name)}**  \n:gray[{about(run)}]")
                    st.markdown(
                        f"{size} {plain(said.headline)}"
                        if bold
                        else f"{size} :gray[{plain(said.headline)}]",
                        help=None
                        if said.sure
                        else f"Its best guess has less than {SURE_AT:.0%} probability.",
                    )
                    st.markdown(f":gray[{plain(said.detail) or '&nbsp;'}]")
                _familiar.note(fam)
                net = _cache.model(run, lane=_cache.CLASSIFY)
                method = look if getattr(net, "gradcam_layer", None) else "gradient"
                snapshot = run.snapshots[0].file if k else None
                seen_rgb = _dataset.model_input(run, up)
                att = _cache.attribution(
                    run, seen_rgb, pred.classes[0], method, snapshot=snapshot, lane=_cache.CLASSIFY
                )
                st.image(overlay(square, att.heat, **HEAT), width="stretch")
                st.html(top5_html(pred, full_names, shown=shown_name))
                note = "" if method == look else " (this model has no conv layer for Grad-CAM)"
                of = " of the best snapshot" if k else ""
                st.caption(
                    f"Where it looked for *{pred.names[0]}*: "
                    f"{explain.method_info(method).label}{of}{note}, "
                    f"{att.seconds * 1000:.0f} ms."
                )
                listed = ", ".join(
                    f"{n} {p:.1%}" for n, p in zip(pred.names, pred.probs, strict=True)
                )
                st.caption(f"Top-5 ({listed}) in {pred.seconds * 1000:.0f} ms on the {device}.")
