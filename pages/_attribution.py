"""The Saliency page's maps: computed in the script run when they take a moment, asked of
the background workers (`tinyviz.explain.work`, kind "saliency") when they would take
seconds of the server's CPU, so one visitor's Integrated Gradients never keeps another
visitor's Classify waiting. A stored map is shared by every visitor."""

from __future__ import annotations

import numpy as np

from pages import _cache
from tinyviz.explain import work
from tinyviz.runtime.tasks import TaskState


def request(run, data, rgb: np.ndarray, target: int, method: str, layer: str | None):
    """The background work of one map (keyed by the image's content and the weights)."""
    return work.Request(
        "saliency",
        str(run.path),
        str(data.source),
        data.size,
        {
            "method": method,
            "target": int(target),
            "layer": layer,
            "image": work.save_image(rgb),
            "snapshot": None,
            "stamp": list(run.stamp),
        },
    )


def get(run, data, rgb, target: int, method: str, layer, *, background: bool):
    """(the map, None) when it is there; (None, (request, state)) while a worker has it."""
    if not background:
        return _cache.attribution(run, rgb, target, method, layer=layer), None
    req = request(run, data, rgb, target, method, layer)
    att = work.attribution(req)
    if att is None:
        now: TaskState = work.request(req)
        att = work.attribution(req) if now.state == "done" else None
        if att is None:
            return None, (req, now)
    return att, None
