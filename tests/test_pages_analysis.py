"""The Confusion, Channels and Embeddings pages in Streamlit's AppTest, on the tiny run."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pagetest import SHIPPED, charts, ok, open_page, wait_for_analysis
from PIL import Image

from tinyviz import runs
from tinyviz.data import load
from tinyviz.explain import analysis, analysis_job, embed
from tinyviz.runtime import background

PAGES = ["pages/confusion.py", "pages/channels.py", "pages/embeddings.py"]
NEEDS_DATA = "needs the Tiny ImageNet images"


@pytest.fixture(scope="module")
def confused_run(tmp_path_factory, tiny_run, tiny_data) -> Path:
    """The tiny run with its head biased towards class 0, so that it makes mistakes; its
    analysis stored, as the trainer leaves it."""
    run = tmp_path_factory.mktemp("confused") / "tiny-confused"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analysis"))
    weights = runs.load_weights(run / runs.RunFolder.WEIGHTS)
    weights["fc.bias"][0] += weights["fc.weight"].abs().sum(1).mean() * 0.3
    runs.save_weights(run / runs.RunFolder.WEIGHTS, weights)
    analysis.compute(run, tiny_data)
    return run


@pytest.fixture
def bare_run(tmp_path, tiny_run, monkeypatch) -> Path:
    """A copy of the tiny run without its analysis (an imported run), alone in its root."""
    run = tmp_path / "runs" / "tiny-bare"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analysis"))
    monkeypatch.setenv("TINYVIZ_RUNS", str(run.parent))
    return run


def test_confusion_page(app_env, confused_run, monkeypatch):
    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    at = ok(open_page(PAGES[0], confused_run))
    assert len(charts(at)) == 3  # overview, zoomed block, best and worst
    ok(at.run())  # and (the shown cell is a confusion) the channels that push towards the
    assert len(charts(at)) == 4  # predicted class rather than the true one, drawn after them
    for matrix in charts(at)[:2]:  # thousands of cells: a canvas, no spoken description each
        assert matrix["usermeta"]["embedOptions"]["renderer"] == "canvas"
        assert matrix["config"]["mark"]["aria"] is False
    assert at.get("metric")[0].label == "Top-1 accuracy"
    assert at.dataframe and at.image  # per-class table, images of the shown cell
    assert any("Measured on the validation set: 24 images" in c.value for c in at.main.caption)
    at.segmented_control(key="tv_conf_order").set_value("name")
    ok(at.run())
    names = runs.open_run(confused_run).class_names
    block = next(c for c in charts(at) if "Classes 1 to" in json.dumps(c.get("title", "")))
    assert block["layer"][0]["encoding"]["x"]["sort"] == sorted(names, key=str.lower)
    pairs = at.radio(key=f"tv_conf_pair_{confused_run.name}")
    assert " → " in pairs.options[-1] and "%)" in pairs.options[-1]
    pairs.set_value(len(pairs.options) - 1)
    ok(at.run())
    cell = at.session_state["tv_conf_cell"]
    assert cell[0] == str(confused_run) and cell[1] != cell[2]
    assert f"taken for **{names[cell[2]]}**" in at.markdown[0].value
    assert at.image


def test_channels_page(app_env, queue_worker):
    at = ok(open_page(PAGES[1], app_env["run"]))
    maps = at.toggle(key=f"tv_ch_maps_{app_env['run'].name}")  # on when measured fast here
    assert len(at.image) == (2 if maps.value else 1) * 6
    maps.set_value(True)
    ok(at.run())
    assert len(at.image) == 2 * 6  # the 6 top images, each with its gradient map
    assert at.image[1].proto.imgs[0].caption[0] in "✓✗"  # under the gradient map
    assert at.selectbox(key="tv_ch_layer").value == "layer4"
    number = at.number_input[0]
    number.set_value(1 if number.value != 1 else 2)
    ok(at.run())
    assert f"Channel {number.value} of Stage 4, block 2" in at.subheader[0].value
    at.segmented_control(key="tv_ch_k").set_value(12)
    at.selectbox(key="tv_ch_layer").set_value("layer1")
    queue_worker.hold()
    ok(at.run())  # nothing slow in a script run: the maps beyond the first 6 in the background
    (bar,) = [p.proto.text for p in at.get("progress")]
    assert bar.startswith("The maps of the other 6 images: ") and "background" in bar, bar
    assert len(at.image) == 12 + 6
    assert sum("map coming" in c.value for c in at.caption) == 6
    queue_worker.drain()
    ok(at.run())
    assert len(at.image) == 2 * 12 and not at.get("progress")


def test_embeddings_page_pca_3d_and_upload(app_env):
    at = ok(open_page(PAGES[2], app_env["run"]))
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)  # the map: plotly
    # figure 11's classes that the tiny set has: sports car, convertible (6 images each)
    assert {"convertible", "sports car"} <= {t["name"] for t in spec["data"]}
    # the tiny set's class ids are not WordNet's: no figure-11 button (its label, named by
    # its report, is checked by test_reference's scan of the pages' strings)
    assert not [b for b in at.button if "figure 11" in b.label]
    assert "PC1 (" in json.dumps(spec["layout"])  # explained variance in the axis titles
    at.button(key="tv_emb_all").click()
    ok(at.run())
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(spec["data"]) == 4 and {t["type"] for t in spec["data"]} == {"scatter"}  # SVG
    assert embed.is_cached(app_env["run"], load(app_env["data"], progress=False), "pca", 2)
    at.segmented_control(key="tv_emb_dims").set_value(3)
    ok(at.run())
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t["type"] for t in spec["data"]} == {"scatter3d"}
    buf = io.BytesIO()
    Image.fromarray(np.full((80, 80, 3), 200, np.uint8)).save(buf, "PNG")
    at.file_uploader(key="tv_emb_upload").set_value(("mine.png", buf.getvalue(), "image/png"))
    ok(at.run())
    assert "projection" in " ".join(c.value for c in at.caption)
    assert at.subheader[-1].value.startswith("The 8 validation images nearest")


def test_embeddings_page_refuses_a_broken_upload(app_env):
    at = open_page(PAGES[2], app_env["run"])
    at.file_uploader(key="tv_emb_upload").set_value(("x.png", b"not an image", "image/png"))
    at.run()
    assert not at.exception and "Cannot use this file" in at.error[0].value


@pytest.mark.parametrize("path", PAGES)
def test_a_run_of_other_classes_gets_a_message(app_env, path):
    at = open_page(path, SHIPPED / "logreg-seed001")
    assert not at.exception
    assert "trained on 200 classes" in at.error[0].value


@pytest.mark.parametrize("path", PAGES)
def test_pages_without_data_explain_how_to_get_it(monkeypatch, tmp_path, path):
    monkeypatch.setenv("TINYVIZ_DATA", str(tmp_path / "nowhere.zip"))
    monkeypatch.chdir(tmp_path)
    at = open_page(path)
    assert not at.exception
    assert NEEDS_DATA in at.warning[0].value


def test_tsne_placement_does_not_report_to_the_fits_progress():
    """openTSNE keeps the fit's callbacks for `transform`; the page's progress bar is gone
    by then (calling it crashed the browser's page), so `embed` must drop them."""
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(c * 4, 1, (40, 8)) for c in range(3)]).astype(np.float32)
    calls = []
    emb, (pca, tsne) = embed._fit(feats, "tsne", 2, 0, lambda f, m: calls.append(m))
    fitted = len(calls)
    tsne.transform(pca.transform(feats[:1]), n_iter=embed.TSNE_PLACE_ITERATIONS)
    assert len(calls) == fitted


def test_weighted_overlay_keeps_cold_pixels():
    from tinyviz.demo.heatmaps import overlay

    rgb = np.full((16, 16, 3), 100, np.uint8)
    heat = np.zeros((16, 16), np.float32)
    heat[:4, :4] = 1.0
    out = overlay(rgb, heat, 0.9, weighted=True)
    assert np.array_equal(out[10, 10], rgb[10, 10]) and out[1, 1].mean() > 150
    assert not np.array_equal(overlay(rgb, heat, 0.9)[10, 10], rgb[10, 10])


@pytest.mark.slow
def test_a_run_without_analysis_gets_one_job_shared_by_two_sessions(app_env, bare_run, monkeypatch):
    """The page never computes the analysis: it starts the background job and shows its
    progress; a second visitor sees the same job; when it is done the page draws."""
    launched = []
    spawn = background.spawn
    monkeypatch.setattr(background, "spawn", lambda *a, **k: launched.append(a) or spawn(*a, **k))
    data = load(app_env["data"], progress=False)
    pids = []
    for _ in range(2):  # two sessions, one after the other
        at = ok(open_page(PAGES[0], bare_run))
        assert "First look at tiny-bare" in at.info[0].value and not charts(at)
        assert at.get("progress") and "images" in at.get("progress")[0].proto.text
        pids.append(analysis_job.status(bare_run, data).pid)
    assert len(launched) == 1 and pids[0] is not None and pids[0] == pids[1]
    wait_for_analysis(bare_run, data)
    ok(at.run())
    assert len(charts(at)) == 3 and not at.info and not at.get("progress")
    assert len(launched) == 1  # the finished analysis is drawn, nothing started again


def fake_job(confused_run, tiny_data, state: str) -> analysis_job.AnalysisJob:
    folder = analysis.cache_dir(confused_run, tiny_data)
    return analysis_job.AnalysisJob(folder, state, 6, 24, 8, 0.5, True, 4242, 0.0, "")


GATES = {  # state -> what the page draws
    "running": ("First look at tiny-confused", "draws a first sample of 8 images"),
    "partial": ("Showing a first sample of 8 images", "full set is being analysed"),
}


@pytest.mark.parametrize("state", ["ready", "partial", "running", "failed"])
def test_the_page_draws_the_gate_it_is_given(app_env, confused_run, tiny_data, monkeypatch, state):
    """One answer per state, drawn as it is: nothing else is asked of the backend."""
    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    stored = analysis.available(confused_run, tiny_data)
    job = fake_job(confused_run, tiny_data, "running")
    gate = {
        "ready": analysis_job.Gate("ready", stored),
        "partial": analysis_job.Gate("partial", stored, job),
        "running": analysis_job.Gate("running", None, job),
        "failed": analysis_job.Gate("failed", None, job, "error: out of memory"),
    }[state]
    asked = []
    monkeypatch.setattr(analysis_job, "gate", lambda *a, **k: asked.append(k) or gate)
    monkeypatch.setattr(analysis_job, "status", lambda *a, **k: pytest.fail("asked twice"))
    at = ok(open_page(PAGES[0], confused_run), errors=state == "failed")
    drawn = len(charts(at))
    if state == "ready":
        assert drawn == 3 and not at.info and not at.get("progress")
    elif state == "failed":
        assert drawn == 0 and "failed: error\\: out of memory" in at.error[0].value
        assert at.button(key="tv_an_retry")
    else:
        head, tail = GATES[state]
        assert head in at.info[0].value and tail in at.info[0].value
        assert "6 of 24 images analysed, about 9 s left" in at.get("progress")[0].proto.text
        assert (drawn == 3) == (state == "partial")
    assert asked and all(not k.get("retry") for k in asked)


@pytest.mark.slow
def test_the_subset_is_drawn_first_and_marked(app_env, bare_run, monkeypatch):
    data = load(app_env["data"], progress=False)
    monkeypatch.setattr(analysis, "SUBSET_PER_CLASS", 2)  # 8 of the 24 images first
    monkeypatch.setattr(analysis, "CHUNK", 4)

    class Killed(Exception):
        pass

    def stop_after_the_subset(fraction, message):
        if analysis.available(bare_run, data) is not None:
            raise Killed  # as if the process died once the subset was stored

    with pytest.raises(Killed):
        analysis.compute(bare_run, data, progress=stop_after_the_subset)
    at = ok(open_page(PAGES[0], bare_run))  # the job continues the rest meanwhile
    assert "Showing a first sample of 8 images (2 per class)" in at.info[0].value
    assert at.get("metric")[2].value == "8"
    assert any(
        "a first sample of the validation set: 8 of its 24 images" in c.value
        for c in at.main.caption
    )
    wait_for_analysis(bare_run, data)
    ok(at.run())
    assert at.get("metric")[2].value == "24" and not at.info


def test_confusion_page_of_a_linear_model_offers_no_grad_cam(
    app_env, tiny_data, tmp_path, monkeypatch
):
    """A logistic regression has no convolutional layer: the "why B and not A" maps of a
    confused cell offer the gradient methods only, and the page draws without an error."""
    from tinyviz.config import TrainConfig
    from tinyviz.training.loop import train

    cfg = TrainConfig(model="logreg", epochs=1, batch_size=32, lr=0.01)
    run = train(cfg, tiny_data, tmp_path / "runs" / "tiny-logreg", progress=False, log=print)
    monkeypatch.setenv("TINYVIZ_RUNS", str(run.parent))
    at = ok(ok(open_page(PAGES[0], run)).run())  # the section is drawn on the second run
    methods = [g for g in at.get("button_group") if g.proto.label == "Contrastive map"]
    assert methods, "the shown cell of an untrained logreg is a confusion: maps to contrast"
    labels = " ".join(str(o) for o in methods[0].proto.options)
    assert "Grad-CAM" not in labels and "gradient" in labels.lower()


def test_slow_contrastive_maps_are_computed_in_the_background_then_drawn(
    app_env, confused_run, monkeypatch, queue_worker
):
    """Where the cell's contrastive maps would take long (a heavy model on a CPU), the page
    draws the rest at once, the images without their maps, and the maps' place in the
    background queue; once the worker has stored them, they are drawn."""
    from tinyviz.explain import speed

    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    monkeypatch.setattr(speed, "FAST_PAGE_SECONDS", 0.0)  # every model counts as slow here
    queue_worker.hold()
    at = ok(ok(open_page(PAGES[0], confused_run)).run())  # the section: on the second run
    waiting = [p.proto.text for p in at.get("progress")]
    assert any("contrastive maps" in t and "background" in t for t in waiting), waiting
    assert not any("logit of **" in c.value for c in at.caption)
    queue_worker.drain()
    ok(at.run())
    assert any("logit of **" in c.value for c in at.caption)  # the maps, now
    assert not [p for p in at.get("progress") if "contrastive maps" in p.proto.text]
