"""The Channels page's gradient maps: where in each of a channel's strongest images the
channel looks.

The images show at once. The maps of the first `HERE` images (a backward pass each: a
fraction of a second) are computed in the script run; those of more images (12 or 24) are
background work (`tinyviz.explain.work`, kind "channel-gradients"), stored with the run and
shared by every visitor; their places say so, and a fragment draws the page again when they
are stored.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from pages import _cache, _images, _queued
from tinyviz.demo.heatmaps import heat_to_rgb, overlay
from tinyviz.explain import channels, work

HERE = 6  # maps computed in the script run; the rest in the background
PER_ROW = 6


@st.cache_data(show_spinner=False, max_entries=64)
def _gradients(key: tuple, layer: str, channel: int, images: tuple, _model, _data) -> np.ndarray:
    return channels.channel_gradients(_model, _data.val.images[list(images)], layer, channel)


def request(run, data, layer: str, channel: int, images: list[int], epoch) -> work.Request:
    """The background work of the maps of `images` (keyed by the weights' stamp too)."""
    return work.Request(
        "channel-gradients",
        str(run.path),
        str(data.source),
        data.size,
        {
            "layer": layer,
            "channel": int(channel),
            "images": [int(i) for i in images],
            "epoch": epoch,
            "stamp": list(run.stamp),
        },
    )


def maps(key, run, data, layer: str, channel: int, images: list[int], epoch) -> list:
    """A map per image: computed here for the first `HERE`, read (or asked for in the
    background: None until stored) for the others."""
    net = _cache.model(run, epoch=epoch)
    first = list(_gradients(key, layer, channel, tuple(images[:HERE]), net, data))
    rest = images[HERE:]
    if not rest:
        return first
    req = request(run, data, layer, channel, rest, epoch)
    stored = work.channel_maps(req)
    if stored is None:
        now = work.request(req)
        stored = work.channel_maps(req) if now.state == "done" else None
        if stored is None:
            _pending(req, now, len(rest))
    return first + (list(stored) if stored is not None else [None] * len(rest))


def _pending(req: work.Request, now, n: int) -> None:
    if now.state == "failed":
        st.error(f"The maps of the other {n} images could not be computed: {now.error}")
        return
    st.fragment(_follow, run_every=_queued.FOLLOW_EVERY)(req, n)


def _follow(req: work.Request, n: int) -> None:
    now = work.status(req)
    if not now.active:
        st.rerun(scope="app")
    with st.container(key=_queued.KEY):
        st.progress(now.fraction, text=f"The maps of the other {n} images: {_queued.describe(now)}")


def grid(data, images: list[int]) -> list:
    """The images in rows at once, each with an empty place under it for its map."""
    slots = []
    for start in range(0, len(images), PER_ROW):
        for col, j in zip(st.columns(PER_ROW), images[start : start + PER_ROW], strict=False):
            col.image(_images.enlarge(data.val.images[j]), width="stretch")
            slots.append(col.empty())
    return slots


def fill(slots, data, images: list[int], captions: list[str], maps, style: str) -> None:
    """Each image's map and caption in its place (the caption alone while it has no map)."""
    for n, (slot, j) in enumerate(zip(slots, images, strict=True)):
        heat = None if maps is None else maps[n]
        if heat is None:
            slot.caption(captions[n] + ("" if maps is None else " · map coming"))
            continue
        heat = np.sqrt(heat)  # square root: weak but real gradients stay visible
        shown = (
            heat_to_rgb(heat)
            if style == "alone"
            else overlay(data.val.images[j], heat, 0.9, weighted=True)
        )
        slot.image(_images.enlarge(shown), width="stretch", caption=captions[n])
