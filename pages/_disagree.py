"""The Two models page's rows: one validation image, each model's top-5 (the true class in
green) and the saliency map of its own answer."""

from __future__ import annotations

import numpy as np
import streamlit as st

from pages import _cache, _images
from pages._text import plain, probability
from tinyviz.demo.heatmaps import overlay
from tinyviz.explain import compare


def top5(out, i: int, truth: int, names: list[str]) -> None:
    classes, probs = compare.top_k(out, i, 5)
    lines = [
        (f":green[**{plain(names[k])}**]" if k == truth else plain(names[k]))
        + f" {plain(probability(p))}"
        for k, p in zip(classes, probs, strict=True)
    ]
    st.markdown("  \n".join(lines))


def row(data, i: int, names: list[str], method: str, models) -> None:
    """Image `i` of the validation set through `models`: (tag, run, its outputs) each."""
    rgb, truth = np.asarray(data.val.images[i]), int(data.val.labels[i])
    cols = st.columns([1.1, 1.3, 1.1, 1.3, 1.1], gap="small", vertical_alignment="center")
    cols[0].image(_images.big(rgb, 128), caption=f"{names[truth]} (image {i})", width=128)
    for (col_text, col_map), (tag, run, out) in zip(
        ((cols[1], cols[2]), (cols[3], cols[4])), models, strict=True
    ):
        with col_text:
            st.markdown(f"**{tag}**: {plain(run.name)}")
            top5(out, i, truth, names)
        answer = int(compare.top_k(out, i, 1)[0][0])
        att = _cache.attribution(run, rgb, answer, method)
        col_map.image(
            overlay(_images.big(rgb, 128), att.heat, 0.55, weighted=True),
            caption=f"where {tag} looks for {names[answer]}",
            width=128,
        )
