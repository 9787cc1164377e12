"""The epoch slider of Confusion, Channels and Embeddings in AppTest, on a run with views."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from pagetest import chart_rows, ok, open_page, png, texts

from tinyviz.explain import analysis, epochs

pytestmark = pytest.mark.slow
PAGES = ["pages/confusion.py", "pages/channels.py", "pages/embeddings.py"]
KEY = "tv_epoch"


@pytest.fixture
def views_env(monkeypatch, tiny_zip, view_run):
    monkeypatch.setenv("TINYVIZ_DATA", str(tiny_zip))
    monkeypatch.setenv("TINYVIZ_RUNS", str(view_run.parent))
    return view_run


def array(values) -> np.ndarray:
    """A plotly trace's coordinates: a list, or a typed array (dtype and base64 bytes)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"])
    return np.asarray(values, np.float64)


def slider(at):
    return at.select_slider(key=KEY)


@pytest.mark.parametrize("path", PAGES)
def test_the_slider_offers_the_views_and_final(views_env, path):
    at = ok(open_page(path, views_env))
    assert slider(at).options == ["epoch 1", "epoch 2", "epoch 4", "final"]
    assert slider(at).value == epochs.FINAL


def test_a_run_without_views_has_no_slider(app_env):
    at = ok(open_page(PAGES[0], app_env["run"]))
    assert not [s for s in at.get("select_slider") if s.proto.id.endswith(KEY)]
    assert KEY not in at.session_state


def test_confusion_follows_the_epoch(views_env, tiny_data):
    at = ok(open_page(PAGES[0], views_env))
    seen = {}
    for stop in [1, 4, epochs.FINAL]:
        slider(at).set_value(stop)
        ok(at.run())
        out = (
            analysis.val_outputs(views_env, tiny_data)
            if stop == epochs.FINAL
            else epochs.val_outputs(views_env, tiny_data, stop)
        )
        assert at.get("metric")[0].value == f"{out.top1:.1%}"
        cells = chart_rows(at, 0)  # the overview: one row per non-empty cell
        seen[stop] = sorted(zip(cells.t, cells.p, cells["count"], strict=True))
        want = np.bincount(out.labels * 4 + out.preds, minlength=16).reshape(4, 4)
        assert {(t, p): n for t, p, n in seen[stop]} == {
            (t, p): want[t, p] for t, p in zip(*np.nonzero(want), strict=True)
        }
        epoch_words = f"weights of epoch {stop}"
        assert (epoch_words in texts(at)) == (stop != epochs.FINAL)
    assert seen[1] != seen[4]  # the matrix changes as the run learns


def test_the_epoch_follows_the_visitor_to_channels_and_embeddings(views_env):
    at = ok(open_page(PAGES[0], views_env))
    slider(at).set_value(2)
    ok(at.run())
    at.switch_page(PAGES[1])
    ok(at.run())
    assert slider(at).value == 2 and "weights of epoch 2" in texts(at)


def test_channels_shows_each_epochs_top_images_with_its_gradients(views_env, tiny_data):
    at = ok(open_page(PAGES[1], views_env))
    at.toggle(key=f"tv_ch_maps_{views_env.name}").set_value(True)
    captions = {}
    for stop in [1, 4]:
        slider(at).set_value(stop)
        ok(at.run())
        assert len(at.image) == 2 * 6  # the top images, each with that epoch's gradient map
        layer, channel = at.selectbox(key="tv_ch_layer").value, int(at.number_input[0].value)
        tops = epochs.open_analysis(views_env, tiny_data, stop).channels[layer]
        shown = [float(c.proto.imgs[0].caption.rsplit("· ", 1)[1]) for c in at.image[1::2]]
        np.testing.assert_allclose(shown, tops.values[channel, :6], atol=0.051)
        captions[stop] = shown
        assert f"weights of epoch {stop}" in texts(at)


def test_embeddings_map_moves_with_the_epoch_aligned(views_env, tiny_data):
    at = ok(open_page(PAGES[2], views_env))
    at.button(key="tv_emb_all").click()
    ok(at.run())
    final = analysis.read(analysis.available(views_env, tiny_data))
    for stop in [1, 2, epochs.FINAL]:
        slider(at).set_value(stop)
        ok(at.run())
        spec = json.loads(at.get("plotly_chart")[0].proto.spec)
        drawn = np.concatenate(
            [np.c_[array(t["x"]), array(t["y"])] for t in spec["data"] if "x" in t]
        )
        want = epochs.map_at(views_env, tiny_data, stop, "pca", 2, final=final)
        assert len(drawn) == len(want.embedding.coords) == 24
        # the same points (in the page's trace order), where the aligned map puts them
        assert np.allclose(
            np.sort(drawn, axis=0), np.sort(want.embedding.coords, axis=0), atol=1e-3
        )
        assert "orthogonal Procrustes" in texts(at) and "PCA 1" in json.dumps(spec["layout"])
    slider(at).set_value(2)  # an upload is placed by epoch 2's weights, on the aligned map
    at.file_uploader(key="tv_emb_upload").set_value(("mine.png", png(), "image/png"))
    ok(at.run())
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(spec["data"]) == 5 and "projection" in texts(at)  # 4 classes and the star


def test_the_train_page_starts_a_run_with_epoch_views(app_env, monkeypatch, tmp_path):
    from tinyviz.runs import jobs

    started = []
    monkeypatch.setattr(jobs, "start", lambda cfg, run_dir, **kw: started.append(cfg))
    monkeypatch.setenv("TINYVIZ_RUNS", str(tmp_path / "runs"))
    at = ok(open_page("pages/train.py"))
    views = at.multiselect(key="tv_tr_epoch_views")
    assert views.value == [] and views.options == ["1", "2"]  # the preset's 2 epochs
    at.number_input(key="tv_tr_epochs").set_value(3)
    ok(at.run())
    at.multiselect(key="tv_tr_epoch_views").set_value([3, 1])
    ok(at.run())
    next(b for b in at.button if b.label == "Start training").click()
    ok(at.run())
    assert started and started[0].epoch_views == (1, 3) and started[0].epochs == 3
    at.number_input(key="tv_tr_epochs").set_value(2)  # fewer epochs: epoch 3's view goes
    ok(at.run())
    assert at.multiselect(key="tv_tr_epoch_views").value == [1]
