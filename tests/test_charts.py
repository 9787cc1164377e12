"""The charts are built from plain data, without Streamlit or a run: each one here from a
few numbers, checked for what a visitor reads off it (its data, its selection, its scales)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest

from pages.charts import (
    channels,
    compare,
    confusion,
    embedding,
    leaderboard,
    predictions,
    sanity,
    training,
)
from tinyviz.io import shown_name

CHARTS = Path(__file__).resolve().parents[1] / "pages" / "charts"


def spec(chart) -> dict:
    return json.loads(chart.to_json())


def valid(drawn: dict) -> dict:
    """A Vega-Lite dict the pages draw, its DataFrames as rows, checked against Vega-Lite's
    schema (as Altair checks its charts)."""
    records = {k: json.loads(f.to_json(orient="records")) for k, f in drawn["datasets"].items()}
    plain = json.loads(json.dumps({**drawn, "datasets": records}))
    alt.TopLevelLayerSpec.validate(plain)
    return plain


def rows(chart) -> list[dict]:
    """Every data row of an Altair chart's datasets, in one list."""
    return [r for values in spec(chart).get("datasets", {}).values() for r in values]


def params(d) -> set[str]:
    """The names of every selection parameter anywhere in a spec."""
    found = set()
    if isinstance(d, dict):
        for p in d.get("params", []) or []:
            found.add(p["name"])
        for v in d.values():
            found |= params(v)
    elif isinstance(d, list):
        for v in d:
            found |= params(v)
    return found


@pytest.mark.parametrize("path", sorted(CHARTS.glob("*.py")), ids=lambda p: p.name)
def test_no_chart_module_imports_streamlit_or_tinyviz(path):
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] in ("streamlit", "tinyviz")]


def test_the_confusion_charts_place_cells_by_the_order_and_take_clicks():
    matrix = np.array([[5, 1, 0], [0, 4, 2], [3, 0, 6]])
    rates = matrix / matrix.sum(1, keepdims=True)
    order = np.array([2, 0, 1])  # class 2 first
    cells = confusion.cells(matrix, rates, order, ["a", "b", "c"])
    assert len(cells) == np.count_nonzero(matrix)
    c2 = cells[(cells.t == 2) & (cells.p == 0)].iloc[0]
    assert (c2.x, c2.y, c2["count"]) == (1, 0, 3)  # answered a (second), true c (first)
    whole = valid(confusion.overview(cells, 3, (0, 1), (1, 0)))
    assert "cell" in params(whole)
    assert whole["usermeta"]["embedOptions"]["renderer"] == "canvas"
    (matrix_rows,) = (v for k, v in whole["datasets"].items() if k.startswith("cells-"))
    assert len(matrix_rows) == len(cells)
    zoom = valid(confusion.block(matrix, rates, ["a", "b", "c"], order[:2], (2, 0), "zoom"))
    drawn = [r for values in zoom["datasets"].values() for r in values]
    assert {r["count"] for r in drawn if r["count"]} <= {3, 5, 6}  # classes c and a only
    assert "cell" in params(zoom)
    ringed = zoom["datasets"][zoom["layer"][-1]["data"]["name"]]
    assert [(r["t"], r["p"]) for r in ringed] == [(2, 0)]
    again = confusion.block(matrix, rates, ["a", "b", "c"], order[:2], (0, 0), "zoom")
    assert [(r["t"], r["p"]) for r in again["datasets"]["shown"].to_dict("records")] == [(0, 0)]
    # another shown cell: the same spec and dataset names, so the browser keeps the chart
    # and swaps the ring's rows (issue 19)
    assert _bare(again) == _bare(zoom) and again["datasets"].keys() == zoom["datasets"].keys()
    moved = confusion.overview(cells, 3, (0, 1), (0, 2))
    assert _bare(moved) == _bare(whole) and moved["datasets"].keys() == whole["datasets"].keys()
    assert moved["datasets"]["shown"].to_dict("records") == [{"x": 0.5, "y": 2.5}]


def _bare(spec: dict) -> str:
    """A spec as the browser compares it: without its datasets' rows."""
    return json.dumps({k: v for k, v in spec.items() if k != "datasets"}, sort_keys=True)


def test_the_channel_bars_rank_channels_and_mark_the_chosen_one():
    chart = channels.channel_bars(np.array([0.5, 2.0, 1.0]), channel=2)
    drawn = {r["channel"]: r for r in rows(chart)}
    assert [drawn[k]["rank"] for k in range(3)] == [2, 0, 1]
    assert [k for k, r in drawn.items() if r["chosen"]] == [2]
    assert "channel" in params(spec(chart))
    prefers = rows(channels.preferred_classes(["cat", "dog", "cat"], of=3))
    assert {r["class"]: r["count"] for r in prefers} == {"cat": 2, "dog": 1}


def test_the_agreement_table_counts_and_shares():
    chart = compare.agreement(np.array([[6, 2], [1, 1]]), 10)
    got = {(r["A"], r["B"]): (r["images"], r["share"]) for r in rows(chart)}
    assert got[("A right", "B wrong")] == (2, 0.2) and got[("A wrong", "B wrong")] == (1, 0.1)
    wins = pd.DataFrame({"class": ["x", "x"], "model": ["A", "B"], "accuracy": [0.9, 0.4]})
    assert {r["model"]: r["accuracy"] for r in rows(compare.class_wins(wins))} == {
        "A": 0.9,
        "B": 0.4,
    }


def test_the_models_charts_take_the_leaderboard_rows():
    bars = pd.DataFrame(
        {"run": ["r1", "s"], "model": ["m", ""], "top1": [0.6, 0.5], "measured_on": ["", ""],
         "data": ["Tiny ImageNet (200 classes)"] * 2, "who": ["ours", "published"]}
    )  # fmt: skip
    colour = spec(leaderboard.top1_bars(bars))["encoding"]["color"]["scale"]
    assert colour["domain"] == ["ours", "imported", "published"]
    curves = pd.DataFrame({"run": ["r"] * 2, "epoch": [1, 1], "split": ["val", "train"],
                           "top1": [0.5, 0.4]})  # fmt: skip
    assert len(rows(leaderboard.training_curves(curves, "top1"))) == 2
    trials = pd.DataFrame({"trial": [0, 1], "lr": [0.1, 0.01], "weight_decay": [1e-4, 1e-3],
                           "val_top1": [0.3, 0.4], "run": ["a", "b"],
                           "best": [False, True]})  # fmt: skip
    scatter = spec(leaderboard.search_scatter(trials))
    assert scatter["layer"][0]["encoding"]["x"]["scale"] == {"type": "log"}


def test_a_run_keeps_its_colour_in_both_models_charts_and_top1_is_not_cut():
    """Issue 21.8: the training curves and the ensemble curves colour a run alike, whatever
    runs each draws; top-1 runs to 100% so a curve above 90% is whole."""
    runs = ["b-run", "a-run", "c-run"]
    curves = pd.DataFrame({"run": ["c-run"] * 2, "epoch": [1, 2], "split": ["val"] * 2,
                           "top1": [0.93, 0.97], "loss": [0.2, 0.1]})  # fmt: skip
    ens = pd.DataFrame({"run": ["a-run", "c-run"], "label": ["a-run", "c-run, flip TTA"],
                        "tta": ["none", "flip"], "members": [1, 1],
                        "top1": [0.5, 0.6]})  # fmt: skip
    drawn = spec(leaderboard.training_curves(curves, "top1", runs))
    colour = drawn["layer"][0]["encoding"]["color"]["scale"]
    assert colour == spec(leaderboard.ensemble_curves(ens, runs))["encoding"]["color"]["scale"]
    assert colour["domain"] == runs and len(set(colour["range"])) == 3
    assert drawn["layer"][0]["encoding"]["y"]["scale"]["domain"] == [0, 1]


def test_training_curves_split_train_from_val():
    metrics = [
        {"epoch": e, "train_top1": 0.1 * e, "val_top1": 0.2 * e, "train_loss": 3 - e,
         "val_loss": 2.5 - e} for e in (1, 2)
    ]  # fmt: skip
    drawn = training.epoch_curves(metrics, epochs=5)
    assert set(drawn) == {"top1", "loss"}
    top1 = rows(drawn["top1"])
    assert {r["split"] for r in top1} == {"train", "val"} and len(top1) == 4
    assert spec(drawn["top1"])["encoding"]["x"]["scale"]["domain"] == [1, 5]


def test_the_top5_bars_keep_duplicate_names_apart_escape_names_and_colour_the_truth():
    import re

    class Pred:
        names, wnids, probs, classes = (
            ["cat", "cat", "<b>dog</b>\u202e"],
            ["n1", "n2", "n3"],
            [0.8, 0.15, 0.05],
            [4, 7, 9],
        )

    drawn = predictions.top5_html(
        Pred(), {"n3": "dog, domestic & dog"}, true_class=7, shown=shown_name
    )
    labels = re.findall(r'<div class="n" title="[^"]*">([^<]*)</div>', drawn)
    assert labels == ["cat (n1)", "cat (n2)", "&lt;b&gt;dog&lt;/b&gt;\\u202e"]  # on top: first
    assert "<b>" not in drawn and "\u202e" not in drawn  # names are text, shown escaped
    assert 'title="dog, domestic &amp; dog (n3): 5.0%"' in drawn  # the full name on hover
    widths = re.findall(r"width:([\d.]+)%;background:(#\w+)", drawn)
    assert widths == [
        ("80.0", predictions.OTHER), ("15.0", predictions.TRUE), ("5.0", predictions.OTHER)
    ]  # fmt: skip
    assert drawn.count('class="p in"') == 1  # 80%: written inside its bar
    plain = predictions.top5_html(Pred())  # no truth: the top bar is the one coloured
    assert re.findall(r"background:(#\w+)", plain) == [predictions.HIT] + [predictions.OTHER] * 2


def test_an_answer_head_is_escaped_text_and_faint_when_not_bold():
    import re

    head = predictions.answer_head_html(
        "<img src=x onerror=1>", "61.0% val top-1 · resnet18", "Not sure", "maybe a & b",
        bold=False, small=True, tip='less than "30%"',
    )  # fmt: skip
    assert "<img" not in head and "&lt;img src=x onerror=1&gt;" in head
    assert '<p class="say small faint" title="less than &quot;30%&quot;">Not sure</p>' in head
    assert '<p class="dim">maybe a &amp; b</p>' in head
    sure = predictions.answer_head_html("r", "a", "cat · 90%", "", bold=True, small=False)
    assert re.search(r'<p class="say">cat · 90%</p><p class="dim">&nbsp;</p>', sure)
    assert "title=" not in sure  # no hover note for a sure answer
    lines = predictions.captions_html("Top-5 (<b>x</b> 50.0%) in 3 ms.", "two")
    assert lines == (
        '<p class="tv-cap">Top-5 (&lt;b&gt;x&lt;/b&gt; 50.0%) in 3 ms.</p><p class="tv-cap">two</p>'
    )


def test_class_colours_repeat_the_palette_past_its_end():
    names = [f"c{i}" for i in range(30)]
    group_of, domain, colours = embedding.class_colours(names, np.arange(30))
    assert list(group_of) == names and len(domain) == len(colours) == 30
    assert colours[0] == colours[26] and len(set(colours)) == 26
    _, few, ten = embedding.class_colours(names, np.array([3, 1, 3]))
    assert few == ["c1", "c3"] and len(ten) == 2


def test_no_helper_module_takes_a_pages_address():
    """Streamlit's legacy pages mode (a deep link before the navigation exists) lists every
    `pages/*.py` by its name without leading underscores: `_data.py` beside `data.py`
    would stop the app with "two pages resolve to /data"."""
    files = sorted(CHARTS.parent.glob("*.py"))
    pages = {p.stem for p in files if not p.stem.startswith("_")}
    helpers = {p.stem.lstrip("_") for p in files if p.stem.startswith("_")}
    assert pages and not pages & helpers


def test_a_methods_card_is_a_small_sharp_image_of_its_rho_and_its_two_curves():
    """Under each map a PNG, not two Vega charts (a visitor's browser drew twelve of them on
    every visit): its ρ line dark on top, deletion red and insertion blue below with the
    random order's two curves fainter; twice the size it is shown at."""
    import io

    import numpy as np
    from PIL import Image

    steps = [k / 10 for k in range(11)]
    png = sanity.card_png(
        (1.0, 0.6, 0.2, 0.05),
        ([1 - x for x in steps], steps),
        ([1 - x / 2 for x in steps], [x / 2 for x in steps]),
    )
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (600, 300)
    rgb = np.asarray(image.convert("RGB")).astype(int)

    def inked(hex_colour: str, part: np.ndarray) -> int:
        ink = np.array(list(bytes.fromhex(hex_colour[1:])))
        return int((np.abs(part - ink).sum(axis=2) < 30).sum())

    top, bottom = rgb[:150], rgb[150:]
    assert inked(sanity.RHO, top) > 200 and not inked(sanity.RHO, bottom)  # ρ on top
    assert inked(sanity.DELETION, bottom) > 200 and inked(sanity.INSERTION, bottom) > 200
    assert not inked(sanity.DELETION, top)


def test_the_trust_charts_keep_their_height_for_the_curves_and_name_every_area():
    """A legend of seven methods below the deletion curves once squeezed the plot flat:
    the height is the plot's own (fit-x), and no legend label is cut."""
    methods = [f"method {i}" for i in range(6)] + [sanity.RANDOM]
    faith = pd.DataFrame(
        [
            {"method": m, "curve": c, "label": f"{m} · area {a:.2f}", "area": a,
             "fraction": k / 4, "p": (1 - k / 4) if c == "deletion" else k / 4}
            for i, m in enumerate(methods)
            for c, a in (("deletion", 0.1 + i / 100), ("insertion", 0.3 + i / 100))
            for k in range(5)
        ]
    )  # fmt: skip
    chart = spec(sanity.faithfulness(faith, "deletion", height=220))
    assert chart["autosize"] == {"type": "fit-x", "contains": "padding"}
    assert chart["height"] == 220
    colour = chart["encoding"]["color"]
    assert colour["scale"]["domain"] == [f"{m} · area {0.1 + i / 100:.2f}"
                                         for i, m in enumerate(methods)]  # fmt: skip
    assert colour["scale"]["range"][-1] == "#9e9e9e"  # the random order: grey
    assert colour["legend"]["labelLimit"] >= 7 * len("Integrated Gradients · area 0.22")
    assert {r["curve"] for r in rows(sanity.faithfulness(faith, "insertion"))} == {"insertion"}
    stages = ["none", "Classifier (the last layer)", "Stage 4, block 2"]
    steps = pd.DataFrame(
        [{"method": "Grad-CAM", "random down to": s, "step": k, "rho": 1 - k / 3}
         for k, s in enumerate(stages)]
    )  # fmt: skip
    full = spec(sanity.cascade(steps, stages, height=300))
    assert full["autosize"]["type"] == "fit-x" and full["height"] == 300
    x = full["layer"][0]["encoding"]["x"]
    assert x["sort"] == stages and x["axis"]["labelOverlap"] is False  # every step named
    # a method's colour is the same on the cascade as on the faithfulness curves
    both = pd.concat([steps, steps.assign(method="SmoothGrad")])
    scale = spec(sanity.cascade(both, stages, height=300))["layer"][0]["encoding"]
    assert scale["color"]["scale"] == {"domain": ["Grad-CAM", "SmoothGrad"],
                                       "range": list(sanity.PALETTE[:2])}  # fmt: skip
