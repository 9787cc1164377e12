"""Why A and not B: contrastive maps, channel contributions, nearest training images."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from tinyviz.data.batches import to_model_input
from tinyviz.explain import contrastive, train_features
from tinyviz.runs import load_model


def test_channel_contributions_sum_to_the_logit_difference_minus_the_bias_difference(run_data):
    run, data = run_data
    model = load_model(run)
    head = contrastive.final_linear(model)
    assert head.name == "fc" and head.weight.shape == (4, 128)
    feats = contrastive.image_features(model, data.val.images[:6])
    with torch.inference_mode():
        logits = model(to_model_input(np.asarray(data.val.images[:6]))).numpy()
    c = contrastive.channel_contributions(feats, head, a=1, b=2)
    np.testing.assert_allclose(
        c.per_image.sum(1), logits[:, 2] - logits[:, 1] - c.bias_diff, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(c.logit_difference(), logits[:, 2] - logits[:, 1], atol=1e-4)
    top = c.top(5)
    assert len(top) == 5 and np.all(np.diff(c.mean[top]) <= 0)
    assert c.mean[top[0]] == pytest.approx(c.mean.max())


def test_a_head_with_a_hidden_layer_is_refused():
    class Deep(nn.Module):
        head_modules = ("fc",)

        def __init__(self):
            super().__init__()
            self.fc = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

        def forward_head(self, f):
            return self.fc(f)

    with pytest.raises(ValueError, match="more than its last linear layer"):
        contrastive.final_linear(Deep())


def test_contrastive_map_explains_the_difference_and_is_antisymmetric(run_data):
    run, data = run_data
    model = load_model(run)
    x = to_model_input(np.asarray(data.val.images[0]))
    ab = contrastive.contrastive_map(model, x, 0, 1, "gradient")
    ba = contrastive.contrastive_map(model, x, 1, 0, "gradient")
    np.testing.assert_allclose(ab.signed, -ba.signed, rtol=1e-4, atol=1e-6)
    cam = contrastive.contrastive_map(model, x, 0, 1, "gradcam")
    assert cam.layer == "net.layer4" and cam.heat.shape == (64, 64)
    x.requires_grad_(True)
    (g,) = torch.autograd.grad((model(x)[0, 1] - model(x)[0, 0]), x)
    np.testing.assert_allclose(ab.signed, g[0].sum(0).numpy(), rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="two different classes"):
        contrastive.contrastive_map(model, x, 2, 2)
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    assert not model.training  # the wrapper must not leave the shared model training


def test_top_images_of_a_channel():
    feats = np.array([[0.0, 5.0], [3.0, 1.0], [2.0, 9.0]], np.float16)
    assert contrastive.top_images_of_channel(feats, 1, 2).tolist() == [2, 0]
    assert contrastive.top_images_of_channel(feats, 0, 9).tolist() == [1, 2, 0]


def test_training_features_are_computed_per_class_once_and_found(run_data, tmp_path):
    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
    assert train_features.cached_classes(copy, data) == []
    seen = []
    assert train_features.compute(copy, data, [1, 3], progress=lambda f, m: seen.append(f)) == [
        1,
        3,
    ]
    assert seen[-1] == pytest.approx(1.0)
    assert train_features.cached_classes(copy, data) == [1, 3]
    assert train_features.compute(copy, data, [3]) == []  # stored: nothing to do
    feats, idx = train_features.features(copy, data, [1, 3])
    assert len(feats) == len(idx) == len(data.train.of_class(1)) + len(data.train.of_class(3))
    model = load_model(copy)
    exact = contrastive.image_features(model, data.train.images[idx[:3]])
    np.testing.assert_allclose(feats[:3].astype(np.float32), exact, rtol=1e-2, atol=1e-2)
    near = contrastive.nearest_training(exact[0], feats, idx, 1, k=3)
    assert near.indices[0] == idx[0] and near.distances[0] == pytest.approx(0, abs=1e-3)
    assert train_features.estimate_seconds(model, copy, data, [1, 3]) == 0.0
    assert train_features.estimate_seconds(model, copy, data, [0]) > 0
