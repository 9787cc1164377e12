"""Charts of a model's answer: its top-5 as bars."""

from __future__ import annotations


def top5_spec(
    pred, full_names: dict[str, str] | None = None, *, true_class: int | None = None
) -> dict:
    """Horizontal bars of a `Prediction`, most probable on top; full names on hover; for
    `st.vega_lite_chart`.

    With `true_class`, its bar is green and the others grey (else the top bar is blue).

    A Vega-Lite spec written as the dict it is, not built with Altair: Classify draws one
    per model for every answer, and building the Altair chart (layers, transforms, its
    copies) and validating it took 60 to 100 ms of the server's one interpreter per chart,
    against 2 ms for the dict (bench/chart_spec.py); a crowded poster server paid that on
    every visitor's photo. tests/test_charts.py validates it against Vega-Lite's schema.
    """
    full_names = full_names or {}
    names = list(pred.names)
    pairs = list(zip(names, pred.wnids, strict=True))
    labels = [n if names.count(n) == 1 else f"{n} ({w})" for n, w in pairs]
    rows = [
        {"class": label, "p": float(p), "wnid": w, "full": full_names.get(w, n),
         "hit": bool(c == true_class) if true_class is not None else i == 0}
        for i, (label, p, (n, w), c) in enumerate(
            zip(labels, pred.probs, pairs, pred.classes, strict=True)
        )
    ]  # fmt: skip
    hit = "#2e9d4a" if true_class is not None else "#1c6fd1"
    text = {"text": {"field": "p", "type": "quantitative", "format": ".1%"}}
    label = {"type": "text", "fontSize": 13}
    return {
        "data": {"values": rows},
        "height": 28 * len(labels) + 8,
        "encoding": {
            "y": {"field": "class", "type": "nominal", "sort": labels, "title": None,
                  "axis": {"labelLimit": 190, "labelFontSize": 13, "ticks": False,
                           "domain": False}},
            "x": {"field": "p", "type": "quantitative", "title": None,
                  "scale": {"domain": [0, 1]}, "axis": None},
            "tooltip": [
                {"field": "full", "type": "nominal", "title": "class"},
                {"field": "wnid", "type": "nominal"},
                {"field": "p", "type": "quantitative", "title": "probability", "format": ".1%"},
            ],
        },
        "layer": [
            {"mark": {"type": "bar", "cornerRadiusEnd": 3, "height": 20},
             "encoding": {"color": {"condition": {"test": "datum.hit", "value": hit},
                                    "value": "#a9b4c2"}}},
            {"mark": {**label, "align": "left", "dx": 4},
             "transform": [{"filter": "datum.p < 0.78"}], "encoding": text},
            {"mark": {**label, "align": "right", "dx": -4, "color": "white",
                      "fontWeight": "bold"},
             "transform": [{"filter": "datum.p >= 0.78"}], "encoding": text},
        ],
        "config": {"view": {"stroke": None}},
    }  # fmt: skip
