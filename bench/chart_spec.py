"""What drawing the charts a crowded poster server draws most costs its one interpreter:
the same charts built with Altair (`st.altair_chart`: the chart objects built and Altair's
schema validation run on every call), as the pages drew them at `--before`, against what the
pages write now: Classify's and Saliency's top-5 (one per model and answer) as plain HTML
(`st.html`), Confusion's overview and zoomed block (every script run of the page) as
Vega-Lite dicts (`st.vega_lite_chart`); on a 200-class matrix with as many confusions as
effnet_lite2-finetune's.

    python bench/chart_spec.py [--before c76a187] [--repeat 50]

The charts of `--before` are that commit's own modules, read from git. Each call runs as
in a script run of the server (Streamlit's bare mode: the element is built, its spec
converted and its data serialised, nothing sent). Milliseconds per chart, the median of
`--repeat` calls; ratios are of times measured in this run.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import time
import types

import numpy as np
from _common import ROOT, table


class Pred:
    """A prediction as the top-5 chart reads it: five classes, one of them the truth."""

    names = ["tabby cat", "Egyptian cat", "tiger cat", "Persian cat", "lynx"]
    wnids = ["n02123045", "n02124075", "n02123159", "n02123394", "n02127052"]
    probs = [0.61, 0.22, 0.09, 0.05, 0.01]
    classes = [11, 12, 13, 14, 15]


def old_module(rev: str, path: str, uses: dict[str, types.ModuleType] | None = None):
    """The module at `path` as it was at commit `rev`; `uses`: modules it imports, as they
    were then too (by their import name), in place of today's while it is read."""
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    module = types.ModuleType(f"before_{path.replace('/', '_')}")
    saved = {name: sys.modules.get(name) for name in uses or {}}
    sys.modules.update(uses or {})
    try:
        exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 - our own history
    finally:
        for name, was in saved.items():
            sys.modules.pop(name) if was is None else sys.modules.__setitem__(name, was)
    return module


def confusions(classes: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A matrix of 50 images per class, 77% right, the mistakes spread as a trained
    model's are (most classes mistaken for a few): about 1,900 non-empty cells."""
    rng = np.random.default_rng(seed)
    matrix = np.zeros((classes, classes), int)
    for t in range(classes):
        near = rng.choice(classes, 8, replace=False)
        answers = np.where(rng.random(50) < 0.77, t, rng.choice(near, 50))
        np.add.at(matrix[t], answers, 1)
    return matrix, matrix / matrix.sum(1, keepdims=True)


def per_call(fn, repeat: int) -> float:
    fn()  # imports and caches warmed
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", default="c76a187")
    p.add_argument("--repeat", type=int, default=50)
    args = p.parse_args()
    logging.disable(logging.WARNING)  # bare mode warns once per call
    import streamlit as st

    from pages.charts import confusion, predictions

    old_top5 = old_module(args.before, "pages/charts/predictions.py")
    old_conf = old_module(
        args.before, "pages/charts/confusion.py", {"pages.charts.predictions": old_top5}
    )
    matrix, rates = confusions()
    names = [f"class {i}" for i in range(len(matrix))]
    order = np.arange(len(matrix))
    cells = confusion.cells(matrix, rates, order, names)
    block = order[:30]

    def spec(build):
        return lambda: st.vega_lite_chart(spec=build(), width="stretch")

    charts = {
        "top-5": (lambda: old_top5.top5_chart(Pred(), true_class=12),
                  lambda: st.html(predictions.top5_html(Pred(), true_class=12))),
        f"Confusion overview ({len(cells):,} cells)":
            (lambda: old_conf.overview(cells, len(names), (0, 29), (3, 4)),
             spec(lambda: confusion.overview(cells, len(names), (0, 29), (3, 4)))),
        "Confusion block (30 x 30)":
            (lambda: old_conf.block(matrix, rates, names, block, (2, 5), "zoom"),
             spec(lambda: confusion.block(matrix, rates, names, block, (2, 5), "zoom"))),
    }  # fmt: skip
    rows = []
    for name, (altair, now) in charts.items():
        slow = per_call(lambda a=altair: st.altair_chart(a(), width="stretch"), args.repeat)
        fast = per_call(now, args.repeat)
        rows.append([name, f"{slow * 1000:.1f} ms", f"{fast * 1000:.2f} ms", f"{slow / fast:.0f}x"])
    print(table(f"Charts per call, median of {args.repeat} (Altair as at {args.before})",
                ["chart", "st.altair_chart (Altair)", "now (Vega-Lite dict; top-5: HTML)",
                 "ratio"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
