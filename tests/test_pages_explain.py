"""The explanation pages of issue 12 in AppTest: trust in saliency, why B and not A, two
models side by side, and the full embeddings map (WebGL, sprites, selection)."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from pagetest import chart_rows, ok, open_page, path_of, texts

from tinyviz import runs
from tinyviz.data import load
from tinyviz.explain import analysis, sanity, train_features


@pytest.fixture(scope="module")
def confused_run(tmp_path_factory, tiny_run, tiny_data) -> Path:
    """The tiny run biased towards class 0 (it makes mistakes), with its analysis."""
    run = tmp_path_factory.mktemp("explain") / "runs" / "tiny-confused"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analysis"))
    weights = runs.load_weights(run / runs.RunFolder.WEIGHTS)
    weights["fc.bias"][0] += weights["fc.weight"].abs().sum(1).mean() * 0.3
    runs.save_weights(run / runs.RunFolder.WEIGHTS, weights)
    analysis.val_outputs(run, tiny_data)
    return run


@pytest.fixture
def two_runs(tmp_path, tiny_run, confused_run, tiny_data, monkeypatch) -> tuple[Path, Path]:
    """The tiny run and its biased copy, alone in one root, both analysed."""
    root = tmp_path / "runs"
    a, b = root / "tiny-a", root / "tiny-b"
    shutil.copytree(tiny_run, a)
    shutil.copytree(confused_run, b)
    for run in (a, b):
        analysis.val_outputs(run, tiny_data)
    monkeypatch.setenv("TINYVIZ_RUNS", str(root))
    return a, b


def plotly_specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _plotly(at) -> tuple:
    """The map as the browser tells it apart: (its place, element id, figure)."""
    (chart,) = at.get("plotly_chart")
    return path_of(at, chart), chart.proto.id, chart.proto.spec


def points_of(trace: dict) -> int:
    x = trace["x"]
    return len(np.frombuffer(base64.b64decode(x["bdata"]), x["dtype"])) if "bdata" in x else len(x)


# ------------------------------------------------------------------- Saliency


def test_saliency_offers_the_check_and_starts_it_in_the_background(app_env, monkeypatch):
    from pages import _sanity

    started = []
    monkeypatch.setattr(_sanity.tasks, "start", lambda run, task, args: started.append(args))
    at = ok(open_page("pages/saliency.py", app_env["run"]))
    assert "How far to trust these maps" in [s.value for s in at.subheader]
    assert any("has not been checked yet" in i.value for i in at.info)
    assert "Sanity :" not in texts(at) and "last block random" not in texts(at)
    at.button(key="tv_san_go").click()
    ok(at.run())
    assert started and started[0][:2] == ["sanity", str(app_env["run"])]
    assert "--data" in started[0]


def test_saliency_shows_scores_curves_and_randomized_maps(app_env, tmp_path, monkeypatch):
    from pages import _sanity

    run = tmp_path / "runs" / "tiny-checked"
    shutil.copytree(app_env["run"], run)
    monkeypatch.setenv("TINYVIZ_RUNS", str(run.parent))
    fast = tuple(m for m in sanity.saliency.METHODS if m.name in ("gradient", "gradcam"))
    monkeypatch.setattr(sanity.saliency, "METHODS", fast)  # the slow ones cost minutes here
    settings = sanity.Settings(images=2, steps=2, strip=2)
    monkeypatch.setattr(_sanity, "SETTINGS", settings)
    report = sanity.compute(run, load(app_env["data"], progress=False), settings=settings)
    at = ok(open_page("pages/saliency.py", run))
    shown = texts(at)
    gradient = report.method("gradient")
    assert f"ρ = {gradient.after_top:.2f} with the head and the last block random" in shown
    assert shown.count("Sanity ") == 2  # under each of the two maps
    frame = at.dataframe[0].value
    assert list(frame["method"]) == ["Vanilla gradient", "Grad-CAM"]
    assert set(frame["sanity"]) <= {"passes", "partly", "fails"}
    strip = at.image[-1].proto.imgs  # the check image's maps, original then each step
    captions = [i.caption for i in strip]
    assert captions[:3] == ["the image", "original", "random down to Classifier (the last layer)"]
    assert len(strip) == len(report.stages) + 2 and not any("fc" in c for c in captions)
    # the deletion and insertion curves beside their areas: under each map, and the section's
    legends = set()
    for i, chart in enumerate(at.get("vega_lite_chart")):
        for d in chart.proto.datasets:
            legends |= set(chart_rows(at, i, d.name).get("label", []))
    assert f"Vanilla gradient · area {gradient.deletion_auc:.2f}" in legends
    assert f"random order · area {report.random_insertion_auc:.2f}" in legends


def test_slow_saliency_methods_show_their_place_in_the_queue_then_their_maps(app_env, queue_worker):
    """On a CPU the slow methods are computed by the background worker: while it is busy
    the page shows each one's place in the queue; once stored, the maps (and Integrated
    Gradients' completeness in words) are drawn."""
    at = open_page("pages/saliency.py", app_env["run"])
    queue_worker.hold()
    at.checkbox(key="tv_sal_m_integrated_gradients").check()
    at.checkbox(key="tv_sal_m_smoothgrad").check()
    ok(at.run())
    shown = texts(at)
    assert "**Integrated Gradients** · in the queue: 1 background computation before it" in shown
    assert "**SmoothGrad** · " in shown  # next, or begun: the worker is held
    assert not any(c.value.startswith("Completeness") for c in at.caption)
    queue_worker.drain()
    ok(at.run())
    shown = texts(at)
    assert "in the queue" not in shown and "starting in the background" not in shown
    assert "**SmoothGrad** · " in shown and "**Integrated Gradients** · " in shown
    line = next(c.value for c in at.caption if c.value.startswith("Completeness"))
    assert "f(x) − f(black)" in line and "under 5% is good" in line


# ------------------------------------------------------------------ Confusion


def test_confusion_explains_why_b_and_not_a(app_env, confused_run, tiny_data, monkeypatch):
    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    at = ok(open_page("pages/confusion.py", confused_run))
    # the first run says what is being computed; the browser's trigger (or any later run)
    # draws it: the matrix above is drawn before the CPU is busy with the section
    assert any("Computing the contrastive maps" in c.value for c in at.caption)
    assert not any("logit of **" in c.value for c in at.caption)
    ok(at.run())
    assert not any("Computing the contrastive maps" in c.value for c in at.caption)
    names = runs.open_run(confused_run).class_names
    why = [s.value for s in at.subheader if s.value.startswith("Why ")]
    assert why and " and not " in why[0]
    a_name, b_name = why[0][4:-1].split(" and not ")[::-1]
    a, b = names.index(a_name), names.index(b_name)
    assert a != b
    assert any("logit of **" in c.value for c in at.caption)  # the contrastive maps
    pushes = [c for c in at.caption if "all 128 channels together" in c.value]
    assert pushes, "the channel contributions' caption"
    assert at.button(key="tv_ctr_go")  # the training features are not stored yet
    train_features.compute(confused_run, tiny_data, [a, b])
    ok(at.run())
    assert "(its true class)" in texts(at) and "(the model's answer)" in texts(at)


# -------------------------------------------------------------------- Compare


def test_compare_page_counts_and_shows_the_disagreements(app_env, two_runs, tiny_data):
    a, b = two_runs
    at = ok(open_page("pages/compare.py", a))
    values = [m.value for m in at.metric]
    out_a, out_b = analysis.val_outputs(a, tiny_data), analysis.val_outputs(b, tiny_data)
    assert values[0] == f"{out_a.top1:.1%}" and values[1] == f"{out_b.top1:.1%}"
    same = float(np.mean(out_a.preds == out_b.preds))
    assert values[2] == f"{same:.1%}"
    a_only = int(np.sum((out_a.preds == out_a.labels) & (out_b.preds != out_b.labels)))
    control = at.segmented_control(key="tv_cmp_which")
    assert any(f"A right, B wrong ({a_only:,})" in str(o) for o in control.options)
    if a_only:
        assert any("Images 1 to" in c.value for c in at.main.caption)
        assert sum(len(i.proto.imgs) for i in at.image) >= 3  # image, A's map, B's map


def test_compare_needs_two_runs(app_env):
    at = ok(open_page("pages/compare.py", app_env["run"]))
    assert "needs two runs" in at.info[0].value


# ----------------------------------------------------------------- Embeddings


def test_embeddings_draws_every_point_with_sprites_and_training_images(
    app_env, confused_run, tiny_data, monkeypatch
):
    from pages import _map

    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    shutil.rmtree(train_features.folder(confused_run, tiny_data), ignore_errors=True)  # none
    at = ok(open_page("pages/embeddings.py", confused_run))
    at.button(key="tv_emb_all").click()
    ok(at.run())
    (spec,) = plotly_specs(at)
    assert {t["type"] for t in spec["data"]} == {"scatter"}  # a few points: SVG, drawn at once

    def drawn(spec, training: bool) -> int:
        return sum(
            points_of(t)
            for t in spec["data"]
            if (t["marker"].get("symbol") == "circle-open") == training
        )

    assert drawn(spec, False) == len(tiny_data.val)  # every validation image, no sample
    assert "data:image" not in json.dumps(spec)  # no thumbnail in the chart
    sheets = sorted(_map.SPRITES.glob("*.jpg"))
    assert sheets, "the thumbnails' sprite sheet"
    assert at.toggle(key="tv_emb_train_none").disabled  # none stored: nothing to add
    train_features.compute(confused_run, tiny_data, [1, 2])
    ok(at.run())
    (spec,) = plotly_specs(at)
    assert drawn(spec, False) == len(tiny_data.val) and not drawn(spec, True)  # a choice:
    stored = train_features.cached_classes(confused_run, tiny_data)  # off until asked for
    n = sum(len(tiny_data.train.of_class(k)) for k in stored)
    choice = at.toggle(key="tv_emb_train")
    assert not choice.value and f"{n:,} stored for these classes" in choice.label
    assert re.search(r"\((about \d+ s|under a second) more\)", choice.label)
    ok(choice.set_value(True).run())
    (spec,) = plotly_specs(at)
    assert drawn(spec, True) == n > 0
    assert "training images (open circles)" in texts(at)


def test_a_map_of_many_points_is_drawn_in_webgl_and_a_small_one_in_svg():
    """The browser's first WebGL plot costs about a second on a small machine: a map of a
    few hundred points (seed 004's seven classes) is SVG, 10,000 points need WebGL."""
    from pages import _map

    def points(n: int) -> _map.Points:
        rows = np.arange(n)
        return _map.Points(_map.VAL, np.random.default_rng(0).normal(size=(n, 2)), rows,
                           rows % 2, rows % 2, np.where(rows % 2, "a", "b"), rows)  # fmt: skip

    for n, kind in ((350, "scatter"), (_map.SVG_POINTS + 1, "scattergl")):
        fig, _ = _map.figure([points(n)], ["a", "b"], ["red", "blue"], ["x", "y"])
        assert {t.type for t in fig.data} == {kind}, n


def test_a_lasso_selection_becomes_images():
    from pages import _map

    traces = [(_map.VAL, np.array([4, 7, 9])), (_map.TRAIN, np.array([0, 2]))]
    event = {
        "selection": {
            "points": [
                {"curve_number": 0, "point_index": 2},
                {"curve_number": 1, "point_index": 1},
                {"curve_number": 0, "point_index": 0},
                {"curve_number": 5, "point_index": 0},  # not ours (the star): ignored
            ]
        }
    }
    chosen = _map.selected(event, traces)
    assert chosen[_map.VAL].tolist() == [4, 9] and chosen[_map.TRAIN].tolist() == [2]
    assert not any(len(v) for v in _map.selected(None, traces).values())


def test_a_deferred_section_that_comes_back_gets_a_new_trigger(app_env, confused_run, monkeypatch):
    """The browser fires once per placeholder token: a section shown again after it left
    the session's recent list gets a placeholder with a token of its own, so it is drawn."""
    from pages import _defer

    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    at = ok(open_page("pages/confusion.py", confused_run))
    assert at.session_state[_defer.WAITS] == 1
    ok(at.run())  # drawn: the section is in the recent list now
    assert at.session_state[_defer.WAITS] == 1
    at.session_state[_defer.SHOWN] = []  # sixteen other sections later
    ok(at.run())
    assert at.session_state[_defer.WAITS] == 2  # a new placeholder, with a new token
    assert any("Computing the contrastive maps" in c.value for c in at.caption)


@pytest.mark.slow
def test_a_tsne_map_is_computed_in_the_background_with_the_pca_map_meanwhile(
    app_env, confused_run, tiny_data, monkeypatch
):
    """Nothing slow in a script run: a t-SNE map that is not stored yet is started as
    background work (one process for every visitor asking), the PCA map of the same images
    is drawn under its progress, and the page draws the t-SNE map once it is stored."""
    import os
    import signal
    import time

    from tinyviz.explain import work
    from tinyviz.runtime import background

    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    launched = []
    spawn = background.spawn

    def held(*a, **k):  # the map is held still until the page has been asked again
        proc = spawn(*a, **k)
        os.kill(proc.pid, signal.SIGSTOP)
        launched.append(proc)
        return proc

    monkeypatch.setattr(background, "spawn", held)
    try:
        at = ok(open_page("pages/embeddings.py", confused_run))
        pca = _plotly(at)
        ok(at.segmented_control(key="tv_emb_method").set_value("tsne").run())
        assert "being computed in the background" in at.info[0].value and at.get("progress")
        (spec,) = plotly_specs(at)
        assert spec["layout"]["xaxis"]["title"]["text"].startswith("PC1")  # PCA meanwhile
        # issue 19: the same map, in the same place, with the same key: not drawn again
        assert _plotly(at) == pca
        ok(at.run())  # asked again (another visitor, a rerun): the same process
        assert "being computed in the background" in at.info[0].value and len(launched) == 1
    finally:
        for proc in launched:
            os.kill(proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 240  # computed: its request leaves the queue (a bound)
    while work.queue().names() and time.monotonic() < deadline:
        for name in work.queue().names():  # the page's fragment asks for it meanwhile
            work.queue().want(name)
        time.sleep(0.05)
    work.queue().worker(0).stop()  # rather than wait for it to end when idle
    assert launched[0].wait(60) is not None
    ok(at.run())
    assert not at.info and not at.get("progress")
    (spec,) = plotly_specs(at)
    assert spec["layout"]["xaxis"]["title"]["text"] == "t-SNE 1"
    assert work.KINDS["map"].stored  # the kind a page asks for, by name
