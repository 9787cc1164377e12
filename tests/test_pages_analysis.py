"""The Confusion, Channels and Embeddings pages in Streamlit's AppTest, on the tiny run."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pagetest import SHIPPED, chart_rows, charts, ok, open_page
from PIL import Image

from tinyviz import runs
from tinyviz.data import load
from tinyviz.explain import embed

PAGES = ["pages/confusion.py", "pages/channels.py", "pages/embeddings.py"]
NEEDS_DATA = "needs the Tiny ImageNet images"


@pytest.fixture(scope="module")
def confused_run(tmp_path_factory, tiny_run) -> Path:
    """The tiny run with its head biased towards class 0, so that it makes mistakes."""
    run = tmp_path_factory.mktemp("confused") / "tiny-confused"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analysis"))
    weights = runs.load_weights(run / runs.RunFolder.WEIGHTS)
    weights["fc.bias"][0] += weights["fc.weight"].abs().sum(1).mean() * 0.3
    runs.save_weights(run / runs.RunFolder.WEIGHTS, weights)
    return run


def test_confusion_page(app_env, confused_run, monkeypatch):
    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    at = ok(open_page(PAGES[0], confused_run))
    assert len(charts(at)) == 3  # overview, zoomed block, best and worst
    assert at.get("metric")[0].label == "Top-1 accuracy"
    assert at.dataframe and at.image  # per-class table, images of the shown cell
    assert "Measured on the validation set: 24 images" in at.caption[-1].value
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


def test_channels_page(app_env):
    at = ok(open_page(PAGES[1], app_env["run"]))
    assert len(at.image) == 2 * 6  # the 6 top images, each with its gradient map
    assert at.image[1].proto.imgs[0].caption[0] in "✓✗"  # under the gradient map
    assert at.selectbox(key="tv_ch_layer").value == "layer4"
    number = at.number_input[0]
    number.set_value(1 if number.value != 1 else 2)
    ok(at.run())
    assert f"Channel {number.value} of Stage 4, block 2" in at.subheader[0].value
    at.segmented_control(key="tv_ch_k").set_value(12)
    at.selectbox(key="tv_ch_layer").set_value("layer1")
    ok(at.run())
    assert len(at.image) == 2 * 12


def test_embeddings_page_pca_3d_and_upload(app_env):
    at = ok(open_page(PAGES[2], app_env["run"]))
    rows = chart_rows(at)  # figure 11's classes that the tiny set has: sports car, convertible
    assert sorted(set(rows["class"])) == ["convertible", "sports car"] and len(rows) == 12
    assert rows["image"][0].startswith("data:image/jpeg;base64,")
    assert "PC1 (" in json.dumps(charts(at)[0])  # explained variance in the axis titles
    at.button(key="tv_emb_all").click()
    ok(at.run())
    assert len(chart_rows(at)) == 24
    assert embed.is_cached(app_env["run"], load(app_env["data"], progress=False), "pca", 2)
    at.segmented_control(key="tv_emb_dims").set_value(3)
    ok(at.run())
    assert at.get("plotly_chart") or len(charts(at)) == 3
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
