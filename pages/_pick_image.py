"""The Saliency page's image: a validation image to browse, a random misclassified one, or
an upload; the page stops with a note while there is none."""

from __future__ import annotations

import numpy as np
import streamlit as st

from pages import _gate, _images
from pages._text import file_name, plain
from tinyviz.demo import images
from tinyviz.io import shown_name
from tinyviz.runs import Run

SOURCES = {
    "browse": "Browse validation images",
    "wrong": "Random misclassified",
    "upload": "Upload an image",
}


def pick(run: Run, data) -> tuple[np.ndarray, str, int | None]:
    """(the image's pixels at the data set's size, its title, its true class or None)."""
    names = data.classes.names
    source = st.segmented_control(
        "Image",
        list(SOURCES),
        format_func=SOURCES.get,
        default="browse",
        required=True,
        key="tv_sal_source",
        persist_state="session",
    )
    rgb, title, truth = None, "", None
    if source == "browse":
        left, right = st.columns([2, 3])
        k = left.selectbox(
            "Class",
            range(len(names)),
            key="tv_sal_class",
            persist_state="session",
            format_func=lambda i: f"{names[i]} ({data.classes.wnids[i]})",
        )
        idx = data.val.of_class(k)
        if not len(idx):
            st.warning(f"The data set has no validation image of {names[k]}.")
            st.stop()
        j = (
            right.slider(
                "Validation image of this class",
                1,
                len(idx),
                key="tv_sal_pick",
                persist_state="session",
            )
            - 1
            if len(idx) > 1
            else 0
        )
        with st.expander(f"All {len(idx)} validation images of {names[k]}"):
            st.image(
                [data.val.images[i] for i in idx],
                width=56,
                caption=[str(n + 1) for n in range(len(idx))],
            )
        i = int(idx[j])
    elif source == "wrong":
        out = _gate.ensure_analysis(run, data).outputs  # the stored predictions (or a sample)
        wrong = out.image_index(out.misclassified())
        if not len(wrong):
            st.success(
                f"{run.name} classifies all {len(out):,} of these validation images correctly."
            )
            st.stop()
        again = st.button("Another one", icon=":material/casino:")
        if again or st.session_state.get("tv_sal_wrong", (None,))[0] != str(run.path):
            pick = int(np.random.default_rng().choice(wrong))
            st.session_state["tv_sal_wrong"] = (str(run.path), pick)
        i = st.session_state["tv_sal_wrong"][1]
        st.caption(
            f"{len(wrong):,} of {len(out):,} validation images are misclassified by {run.name}."
        )
    else:
        file = _images.image_uploader(f"An image ({_images.UPLOAD_TYPES})", "tv_sal_file")
        if file is None:
            st.info("Upload an image to explain.")
            st.stop()
        ((_, up),) = _images.decode_each([file], "tv_sal_decoded", size=data.size)
        if isinstance(up, images.ImageError):
            st.error(f"**{file_name(file.name)}**: {plain(str(up))}")
            st.stop()
        rgb, title = up.rgb, shown_name(file.name)
    if rgb is None:
        rgb, truth = np.asarray(data.val.images[i]), int(data.val.labels[i])
        title = data.val.files[i].rsplit("/", 1)[-1]

    return rgb, title, truth
