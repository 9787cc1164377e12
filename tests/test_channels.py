"""Per-channel activation maxima, top images and gradient maps (tinyviz.channels)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from tinyviz import runs
from tinyviz.explain import analysis, channels


@pytest.fixture(scope="session")
def model(run_data):
    return runs.load_model(run_data[0])


def test_channel_tops_cover_every_channel_layer(run_data, model):
    run, data = run_data
    tops = channels.channel_tops(run, data)
    assert list(tops) == list(model.channel_layers)
    n = len(data.val.labels)  # fewer images than TOP_CHANNEL: every image is ranked
    assert [t.rows.shape for t in tops.values()] == [(16, n), (32, n), (64, n), (128, n)]
    x = torch.from_numpy(np.array(data.val.images)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        act = model.layer2(model.layer1(model.relu(model.bn1(model.conv1(model.normalize(x))))))
    peak = act.amax((2, 3)).numpy()  # (N, 32)
    t = tops["layer2"]
    assert (np.diff(t.values, axis=1) <= 0).all()  # strongest first
    np.testing.assert_allclose(
        t.values, np.take_along_axis(peak.T, t.rows, 1), rtol=3e-3, atol=3e-3
    )
    np.testing.assert_allclose(t.mean, peak.mean(0), rtol=3e-3, atol=3e-3)
    assert (t.rows[:, 0] == peak.argmax(0)).mean() > 0.9  # float16 ties aside
    assert not model.layer2._forward_hooks  # the hooks of the pass are gone


def test_channel_tops_share_the_pass_with_val_outputs(run_data):
    run, data = run_data
    analysis.val_outputs(run, data)
    calls = []
    channels.channel_tops(run, data, progress=lambda f, m: calls.append(f))
    assert calls == []  # read from the stored pass


def test_top_images_summary_and_purity():
    maxima = np.array([[0.1, 5], [0.9, 1], [0.5, 3], [0.7, 2]], np.float16)
    tops = analysis.ChannelTops.from_maxima(maxima, k=3)
    assert channels.top_images(tops, 0, k=3).tolist() == [1, 3, 2]
    assert channels.top_images(tops, 1).tolist() == [0, 2, 3]  # only 3 kept
    np.testing.assert_allclose(channels.top_values(tops, 1, 2), [5, 3])
    np.testing.assert_allclose(channels.channel_summary(tops), [0.55, 2.75], rtol=1e-3)
    labels = np.array([0, 1, 1, 0])
    np.testing.assert_allclose(channels.class_purity(tops, labels, k=2), [0.5, 0.5])
    np.testing.assert_allclose(channels.class_purity(tops, np.array([0, 1, 0, 1]), k=2), [1, 1])


def test_gradients_show_where_the_channel_looks(run_data, model):
    _, data = run_data
    images = np.array(data.val.images[:6])
    maps = channels.channel_gradients(model, images, "layer1", 2)
    assert maps.shape == (6, 64, 64) and maps.dtype == np.float32
    assert maps.min() >= 0 and np.allclose(maps.reshape(6, -1).max(1), 1)
    mean = channels.channel_gradients(model, images, "layer4", 0, reduce="mean")
    assert mean.shape == (6, 64, 64)
    assert not model.layer1._forward_hooks and not model.layer4._forward_hooks
    assert all(p.grad is None for p in model.parameters())  # nothing accumulated in the model


def test_a_max_gradient_is_local_in_an_early_layer(run_data, model):
    """layer1's receptive field is small: the spatial max depends on a few pixels only."""
    _, data = run_data
    maps = channels.channel_gradients(model, np.array(data.val.images[:2]), "layer1", 0)
    assert ((maps > 0).reshape(2, -1).mean(1) < 0.1).all()


def test_gradients_refuse_bad_arguments(run_data, model):
    images = np.array(run_data[1].val.images[:1])
    with pytest.raises(ValueError, match="no layer"):
        channels.channel_gradients(model, images, "layer9", 0)
    with pytest.raises(ValueError, match="channels"):
        channels.channel_gradients(model, images, "layer1", 99)
    with pytest.raises(ValueError, match="reduce"):
        channels.channel_gradients(model, images, "layer1", 0, reduce="median")


def test_gradients_work_under_inference_mode_and_from_threads(run_data, model):
    images = np.array(run_data[1].val.images[:2])
    with torch.inference_mode():
        want = channels.channel_gradients(model, images, "layer2", 1)
    results = []

    def work() -> None:
        results.append(channels.channel_gradients(model, images, "layer2", 1))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    for r in results:
        np.testing.assert_allclose(r, want, atol=1e-5)
