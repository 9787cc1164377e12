"""Import: a model trained elsewhere (a file on the server's disk) becomes a run here."""

import streamlit as st

from pages import _state
from pages._text import file_name, plain
from tinyviz.errors import TinyvizError
from tinyviz.runs import import_job
from tinyviz.runs.importer import near_chance

_state.entry(__file__)
NAME = "tv_imp_name"
PAGE_OPTIONS = "the normalisation, input size and class order file above"
NORMALIZATIONS = {
    "imagenet": "ImageNet mean and std",
    "tf": "(x - 0.5) / 0.5",
    "none": "pixels 0-1",
    "255": "pixels 0-255",
}

st.header("Import your own model")
st.caption(
    "A model you trained in your own code becomes a run that every page explains: a state "
    "dict (.safetensors, .pt, .pth, .ckpt) with its architecture, an ONNX file (the route "
    "from TensorFlow: tf2onnx), or a Keras 3 file (.keras, .h5). Pickled whole models are "
    "refused: save `model.state_dict()` instead. The same as `tinyviz import` on the command "
    "line."
)
data_path = _state.data_path()
if not data_path:
    st.info("Say where the data set the model was trained on is, in the sidebar.")
    st.stop()
st.caption(
    f"The model is scored on the validation images of {file_name(data_path)} (the "
    "sidebar's data set): it must have been trained on its classes."
)
with st.form("tv_imp_form"):
    weights = st.text_input("Weights file on the server", placeholder="/home/me/mine.pt")
    arch = st.text_input(
        "Architecture",
        placeholder="torchvision:resnet18 · timm:resnet18 · resnet18 · my_model.py:Net",
        help="Not needed for .onnx and .keras files. A file.py:Name or module:Name runs "
        "that code on the server: import only code you trust.",
    )
    name = st.text_input("Name of the new run", placeholder="my-resnet18", key=NAME)
    cols = st.columns(3)
    size = cols[0].number_input(
        "Input size in pixels (0: default)",
        0,
        1024,
        0,
        step=8,
        help="The size the model was trained at. Default: what a timm, ONNX or Keras model "
        "says, else the data set's image size.",
    )
    normalize = cols[1].selectbox(
        "Normalisation",
        ["", "imagenet", "tf", "none", "255"],
        format_func=lambda v: NORMALIZATIONS.get(v, "default for its kind"),
        help="Default: ImageNet's for torchvision and your code, timm's own, pixels 0-1 for "
        "ONNX and Keras (0-255 for a Keras model that starts with Rescaling(1/255)).",
    )
    classes = cols[2].text_input("Class order file (optional)", help="One class per output")
    go = st.form_submit_button("Import", icon=":material/upload_file:")
if go:
    form = import_job.ImportForm(
        weights.strip(), name.strip(), data_path, arch, int(size) or None, normalize, classes
    )
    try:
        import_job.start(form)
    except TinyvizError as e:
        st.error(str(e), icon=":material/error:")


@st.fragment(run_every=2.0)
def progress() -> None:
    name = st.session_state.get(NAME, "").strip()
    job = import_job.status(name) if name else None
    if job is None or job.state == "none":
        return
    if job.state == "running":
        st.info(f"Importing {plain(name)}: converting, then scoring the validation set.")
        st.code("\n".join(job.log[-4:]) or "starting", language=None)
    elif job.state == "failed":
        st.error(plain(job.reason), icon=":material/error:")
    else:
        r = job.result or {}
        st.success(
            f"{plain(name)} is a run now: top-1 {r.get('top1', 0):.1%}, top-5 "
            f"{r.get('top5', 0):.1%} on {r.get('n', 0):,} validation images. Its analysis "
            "runs in the background; pick it in the sidebar.",
            icon=":material/check_circle:",
        )
        warning = r.get("warning")
        if warning and isinstance(r.get("classes"), int):  # naming this page's fields
            warning = near_chance(r.get("top1", 0), r["classes"], PAGE_OPTIONS)
        if warning:
            st.warning(plain(warning), icon=":material/warning:")


progress()
