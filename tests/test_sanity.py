"""Sanity checks of saliency (cascading randomization) and deletion / insertion curves."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from tinyviz.explain import faithfulness, sanity, tasks
from tinyviz.runs import load_model


class Toy(nn.Module):
    """conv -> ReLU -> mean -> fc: two groups for the cascade (fc, then body)."""

    channel_layers = ("body",)
    gradcam_layer = "body"
    head_modules = ("fc",)

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


def test_layer_groups_run_top_down_and_cover_every_parameter(run_data):
    run, _ = run_data
    model = load_model(run)
    groups = sanity.layer_groups(model)
    assert [g.name for g in groups] == ["fc", "layer4", "layer3", "layer2", "layer1", "stem"]
    names = [n for g in groups for n in g.params]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert len(names) == len(set(names))
    assert all(n.startswith("layer4.") for n in groups[1].params)


def test_cascade_randomizes_from_the_top_and_keeps_the_rest(run_data):
    run, _ = run_data
    model = load_model(run)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = sanity.layer_groups(model)
    changed_at = []
    for _, copy in sanity.cascade(model, seed=0, groups=groups):
        state = copy.state_dict()
        moved = [g.name for g in groups if not torch.equal(state[g.params[0]], before[g.params[0]])]
        changed_at.append(moved)
    assert changed_at[0] == ["fc"]
    assert changed_at[1] == ["fc", "layer4"]
    assert changed_at[-1] == [g.name for g in groups]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_cascade_is_repeatable():
    model = Toy()
    a = [c.state_dict()["fc.weight"] for _, c in sanity.cascade(model, seed=3)]
    b = [c.state_dict()["fc.weight"] for _, c in sanity.cascade(model, seed=3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_rank_correlation():
    rng = np.random.default_rng(0)
    a = rng.random((8, 8))
    assert sanity.rank_correlation(a, a * 3 + 1) == pytest.approx(1.0)
    assert sanity.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert sanity.rank_correlation(a, np.zeros((8, 8))) == 0.0  # a constant map: nothing left
    assert abs(sanity.rank_correlation(a, rng.random((8, 8)))) < 0.3


def test_choose_images_spreads_over_classes():
    labels = np.array([0, 0, 1, 0, 2, 1, 2, 3])
    assert sanity.choose_images(labels, 4).tolist() == [0, 2, 4, 7]
    assert sanity.choose_images(labels, 5).tolist() == [0, 1, 2, 4, 7]


def test_a_map_that_ignores_the_weights_scores_one_and_a_learned_one_does_not(monkeypatch):
    """A 'method' that returns the image's brightness whatever the model: correlation 1 at
    every depth (it fails the test); the gradient of a model whose head is randomized
    changes: lower."""
    model = Toy().eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), np.uint8)
    real = sanity.saliency.attribute

    def fake(m, x, target, method, **kw):
        att = real(m, x, target, "gradient")
        if method != "guided_backprop":
            return att
        bright = x[0].mean(0).detach().numpy()
        return sanity.saliency.Attribution(method, target, bright, bright, 0.0, {})

    monkeypatch.setattr(sanity.saliency, "attribute", fake)
    fields, maps = sanity.check(
        model,
        images,
        settings=sanity.Settings(images=3, steps=4, strip=2),
        methods=["gradient", "guided_backprop"],
    )
    by = {m.method: m for m in fields["methods"]}
    assert fields["stages"] == ("fc", "body")
    assert by["guided_backprop"].abs_corr == pytest.approx((1.0, 1.0))
    assert by["guided_backprop"].verdict == "fails"
    assert by["gradient"].abs_corr[-1] < 0.9
    assert maps.shape == (2, 2, 3, 16, 16) and maps.dtype == np.uint8
    assert len(by["gradient"].deletion) == 5


def test_deletion_on_a_model_that_reads_one_pixel():
    """Class 1's logit is the red value of pixel (2, 3): deleting that pixel first (the right
    map) drops the probability at the first step; the opposite map keeps it to the end."""

    class OnePixel(nn.Module):
        def forward(self, x):
            v = x[:, 0, 2, 3] * 10
            return torch.stack([torch.zeros_like(v), v], 1)

    x = torch.zeros(1, 3, 8, 8)
    x[0, 0, 2, 3] = 1.0  # a lone bright pixel: the blur spreads it thin
    right = np.zeros((8, 8), np.float32)
    right[2, 3] = 1.0
    model = OnePixel()
    model.dummy = nn.Parameter(torch.zeros(1))  # curves need a device to run on
    good = faithfulness.curves(model, x, 1, right, steps=8)
    bad = faithfulness.curves(model, x, 1, 1 - right, steps=8)
    assert good.deletion[0] == pytest.approx(bad.deletion[0]) and good.deletion[0] > 0.99
    assert good.deletion[1] < 0.7 and bad.deletion[-2] > 0.99
    assert good.deletion_auc < bad.deletion_auc
    assert good.insertion_auc > bad.insertion_auc
    assert good.insertion[-1] == pytest.approx(good.deletion[0])


def test_auc_and_pixel_order():
    assert faithfulness.auc(np.array([1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert faithfulness.auc(np.array([1.0, 0.0])) == pytest.approx(0.5)
    heat = np.array([[0.1, 0.9], [0.5, 0.5]])
    order = faithfulness.pixel_order(heat)
    assert order[0] == 1 and set(order[1:3]) == {2, 3} and order[3] == 0


def test_computed_once_cached_and_keyed_by_weights(run_data, tmp_path, monkeypatch):
    fast = tuple(m for m in sanity.saliency.METHODS if m.name in ("gradient", "gradcam"))
    monkeypatch.setattr(sanity.saliency, "METHODS", fast)  # the slow ones cost minutes here
    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
    settings = sanity.Settings(images=1, steps=2, strip=1)
    assert sanity.load(copy, data, settings) is None
    calls = []
    report = sanity.compute(copy, data, settings=settings, progress=lambda f, m: calls.append(f))
    assert calls[-1] == pytest.approx(1.0) and calls == sorted(calls)
    again = sanity.load(copy, data, settings)
    assert again is not None and again.methods == report.methods
    assert again.stages == report.stages and len(again.images) == 1
    assert again.stage_titles == report.titles and report.titles[0].startswith("Classifier")
    assert sanity.load(copy, data, sanity.Settings(images=2, steps=2)) is None  # other settings
    maps = sanity.load_maps(copy)
    assert maps.shape[:3] == (1, len(report.methods), len(report.stages) + 1)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b" ")  # other bytes, same size
    assert sanity.load(copy, data, settings) is None


def test_a_task_reports_progress_and_refuses_a_second_runner(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert tasks.state(run, "x").state == "none"
    with tasks.running(run, "x") as report:
        report(0.5, "half", True)
        now = tasks.state(run, "x")
        assert now.state == "running" and now.fraction == 0.5 and now.message == "half"
        with pytest.raises(tasks.JobError), tasks.running(run, "x"):
            pass
    assert tasks.state(run, "x").state == "done"  # its result is the caller's to find
    with pytest.raises(RuntimeError), tasks.running(run, "x"):
        raise RuntimeError("broken weights")
    failed = tasks.state(run, "x")
    assert failed.state == "failed" and failed.error == "broken weights"


def test_estimate_counts_passes_per_image_and_model_version(monkeypatch):
    monkeypatch.setattr(sanity.runinfo, "forward_seconds", lambda model: 0.01)
    model = Toy()  # 2 groups: 3 versions; 6 methods; curves: 7 x 2 x (steps + 1)
    settings = sanity.Settings(images=2, steps=4)
    expected = 2 * (3 * 240 + 7 * 2 * 5) * 0.01 * sanity.SLOWDOWN
    assert sanity.estimate_seconds(model, settings) == pytest.approx(expected)


def test_verdict_is_by_the_mean_over_the_cascade():
    """Guided backprop on resnet18-push: 0.92 after the head and layer4, 0.31 at the end;
    it fails (the paper's finding) although its last step alone looks fine."""

    def trust(curve):
        return sanity.MethodTrust("m", curve, curve, curve, (0.0,), (0.0,), 0.0)

    gbp = trust((0.97, 0.92, 0.75, 0.56, 0.47, 0.31))
    assert gbp.after_top == 0.92 and gbp.randomized == 0.31 and gbp.verdict == "fails"
    assert trust((0.64, 0.58, 0.52, 0.48, 0.50, 0.49)).verdict == "partly"  # IG
    assert trust((0.11, 0.19, 0.17, 0.13, 0.09, 0.08)).verdict == "passes"  # Grad-CAM


def test_stages_are_named_for_a_visitor(run_data):
    from tinyviz.models.describe import part_title

    run, _ = run_data
    model = load_model(run)
    groups = sanity.layer_groups(model)
    titles = sanity.stage_titles(model, groups)
    assert titles[0] == "Classifier (the last layer)" and titles[-1] == "Stem (the first layers)"
    assert titles[1] == model.layer_title("layer4") and len(set(titles)) == len(groups)
    assert part_title(model, "stem+x") == "Layers between the last block and the classifier"
