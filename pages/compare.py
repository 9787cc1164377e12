"""Compare two models: on the same validation images, where they agree and where one wins."""

import pandas as pd
import streamlit as st

from pages import _cache, _dataset, _disagree, _gate, _runs, _state
from pages._text import plain
from pages.charts import compare as charts
from tinyviz.explain import compare
from tinyviz.explain import saliency as explain

_state.entry(__file__)

PER_PAGE, WINS = 4, 8
MAPS = ("gradcam", "gradient", "guided_backprop")

st.header("Two models side by side")
st.caption(
    "The same validation images through two runs trained on the same classes (from scratch "
    "against transfer, two random starts, two architectures): where they agree, where one is right "
    "and the other wrong, and why."
)
data = _dataset.require_data()
runs = [r for r in _runs.require_runs() if list(r.wnids) == list(data.classes.wnids)]
if len(runs) < 2:
    st.info(
        f"Comparing needs two runs trained on this data set's {len(data.classes)} classes; "
        f"found {len(runs)}. Train another one on the Train page."
    )
    st.stop()
paths = [str(r.path) for r in runs]
by_path = {str(r.path): r for r in runs}
current = _state.current_run()
first = str(current.path) if current and str(current.path) in by_path else paths[0]
pick = st.columns(2)
a_path = pick[0].selectbox(
    "Model A", paths, index=paths.index(first), format_func=lambda p: _runs.run_label(by_path[p])
)
others = [p for p in paths if p != a_path]
# the default B: the best run of the other kind (transfer against from scratch) if any
contrast = [p for p in others if by_path[p].transfer != by_path[a_path].transfer]
b_path = pick[1].selectbox(
    "Model B",
    others,
    index=others.index((contrast or others)[0]),
    format_func=lambda p: _runs.run_label(by_path[p]),
    key=f"tv_cmp_b_{a_path}",
)
run_a, run_b = by_path[a_path], by_path[b_path]
out_a = _gate.ensure_analysis(run_a, data).outputs
out_b = _gate.ensure_analysis(run_b, data).outputs
names = run_a.class_names


@_cache.forgettable
@st.cache_resource(show_spinner=False, max_entries=8)
def comparison(key_a: tuple, key_b: tuple, _a, _b) -> compare.Comparison:
    return compare.compare(_a, _b, len(names))


c = comparison((a_path, run_a.stamp, len(out_a)), (b_path, run_b.stamp, len(out_b)), out_a, out_b)
A, B = plain(run_a.name), plain(run_b.name)
m = st.columns(4)
m[0].metric(f"A: {run_a.name}", f"{c.right_a.mean():.1%}", help="top-1 on these images")
m[1].metric(
    f"B: {run_b.name}",
    f"{c.right_b.mean():.1%}",
    f"{(c.right_b.mean() - c.right_a.mean()) * 100:+.1f} points against A",
)
m[2].metric("Same answer", f"{c.same_answer:.1%}", help="both give the same class, right or not")
m[3].metric(
    "McNemar p",
    "< 1e-10" if c.p_value < 1e-10 else f"{c.p_value:.2g}",
    help="The chance of a split of the images only one gets right at least this uneven if "
    "both models were equally good: under 0.05, the difference is unlikely to be luck.",
)
st.caption(_gate.measured_on(c.n, "single models, no test-time augmentation"))

left, right = st.columns([2, 3], gap="large")
with left:
    counts = c.matrix
    st.altair_chart(charts.agreement(counts, c.n), width="stretch")
    st.caption(
        f"{c.same_wrong:,} of the {counts[1, 1]:,} images both get wrong get the SAME wrong "
        "answer: the harder images, or a shared confusion."
    )
with right:
    a_wins, b_wins = c.wins(WINS)
    acc_a, acc_b, count = c.per_class()
    rows = pd.DataFrame(
        [
            {
                "class": f"{names[k]} ({side} {abs(acc_a[k] - acc_b[k]) * 100:+.0f} pts)",
                "model": who,
                "accuracy": acc,
            }
            for side, ks in (("A", a_wins), ("B", b_wins))
            for k in ks
            for who, acc in (("A", acc_a[k]), ("B", acc_b[k]))
        ]
    )
    if rows.empty:
        st.info("Neither model is better than the other on any class.")
    else:
        st.altair_chart(charts.class_wins(rows))
        st.caption(
            f"Accuracy on each class's {int(count.max())} validation images (or fewer): the "
            f"{len(a_wins)} classes A wins by most, then the {len(b_wins)} B wins by most."
        )

st.subheader("Images one gets right and the other wrong")
which = st.segmented_control(
    "Show",
    ["a", "b"],
    format_func=lambda w: (
        f"A right, B wrong ({len(c.only_right('a')):,})"
        if w == "a"
        else f"B right, A wrong ({len(c.only_right('b')):,})"
    ),
    default="a",
    required=True,
    key="tv_cmp_which",
)
method = st.segmented_control(
    "Saliency of each model's answer",
    MAPS,
    format_func=lambda m: explain.method_info(m).label,
    default="gradcam",
    required=True,
    key="tv_cmp_map",
)
images = c.only_right(which)
if not len(images):
    st.info("No such image.")
    st.stop()
pages = max(1, -(-len(images) // PER_PAGE))
page = (
    st.slider("Page", 1, pages, 1, key=f"tv_cmp_page_{which}_{a_path}_{b_path}") if pages > 1 else 1
)


for i in images[(page - 1) * PER_PAGE : page * PER_PAGE]:
    _disagree.row(data, int(i), names, method, (("A", run_a, out_a), ("B", run_b, out_b)))
st.caption(
    f"Images {(page - 1) * PER_PAGE + 1} to {min(page * PER_PAGE, len(images))} of "
    f"{len(images):,}; top-5 of each model (the true class in green) and the saliency map of "
    "its own answer."
)
