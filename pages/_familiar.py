"""The sentence under an answer when a photo looks like none of the training images.

Shared by Classify (every answer) and by Saliency and Embeddings (uploads). The score and
its calibration are `tinyviz.explain.familiar`'s; here they are only cached and drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from pages import _cache, _state
from tinyviz.demo import predict
from tinyviz.explain import familiar
from tinyviz.runs import Run


@st.cache_resource(show_spinner=False, max_entries=16)
def _checker(path: str, stamp: tuple[int, int], folder: str) -> familiar.Checker | None:
    """Keyed by the analysis folder too, so a run analysed since is checked from then on."""
    return familiar.checker(Path(path))


@st.cache_resource(show_spinner=False, max_entries=256)
def _familiarity(
    path: str,
    stamp: tuple[int, int],
    folder: str,
    key: str,
    device: str,
    _rgb: np.ndarray,
    lane: str = _cache.EXPLAIN,
) -> familiar.Familiarity | None:
    net = _cache._model(path, stamp, None, device, lane=lane)
    return predict.familiarity(net, _rgb, _checker(path, stamp, folder))


def familiarity(
    run: Run, rgb: np.ndarray, lane: str = _cache.EXPLAIN
) -> familiar.Familiarity | None:
    """The photo's familiarity to the run (its final weights; `lane`: whose model object,
    `_cache`); None before its analysis."""
    folder = familiar.find_analysis(run.path)
    if folder is None:
        return None
    key = _cache.image_key(rgb)
    return _familiarity(str(run.path), run.stamp, str(folder), key, _state.device(), rgb, lane)


def note(fam: familiar.Familiarity | None) -> None:
    """The warning for an unfamiliar photo, and its score; nothing for a familiar one."""
    if fam is None or fam.familiar:
        return
    st.warning(fam.sentence, icon=":material/help:")
    st.caption(
        f"How far its features lie from the nearest validation images': {fam.score:.2f}; "
        f"95% of validation images lie within {fam.threshold:.2f}."
    )
