"""Preload, in the visitor's browser, the code of the charts the explain pages draw.

Streamlit's frontend fetches an element type's JavaScript on the first page that shows
one; plotly's (the Embeddings map) is 4.7 MB, the largest part of that page's first visit
on a small machine. `_preload.js` imports those modules while the browser is idle on the
page the visitor is reading, so the explain pages find them loaded.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import streamlit as st

# The lazily loaded element code the explain pages need, smallest first: the Embeddings
# map (plotly), the upload box, the class picker, the method buttons, sliders and toggles.
ELEMENTS = ("ButtonGroup", "Multiselect", "Slider", "Checkbox", "FileUploader", "PlotlyChart")
DELAY_MS = 1500  # after the first page is drawn: its own charts come first

_preload = st.components.v2.component(
    "tinyviz.preload", js=Path(__file__).with_name("_preload.js").read_text()
)


@cache
def chunks() -> tuple[str, ...]:
    """File names of those modules in this Streamlit's build (hashed, so looked up: none
    where the build differs, and then nothing is preloaded)."""
    folder = Path(st.__file__).parent / "static" / "static" / "js"
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return ()
    found = []
    for element in ELEMENTS:
        pattern = re.compile(rf"{element}\.[A-Za-z0-9_-]+\.js")
        found += sorted(n for n in names if pattern.fullmatch(n))[:1]
    return tuple(found)


def mount() -> None:
    """Start the preload in this tab (once: later calls find it done)."""
    if chunks():
        with st.sidebar:
            _preload(data={"chunks": list(chunks()), "delay_ms": DELAY_MS}, key="tv_preload")
