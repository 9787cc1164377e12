"""Channels: the validation images that excite one channel most, and where (as in
Scaling of Inception Layers for Reduced Scale Classification)."""

import numpy as np
import streamlit as st

from pages import _cache, _channel_maps, _gate, _images, _state
from pages.charts import channels as charts
from tinyviz.explain import channels, speed

_state.entry(__file__)

data, run, out, key = _gate.analysis_start(
    "Channels: what single neurons respond to",
    "Each channel of a convolutional layer is a detector. The page starts on the channel "
    "whose 50 strongest images are most often of one class.",
)
names = run.class_names
epoch = key.epoch  # the epoch slider's choice (None: the final weights)


@st.cache_data(show_spinner=False, max_entries=16)
def purity(key: tuple, layer: str, _acts, _labels) -> np.ndarray:
    return channels.class_purity(_acts, _labels)


layers = _cache.analysis(key.folder).channels
if not layers:
    st.info(
        f"{run.name} ({run.model_name}) has no convolutional layers to look into: it "
        "works on the pixels directly. Choose a convolutional run in the sidebar."
    )
    st.stop()
names_of_layers = list(layers)


described = _cache.layers(run)  # "Stage 4, block 2 · 8×8 · 512 channels" by module name


def layer_label(layer: str) -> str:
    info = described.get(layer)
    return info.label if info else f"{layer}, {layers[layer].channels} channels"


top = st.columns([3, 1, 1.4, 1.4])
layer = top[0].selectbox(
    "Layer",
    names_of_layers,
    index=len(names_of_layers) - 1,
    format_func=layer_label,
    key="tv_ch_layer",
    persist_state="session",
    help="Early layers see small patches at full resolution; late ones see most of the "
    "image, coarsely. Module names in the code: "
    + "; ".join(f"{described[n].title} = `{n}`" for n in names_of_layers if n in described),
)
acts = layers[layer]
summary = channels.channel_summary(acts)
ch_key = f"tv_ch_channel_{run.name}_{layer}"
st.session_state.setdefault(ch_key, int(purity(key, layer, acts, out.labels).argmax()))
channel = int(
    top[1].number_input("Channel", 0, acts.channels - 1, key=ch_key, persist_state="session")
)
k = top[2].segmented_control(
    "Images", [6, 12, 24], default=6, required=True, key="tv_ch_k", persist_state="session"
)
style = top[3].segmented_control(
    "Gradient map",
    ["alone", "over image"],
    default="alone",
    required=True,
    key="tv_ch_style",
    persist_state="session",
)


def pick() -> None:
    chosen = st.session_state["tv_ch_bars"].selection.get("channel") or []
    if chosen:
        st.session_state[ch_key] = int(chosen[0]["channel"])


bars_col, hist_col = st.columns([2, 1])
bars_col.altair_chart(
    charts.channel_bars(summary, channel),
    on_select=pick,
    key="tv_ch_bars",
    selection_mode="channel",
)
best50 = channels.top_images(acts, channel, 50)
hist_col.altair_chart(
    charts.preferred_classes(list(np.take(names, out.labels[best50])), len(best50))
)

idx = channels.top_images(acts, channel, int(k))
peaks = channels.top_values(acts, channel, int(k))
images = [int(out.image_index(i)) for i in idx]  # validation images of these rows
cost = speed.of_run(run, _state.device())
seconds = cost.gradient_maps_seconds(len(idx)) if cost else 0.0
slow = seconds > speed.FAST_PAGE_SECONDS
with_maps = st.toggle(
    "Gradient maps" + (f" ({speed.duration(seconds)} per channel here)" if slow else ""),
    value=not slow,
    key=f"tv_ch_maps_{run.name}",
    help="Where in each image the channel looks. Estimated from this model's measured "
    f"speed on this {_state.device().upper()}: {speed.duration(seconds)} for "
    f"{len(idx)} images.",
)
st.subheader(
    f"Channel {channel} of {described[layer].title if layer in described else layer}: "
    f"its {len(idx)} strongest validation images",
    help=f"Module `{layer}` of {run.model_name}.",
)
_images.heat_scale(
    "gradient map: the channel hardly changes",
    "changes most",
    **({} if style == "alone" else {"alpha": 0.9, "weighted": True}),
)
captions = [
    f"{'✓' if out.labels[i] == out.preds[i] else '✗'} {names[out.labels[i]]}"
    + ("" if out.labels[i] == out.preds[i] else f", said {names[out.preds[i]]}")
    + f" · {peaks[n]:.1f}"
    for n, i in enumerate(idx)
]
if not with_maps:
    st.caption(
        f"Gradient maps are off: {speed.duration(seconds)} for these {len(idx)} images with "
        "this model here. Turn them on above to see where the channel looks."
    )
slots = _channel_maps.grid(data, images)  # the images at once; their maps fill in after
maps = None
if with_maps:
    with st.spinner(f"Gradient maps of {len(idx)} images ({speed.duration(seconds)})..."):
        maps = _channel_maps.maps(key, run, data, layer, channel, images, epoch)
_channel_maps.fill(slots, data, images, captions, maps, style)
st.caption(
    "Under each image, its gradient map: how much each pixel changes this channel's "
    "strongest response (bright = a small change there moves the channel a lot; "
    "square-root scale). It shows where in the image the channel looks: a small spot "
    "in early layers, which see a small patch, larger areas in late ones. ✓/✗: "
    "whether the model's top-1 answer was right; the number is the channel's peak "
    "response. "
    + _gate.measured_on(
        len(out), "ranked by the channel's maximum over the image; single model", epoch=epoch
    )
)
