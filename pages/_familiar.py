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
def _checker(
    path: str, stamp: tuple[int, int], folder: str, saved: tuple
) -> familiar.Checker | None:
    """Keyed by the analysis folder too, so a run analysed since is checked from then on,
    and by its calibration file's stamp, so a measurement stored since is read."""
    return familiar.checker(Path(path))


@st.cache_resource(show_spinner=False, max_entries=256)
def _familiarity(
    path: str,
    stamp: tuple[int, int],
    folder: str,
    saved: tuple,
    key: str,
    device: str,
    _rgb: np.ndarray,
    lane: str = _cache.EXPLAIN,
) -> familiar.Familiarity | None:
    net = _cache._model(path, stamp, None, device, lane=lane)
    checker = _checker(path, stamp, folder, saved)
    if not predict.judges(net, checker):
        return None
    return predict.judge(_cache._look(path, stamp, key, device, _rgb, lane), checker)


def familiarity(
    run: Run, rgb: np.ndarray, lane: str = _cache.EXPLAIN
) -> familiar.Familiarity | None:
    """The photo's familiarity to the run (its final weights; `lane`: whose model object,
    `_cache`); None before its analysis."""
    folder = familiar.find_analysis(run.path)
    if folder is None:
        return None
    saved = familiar.stamp(folder, run.path)
    key = _cache.image_key(rgb)
    return _familiarity(
        str(run.path), run.stamp, str(folder), saved, key, _state.device(), rgb, lane
    )


def note(fam: familiar.Familiarity | None) -> None:
    """The warning for an unfamiliar photo and what its score means; for a model whose score
    the bench found no use, that it cannot tell; nothing for a familiar photo."""
    if fam is None:
        return
    m = fam.measured
    if not fam.can_tell:
        st.caption(
            ":material/block: This model cannot tell photos of its classes from photos of "
            f"other things: tested on {m.photos} photos of none of them, it flagged only "
            f"{m.caught:.0%}, against {1 - familiar.QUANTILE:.0%} of its own validation photos. "
            "So it cannot warn you when a photo is none of its classes.",
            help=f"AUROC {m.auroc:.2f} (0.5 is chance), measured by bench/unfamiliar.py; a "
            f"verdict is given from {familiar.CAN_TELL}.",
        )
        return
    if fam.familiar:
        return
    st.warning(fam.sentence, icon=":material/help:")
    how_well = (
        f"This check catches {m.caught:.0%} of photos of other things (tested on {m.photos}) "
        f"and wrongly warns on {1 - familiar.QUANTILE:.0%} of photos of its classes."
        if m is not None
        else "How often this check is right has not been measured for this model."
    )
    known = "how far the photo's features lie from those of the photos the model knows"
    guess = f"how weak its best guess is ({fam.confidence:.0%})"
    adds = (
        f"adds {known} to {guess}"
        if fam.gauss is None
        else f"adds up {known}, how far from what is typical of its nearest class, and {guess}"
    )
    maha = ", the Mahalanobis distance to the nearest class (Lee et al. 2018)"
    maha = "" if fam.gauss is None else maha
    st.caption(
        f"Unfamiliarity {fam.score:.1f}; it warns above {fam.threshold:.1f}. The score {adds}. "
        + how_well,
        help="The distance to the 10th nearest validation photo in the model's feature space"
        + maha
        + " and 1 minus its top probability, each counted in standard deviations over the "
        "validation photos, then summed (bench/unfamiliar.py measured this score"
        + ("" if m is None else f": AUROC {m.auroc:.2f} on this model, 1.0 is perfect")
        + ").",
    )
