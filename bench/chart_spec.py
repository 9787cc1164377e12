"""What drawing the top-5 chart (Classify and Saliency draw one per model and answer) costs
the server: as an Altair chart (`st.altair_chart`: the chart's objects built, and Altair's
schema validation on every call) against the Vega-Lite dict `charts.predictions.top5_spec`
writes (`st.vega_lite_chart`), the same spec.

    python bench/chart_spec.py [--repeat 200]

Both calls run as in a script run of the server (Streamlit's bare mode: the element is
built, its spec converted and its data serialised, nothing is sent). Milliseconds per
chart, the median of `--repeat` calls; the ratio is of the two measured in this run.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from _common import table


class Pred:
    """A prediction as `top5_chart` reads it: five classes, one of them the truth."""

    names = ["tabby cat", "Egyptian cat", "tiger cat", "Persian cat", "lynx"]
    wnids = ["n02123045", "n02124075", "n02123159", "n02123394", "n02127052"]
    probs = [0.61, 0.22, 0.09, 0.05, 0.01]
    classes = [11, 12, 13, 14, 15]


def in_altair(spec: dict):
    """The chart of `spec` built as the page built it with Altair before (its DataFrame,
    encodings, layers, filters), the way most Streamlit apps draw such a chart."""
    import altair as alt
    import pandas as pd

    y = spec["encoding"]["y"]
    base = alt.Chart(pd.DataFrame(spec["data"]["values"])).encode(
        y=alt.Y("class:N", sort=y["sort"], title=None, axis=alt.Axis(**y["axis"])),
        x=alt.X("p:Q", title=None, scale=alt.Scale(domain=[0, 1]), axis=None),
        tooltip=[alt.Tooltip("full:N", title="class"), alt.Tooltip("wnid:N"),
                 alt.Tooltip("p:Q", title="probability", format=".1%")],
    )  # fmt: skip
    bars, left, right = spec["layer"]
    colour = bars["encoding"]["color"]
    layers = [base.mark_bar(cornerRadiusEnd=3, height=20).encode(
        color=alt.condition("datum.hit", alt.value(colour["condition"]["value"]),
                            alt.value(colour["value"])))]  # fmt: skip
    for text in (left, right):
        mark = {k: v for k, v in text["mark"].items() if k != "type"}
        layers.append(
            base.transform_filter(text["transform"][0]["filter"])
            .mark_text(**mark)
            .encode(text=alt.Text("p:Q", format=".1%"))
        )
    return alt.layer(*layers).properties(height=spec["height"]).configure_view(stroke=None)


def per_call(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=200)
    args = p.parse_args()
    logging.disable(logging.WARNING)  # bare mode warns once per call
    import streamlit as st

    from pages.charts.predictions import top5_spec

    def spec():
        return top5_spec(Pred(), true_class=12)

    rows, times = [], {}
    for name, draw in (
        ("st.altair_chart(the same chart built in Altair)",
         lambda: st.altair_chart(in_altair(spec()), width="stretch")),
        ("st.vega_lite_chart(spec=top5_spec(...))",
         lambda: st.vega_lite_chart(spec=spec(), width="stretch")),
        ("  of which: top5_spec(...)", spec),
    ):  # fmt: skip
        draw()  # imports and caches warmed
        times[name] = per_call(draw, args.repeat)
        rows.append([name, f"{times[name] * 1000:.2f} ms"])
    slow, fast = (times[r[0]] for r in rows[:2])
    rows.append(["ratio (Altair / the dict)", f"{slow / fast:.1f}x"])
    print(table("The top-5 chart, per call (median)", ["what", "time"], rows))


if __name__ == "__main__":
    main()
