"""Classify ready before its first visitor: the models it shows first, loaded in the background.

The first photo a server classifies would otherwise wait for everything done once: the
upload decoder's process started, each default model (`roots.best_runs`) loaded and run
once forwards and once backwards (a CPU's first passes set up memory and kernels), and its
familiarity calibration read or computed (a second or two each). At a poster that first
photo is a visitor's, and the crowd bench (bench/crowd.py) counts it. So the server does it
once, in a thread of its own, as soon as the first page of any session has found the runs.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np
import streamlit as st

from pages import _cache, _dataset, _familiar, _state
from tinyviz.demo import images
from tinyviz.explain import familiar
from tinyviz.runs import Run, roots

CLASSIFY = _cache.CLASSIFY


def warm(runs: list[Run]) -> None:
    """Load Classify's default models, their first passes and familiarity checks, and the
    upload decoder, in the background, once per server (and again for new weights)."""
    picks = roots.best_runs(runs)
    if picks:
        _warm(tuple((str(r.path), r.stamp, _dataset.run_size(r)) for r in picks), _state.device())


@st.cache_resource(show_spinner=False, max_entries=4)
def _warm(picks: tuple, device: str) -> threading.Thread:
    def work() -> None:
        images.prepare()
        for path, stamp, size in picks:
            with contextlib.suppress(Exception):  # the page itself will say what is wrong
                grey = np.full((size, size, 3), 128, np.uint8)
                key = _cache.image_key(grey)
                pred = _cache._prediction(path, stamp, 0, key, device, grey, CLASSIFY)
                net = _cache._model(path, stamp, None, device, lane=CLASSIFY)
                method = "gradcam" if getattr(net, "gradcam_layer", None) else "gradient"
                _cache._attribution(path, stamp, None, key, pred.classes[0], method, None,
                                    device, grey, CLASSIFY)  # fmt: skip
                folder = familiar.find_analysis(Path(path))
                if folder is not None:
                    saved = familiar.stamp(folder, Path(path))
                    _familiar._familiarity(
                        path, stamp, str(folder), saved, key, device, grey, CLASSIFY
                    )

    # it fills shared caches whose functions draw nothing (no spinner): from a thread of no
    # session, Streamlit would warn "missing ScriptRunContext" for anything they drew
    thread = threading.Thread(target=work, name="tinyviz-warm-classify", daemon=True)
    thread.start()
    return thread
