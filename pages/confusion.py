"""Confusion: which classes the model mixes up on the validation set, and the images."""

import numpy as np
import pandas as pd
import streamlit as st

from pages import _cache, _cell, _contrast, _gate, _images, _per_class, _state, _turns
from pages.charts import confusion as charts
from tinyviz.explain import confusion as confusions
from tinyviz.explain import wordnet

_state.entry(__file__)

ORDERS = {
    "wordnet": "WordNet hierarchy",
    "confusion": "confusion clustering",
    "feature": "feature similarity",
    "name": "name",
}
BLOCK, MAX_BLOCK, SHOW = 30, 40, 24

data, run, out, key = _gate.analysis_start(
    "Confusion: what is mistaken for what",
    "Each row is a true class, each column the model's answer: the diagonal is right, "
    "everything else is a mistake. Click a cell or a pair to see its images.",
)
names = run.class_names
c = len(names)
epoch = key.epoch  # the epoch slider's choice (None: the final weights)
if not wordnet.covers(run.wnids):  # your own data set: its folder names are not synsets
    ORDERS = {k: v for k, v in ORDERS.items() if k != "wordnet"}
    if st.session_state.get("tv_conf_order") not in ORDERS:  # kept from a Tiny ImageNet run
        st.session_state.pop("tv_conf_order", None)


@_cache.forgettable
@st.cache_resource(show_spinner="Ordering the classes...", max_entries=16)
def confusion(key: tuple, order_by: str, _out) -> confusions.Confusion:
    return confusions.confusion(_out, run.class_names, order_by=order_by, wnids=run.wnids)


@st.cache_data(show_spinner=False, max_entries=16)
def cells(key: tuple, order_by: str, _conf) -> pd.DataFrame:
    return charts.cells(_conf.matrix, _conf.rates, _conf.order, names)


m = st.columns(4)
m[0].metric("Top-1 accuracy", f"{out.top1:.1%}")
m[1].metric("Top-5 accuracy", f"{out.top5:.1%}")
m[2].metric("Validation images", f"{len(out):,}")
m[3].metric("Classes", c)
st.caption(f"{run.name} ({run.model_name}). " + _gate.measured_on(len(out), epoch=epoch))

order_by = st.segmented_control(
    "Order the classes by",
    list(ORDERS),
    format_func=ORDERS.get,
    default=next(iter(ORDERS)),
    required=True,
    key="tv_conf_order",
    persist_state="session",
)
conf = confusion(key, order_by, out)
df = cells(key, order_by, conf)


def matrices(cell: tuple[int, int]) -> None:
    """The zoom slider and both matrices, `cell` ringed on each."""
    pos = np.argsort(conf.order)
    zoom_key, around = _cell.zoom(order_by, cell, pos, BLOCK)  # the block shows the cell
    lo, hi = st.select_slider(
        "Zoom to a block of classes (20 to 40 read best)",
        options=range(c),
        key=zoom_key,
        value=around,
        format_func=lambda i: f"{i + 1}. {names[conf.order[i]]}",
        persist_state="session",
    )
    hi = min(hi, lo + MAX_BLOCK - 1)
    ct, cp = cell
    left, right = st.columns([1, 2])
    with left:
        overview_key = _cell.chart_key("overview", order_by, cell)
        st.vega_lite_chart(
            spec=charts.overview(df, c, (lo, hi), (pos[cp], pos[ct])),
            on_select=lambda k=overview_key: _cell.pick(run, k),
            key=overview_key,
            selection_mode="cell",
        )
        st.caption(
            f"Ordered by {ORDERS[order_by]}; the red square is the zoomed block, the orange "
            "one the cell whose images are shown below. Colour: share of the true class's "
            "images given each label (square-root scale); white: none. Click a cell to see "
            "its images."
        )
    with right:
        block = conf.order[lo : hi + 1]
        block_key = _cell.chart_key("block", order_by, cell)
        st.vega_lite_chart(
            spec=charts.block(
                conf.matrix,
                conf.rates,
                names,
                block,
                cell,
                f"Classes {lo + 1} to {hi + 1} (counts)",
            ),
            on_select=lambda k=block_key: _cell.pick(run, k),
            key=block_key,
            selection_mode="cell",
        )


def pairs_and_images(cell: tuple[int, int]) -> None:
    """The most confused pairs (the shown cell's chosen) and the cell's images."""
    st.subheader("Most confused pairs")
    pairs_col, images_col = st.columns([1, 2])
    with pairs_col, st.container(height=460):
        if not conf.pairs:
            st.success("No validation image was misclassified.")
        else:
            _cell.sync_pairs_list(run, conf.pairs, cell)
            st.radio(
                "Pairs, most images first (true → predicted)",
                range(len(conf.pairs)),
                index=None,
                key=_cell.pair_key(run),
                on_change=_cell.pick_pair,
                args=(run, conf.pairs),
                format_func=lambda i: (
                    f"{names[conf.pairs[i].true]} → {names[conf.pairs[i].pred]}: "
                    f"{conf.pairs[i].count} of {conf.totals[conf.pairs[i].true]} "
                    f"({conf.pairs[i].rate:.0%})"
                ),
            )
    with images_col:
        t, p = cell
        idx = confusions.images_of_cell(out, t, p, limit=SHOW)
        what = "correctly classified" if t == p else f"taken for **{names[p]}**"
        st.markdown(
            f"**{names[t]}** {what}: {conf.matrix[t, p]} of {conf.totals[t]} validation "
            f"images" + (f", the {len(idx)} most confident shown" if len(idx) else "")
        )
        if len(idx):
            probs = np.exp(out.logp[idx, p])
            _images.image_grid(
                data.val.images[out.image_index(idx)],
                [f"{names[t]} → {names[p]} {q:.0%}" for q in probs],
                per_row=6,
                px=128,
            )
        else:
            st.info("No validation image of this class got this label. Click a coloured cell.")


def why(cell: tuple[int, int]) -> None:
    """ "Why B and not A" for the shown cell (the final weights only)."""
    t, p = cell
    if t != p and epoch is not None:
        st.caption(
            f"Why {names[p]} and not {names[t]}? is answered for the final weights (its "
            "training images' features are the final model's): move the epoch slider to final."
        )
    elif t != p and st.toggle(
        f"Why {names[p]} and not {names[t]}? (maps, channels and training images)",
        value=True,
        key="tv_conf_why",
        persist_state="session",
    ):
        rows = confusions.images_of_cell(out, t, p, limit=SHOW)
        _contrast.section_after_paint(data, run, out, t, p, rows)


@_turns.fragment("Confusion")
def shown_cell() -> None:
    """All that the shown cell changes. A fragment: a click on a matrix or in the list
    reruns and redraws this part alone, not the page's table and bars; and the matrices
    keep their keys and specs (`_cell.chart_key`), so the visitor's browser moves their
    rings instead of building both charts again (issue 19)."""
    cell = _cell.current(run, conf.pairs)  # read once: every part shows this cell
    matrices(cell)
    pairs_and_images(cell)
    why(cell)


shown_cell()

st.subheader("Accuracy per class")
_per_class.section(conf, names, run.wnids, _gate.measured_on(len(out), epoch=epoch))
