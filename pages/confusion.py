"""Confusion: which classes the model mixes up on the validation set, and the images."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from pages import _contrast, _state, _widgets
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
CELL = "tv_conf_cell"  # the shown cell: (run folder, true class, answered class)
SEEN = "tv_conf_seen"  # the last selection each chart sent

data, run, out, key = _widgets.analysis_start(
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


@st.cache_resource(show_spinner="Ordering the classes...", max_entries=16)
def confusion(key: tuple, order_by: str, _out) -> confusions.Confusion:
    return confusions.confusion(_out, run.class_names, order_by=order_by, wnids=run.wnids)


@st.cache_data(show_spinner=False, max_entries=16)
def cells(key: tuple, order_by: str, _conf) -> pd.DataFrame:
    """The non-empty cells (at most one per image), placed by the order."""
    pos = np.argsort(_conf.order)
    t, p = np.nonzero(_conf.matrix)
    return pd.DataFrame(
        {
            "t": t,
            "p": p,
            "x": pos[p],
            "y": pos[t],
            "true": np.take(names, t),
            "predicted": np.take(names, p),
            "count": _conf.matrix[t, p],
            "rate": _conf.rates[t, p],
        }
    ).assign(x2=lambda d: d.x + 1, y2=lambda d: d.y + 1)


def pick(chart_key: str) -> None:
    """A click on a chart's cell makes it the shown cell (`CELL`, the one state every part
    of the page reads). A chart drawn anew (another order, a rerun after a fragment) can
    send its old selection again: only a selection that differs from the last one this
    chart sent is a click, so a stale one never takes the page back to an earlier cell."""
    chosen = st.session_state[chart_key].selection.get("cell") or []
    cell = (str(run.path), int(chosen[0]["t"]), int(chosen[0]["p"])) if chosen else None
    seen = st.session_state.setdefault(SEEN, {})
    if cell is None or seen.get(chart_key) == cell:
        return
    seen[chart_key] = cell
    st.session_state[CELL] = cell
    st.session_state[f"tv_conf_pair_{run.name}"] = None


def pick_pair() -> None:
    i = st.session_state.get(f"tv_conf_pair_{run.name}")
    if i is not None:
        st.session_state[CELL] = (str(run.path), conf.pairs[i].true, conf.pairs[i].pred)


tooltip = ["true:N", "predicted:N", "count:Q", alt.Tooltip("rate:Q", format=".1%")]
# The scale starts at a visible light blue, so one image in a cell never looks like none:
# empty cells are white (with a thin grey edge in the zoomed block).
colour = alt.Color(
    "rate:Q",
    scale=alt.Scale(type="sqrt", domain=[0, 1], scheme=alt.SchemeParams("blues", extent=[0.2, 1])),
    legend=alt.Legend(
        title="share of the true class (white: no image)",
        titleLimit=320,
        format="%",
        orient="bottom",
        gradientLength=220,
    ),
)
HIGHLIGHT = {"fill": None, "stroke": "#ff7f0e", "strokeWidth": 3}


def current_cell() -> tuple[int, int]:
    """The clicked cell (true, predicted) of this run; the most confused pair before a click."""
    stored = st.session_state.get(CELL)
    if stored and stored[0] == str(run.path):
        return stored[1], stored[2]
    return (conf.pairs[0].true, conf.pairs[0].pred) if conf.pairs else (0, 0)


def block_chart(block: np.ndarray, ct: int, cp: int) -> alt.LayerChart:
    """The zoomed block's cells with their counts. Vega draws it with its expression
    interpreter, one evaluation per cell and encoding, so what only non-empty cells need
    (the colour scale, the count) is in layers of those cells alone (a few dozen), the text
    colour is chosen here (a layer each), and one transparent layer of every cell on top
    takes the clicks and the tooltip (a selection lives in one layer only)."""
    t, p = np.repeat(block, len(block)), np.tile(block, len(block))
    every = pd.DataFrame(
        {
            "t": t,
            "p": p,
            "true": np.take(names, t),
            "predicted": np.take(names, p),
            "count": conf.matrix[t, p],
            "rate": conf.rates[t, p],
        }
    )
    full = every[every["count"] > 0]
    dark = full["rate"] > 0.45  # white numbers on the dark cells
    order_names = [names[i] for i in block]
    x = alt.X(
        "predicted:N",
        sort=order_names,
        scale=alt.Scale(domain=order_names),
        axis=alt.Axis(labelAngle=-45, labelLimit=140, labelOverlap=False, labelFontSize=11),
    )
    y = alt.Y(
        "true:N",
        sort=order_names,
        scale=alt.Scale(domain=order_names),
        axis=alt.Axis(labelLimit=140, labelOverlap=False, labelFontSize=11),
    )

    def counts(rows: pd.DataFrame, ink: str) -> alt.Chart:
        return alt.Chart(rows).mark_text(fontSize=9, color=ink).encode(x=x, y=y, text="count:Q")

    grid = (
        alt.Chart(every)
        .mark_rect(fill="transparent", stroke="#eeeeee", strokeWidth=0.5)
        .encode(x=x, y=y, tooltip=tooltip)
        .add_params(alt.selection_point(name="cell", fields=["t", "p"]))
    )
    chosen = alt.Chart(every[(every.t == ct) & (every.p == cp)]).mark_rect(**HIGHLIGHT)
    return alt.layer(
        alt.Chart(full).mark_rect().encode(x=x, y=y, color=colour.legend(None)),
        counts(full[~dark], "#333"),
        counts(full[dark], "white"),
        grid,
        chosen.encode(x=x, y=y),
    )


m = st.columns(4)
m[0].metric("Top-1 accuracy", f"{out.top1:.1%}")
m[1].metric("Top-5 accuracy", f"{out.top5:.1%}")
m[2].metric("Validation images", f"{len(out):,}")
m[3].metric("Classes", c)
st.caption(f"{run.name} ({run.model_name}). " + _widgets.measured_on(len(out), epoch=epoch))

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
pos = np.argsort(conf.order)
ct, cp = current_cell()  # read once: the charts, the images and "why" all show this cell
centre = pos[conf.pairs[0].true] if conf.pairs else 0
start = int(np.clip(centre - BLOCK // 2, 0, max(c - BLOCK, 0)))
zoom_key = f"tv_conf_zoom_{order_by}_{c}"
lo, hi = st.select_slider(
    "Zoom to a block of classes (20 to 40 read best)",
    options=range(c),
    key=zoom_key,
    value=(start, min(start + BLOCK, c) - 1),
    format_func=lambda i: f"{i + 1}. {names[conf.order[i]]}",
    persist_state="session",
)
hi = min(hi, lo + MAX_BLOCK - 1)

left, right = st.columns([1, 2])
with left:
    overview = (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X(
                "x:Q",
                scale=alt.Scale(domain=[0, c], nice=False),
                axis=alt.Axis(labels=False, ticks=False, grid=False, title="predicted class"),
            ),
            x2="x2",
            y2="y2",
            color=colour,
            tooltip=tooltip,
            y=alt.Y(
                "y:Q",
                scale=alt.Scale(domain=[0, c], nice=False, reverse=True),
                axis=alt.Axis(labels=False, ticks=False, grid=False, title="true class"),
            ),
        )
        .add_params(alt.selection_point(name="cell", fields=["t", "p"]))
    )
    frame = (
        alt.Chart(pd.DataFrame({"a": [lo], "b": [hi + 1]}))
        .mark_rect(fill=None, stroke="#d62728", strokeWidth=2)
        .encode(x="a:Q", x2="b:Q", y="a:Q", y2="b:Q")
    )
    here = pd.DataFrame({"x": [pos[cp] + 0.5], "y": [pos[ct] + 0.5]})
    shown_cell = (
        alt.Chart(here).mark_point(size=160, shape="square", **HIGHLIGHT).encode(x="x:Q", y="y:Q")
    )
    st.altair_chart(
        _widgets.many_marks(
            (overview + frame + shown_cell).properties(height=440, title=f"All {c} classes")
        ),
        on_select=lambda: pick("tv_conf_overview_chart"),
        key="tv_conf_overview_chart",
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
    st.altair_chart(
        _widgets.many_marks(
            block_chart(block, ct, cp).properties(
                height=max(300, 18 * len(block) + 160),
                title=f"Classes {lo + 1} to {hi + 1} (counts)",
            )
        ),
        on_select=lambda k=f"tv_conf_block_chart_{order_by}": pick(k),
        key=f"tv_conf_block_chart_{order_by}",
        selection_mode="cell",
    )

st.subheader("Most confused pairs")
cell = ct, cp
pairs_col, images_col = st.columns([1, 2])
with pairs_col, st.container(height=460):
    if not conf.pairs:
        st.success("No validation image was misclassified.")
    else:
        st.radio(
            "Pairs, most images first (true → predicted)",
            range(len(conf.pairs)),
            index=None,
            key=f"tv_conf_pair_{run.name}",
            on_change=pick_pair,
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
        _widgets.image_grid(
            data.val.images[out.image_index(idx)],
            [f"{names[t]} → {names[p]} {q:.0%}" for q in probs],
            per_row=6,
            px=128,
        )
    else:
        st.info("No validation image of this class got this label. Click a coloured cell.")

if t != p and epoch is not None:
    st.caption(
        f"Why {names[p]} and not {names[t]}? is answered for the final weights (its training "
        "images' features are the final model's): move the epoch slider to final."
    )
elif t != p and st.toggle(
    f"Why {names[p]} and not {names[t]}? (maps, channels and training images)",
    value=True,
    key="tv_conf_why",
    persist_state="session",
):
    rows = confusions.images_of_cell(out, t, p, limit=SHOW)
    _contrast.section_after_paint(data, run, out, t, p, rows)

st.subheader("Accuracy per class")
rows = pd.DataFrame(confusions.per_class_table(conf, names, run.wnids))
half = min(len(conf.best), c // 2)
best_worst = pd.concat(
    [
        rows.loc[conf.best[:half]].assign(group="best"),
        rows.loc[conf.worst[:half]].assign(group="worst"),
    ]
)
chart_col, table_col = st.columns([2, 3])
chart_col.altair_chart(
    alt.Chart(best_worst)
    .mark_bar()
    .encode(
        x=alt.X("accuracy:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("name:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelLimit=170)),
        tooltip=["name", alt.Tooltip("accuracy", format=".0%"), "confused_with"],
        color=alt.Color(
            "group:N",
            scale=alt.Scale(domain=["best", "worst"], range=["#2ca02c", "#d62728"]),
            title=None,
        ),
    )
    .properties(height=18 * len(best_worst) + 90, title=f"The {half} best and {half} worst classes")
)
table_col.dataframe(
    rows.sort_values("accuracy"),
    hide_index=True,
    height=18 * len(best_worst) + 90,
    column_order=["name", "accuracy", "correct", "images", "confused_with", "confused_count"],
    column_config={
        "accuracy": st.column_config.ProgressColumn(
            "accuracy", format="percent", min_value=0, max_value=1
        ),
        "confused_with": "most often taken for",
        "confused_count": "times",
        "correct": "right",
        "name": "class",
    },
)
st.caption("Click a column header to sort. " + _widgets.measured_on(len(out), epoch=epoch))
