"""Data: the data set's classes and images, and what training augmentation does to them."""

import pandas as pd
import streamlit as st

from pages import _augment, _dataset, _images, _state
from pages._text import plain
from tinyviz.config import AugmentConfig
from tinyviz.training import augment

_state.entry(__file__)

PER_PAGE = 32
AUG = list(AugmentConfig.__dataclass_fields__)

st.title("The data")
data = _dataset.require_data()
info = data.summary()
c = st.columns(4)
c[0].metric("Classes", f"{info['classes']:,}")
c[1].metric("Training images", f"{info['train']:,}")
c[2].metric("Validation images", f"{info['val']:,}")
c[3].metric("Corrupt (skipped)", f"{info['corrupt']:,}")
st.caption(
    f"Read from `{info['source']}` ({plain(info['layout'] or 'Tiny ImageNet')}); "
    f"decoded once to {data.size} × {data.size} arrays in `{info['cache']}`."
)

# ------------------------------------------------------------------- classes
classes = data.classes
# your own data set: a class is its folder, and has no WordNet names
ID, FULL = ("wnid", "WordNet names") if data.tiny_imagenet else ("folder", "full name")
table = pd.DataFrame(
    {
        ID: classes.wnids,
        "name": classes.names,
        FULL: classes.full_names,
        "train": data.train.counts(len(classes)),
        "val": data.val.counts(len(classes)),
    }
)
query = st.text_input(
    "Search classes",
    key="tv_data_query",
    persist_state="session",
    placeholder="e.g. cat, bus, n02124075" if data.tiny_imagenet else "a class name",
    icon=":material/search:",
)
hits = table[
    table[[ID, FULL]]
    .apply(lambda col: col.str.contains(query.strip(), case=False, regex=False))
    .any(axis=1)
]
left, right = st.columns([3, 2], gap="large")
picked = left.dataframe(
    hits,
    hide_index=True,
    height=260,
    width="stretch",
    on_select="rerun",
    selection_mode="single-row",
    key="tv_data_table",
    column_order=["name", "train", "val", ID] + [FULL] * data.tiny_imagenet,
)
if hits.empty:
    right.warning(f"No class matches “{query}”.")
    st.stop()
rows = picked.selection.rows
if rows and rows[0] < len(hits) and st.session_state.get("tv_data_row") != (query, rows[0]):
    st.session_state["tv_data_row"] = (query, rows[0])  # a click in the table picks the class
    st.session_state["tv_data_class"] = int(hits.index[rows[0]])
if st.session_state.get("tv_data_class") not in hits.index:
    st.session_state.pop("tv_data_class", None)
k = right.selectbox(
    f"Class ({len(hits)} of {len(table)} match; or click a row)",
    list(hits.index),
    format_func=lambda i: (
        classes.names[i]
        + (f" ({classes.wnids[i]})" if classes.wnids[i] != classes.names[i] else "")
    ),
    key="tv_data_class",
    persist_state="session",
)
right.markdown(
    f"**{classes.full_names[k]}**  \n{table.train[k]} training and "
    f"{table.val[k]} validation images."
)

# -------------------------------------------------------------------- images
train_idx, val_idx = data.train.of_class(k), data.val.of_class(k)
t_train, t_val = st.tabs(
    [f"Training images ({len(train_idx)})", f"Validation images ({len(val_idx)})"]
)
with t_train:
    pages = max(1, -(-len(train_idx) // PER_PAGE))
    page = st.pagination(pages, key=f"tv_data_page_{k}") if pages > 1 else 1
    shown = train_idx[(page - 1) * PER_PAGE : page * PER_PAGE]
    st.image([data.train.images[i] for i in shown], width=112)
    st.caption(
        f"Images {(page - 1) * PER_PAGE + 1}-{(page - 1) * PER_PAGE + len(shown)} of "
        f"{len(train_idx)}, shown at 112 px (decoded at {data.size} × {data.size})."
    )
with t_val:
    st.image([data.val.images[i] for i in val_idx], width=112)

# -------------------------------------------------------------- augmentation
st.subheader("Training augmentation", anchor=False)
st.caption(
    "What the trainer does to each image before the model sees it (repeatable: each "
    "Re-roll draws a new set; the same batched tensor ops as training)."
)
if len(train_idx) == 0:
    st.stop()
recipes = {
    "tinyviz defaults": AugmentConfig(),
    **{
        f"recipe of {r.name}": r.config.train.augment
        for r in _state.all_runs()
        if r.imported is None  # trained elsewhere: its recipe here is a placeholder
    },
}


def use_recipe() -> None:
    chosen = recipes[st.session_state["tv_aug_recipe"]]
    for name in AUG:  # typed like the defaults: a widget refuses an int where it has floats
        kind = type(getattr(AugmentConfig(), name))
        st.session_state[f"tv_aug_{name}"] = kind(getattr(chosen, name))


if "tv_aug_flip" not in st.session_state:
    st.session_state["tv_aug_recipe"] = "tinyviz defaults"
    use_recipe()
if st.session_state.get("tv_aug_pick", 1) > len(train_idx):
    st.session_state.pop("tv_aug_pick")
top = st.columns([1, 2])
pick = top[0].number_input(
    f"Training image of {classes.names[k]}", 1, len(train_idx), 1, key="tv_aug_pick"
)
top[1].selectbox(
    "Settings",
    list(recipes),
    key="tv_aug_recipe",
    on_change=use_recipe,
    persist_state="session",
    help="A shipped run's augmentation, or the defaults.",
)
_augment.augment_ui("tv_aug_")
cfg = AugmentConfig(**{a: st.session_state[f"tv_aug_{a}"] for a in AUG})
seed = st.session_state.setdefault("tv_aug_seed", 0)
if st.button("Re-roll", icon=":material/casino:"):
    seed = st.session_state["tv_aug_seed"] = seed + 1
image = data.train.images[train_idx[pick - 1]]
out, captions = augment.preview(image, cfg, data.train.images, n=16, seed=seed)
for r in range(2):
    row = st.columns(9)
    if r == 0:
        row[0].image(_images.big(image, 128), caption="original", width="stretch")
    versions = zip(row[1:], out[8 * r : 8 * r + 8], captions[8 * r : 8 * r + 8], strict=True)
    for col, img, cap in versions:
        col.image(_images.big(img, 128), caption=cap or " ", width="stretch")
st.caption(
    f"16 augmented versions of {data.train.files[train_idx[pick - 1]].rsplit('/')[-1]} "
    f"(draw {seed}). Mixing partners are random training images; training draws one "
    "mixing ratio per batch, here each version draws its own."
)
