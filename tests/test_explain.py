"""Saliency maps: sane on toy models, thread-safe on a shared model, never leave hooks behind."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
import torch
from torch import nn

from tinyviz import runs
from tinyviz.data import load
from tinyviz.data.batches import to_model_input
from tinyviz.demo.heatmaps import overlay
from tinyviz.explain import saliency as explain
from tinyviz.runtime.locks import model_lock

pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")  # pytest resets


@pytest.fixture(scope="module")
def trained(tiny_run, tiny_zip):
    """The conftest's tiny trained run as a model, and one validation image, as the page has."""
    data = load(tiny_zip, progress=False)
    model = runs.load_model(tiny_run)
    return model, to_model_input(np.asarray(data.val.images[0])), int(data.val.labels[0])


def hooks_left(model: nn.Module) -> list[str]:
    return [
        f"{name}.{d}"
        for name, m in model.named_modules()
        for d in explain._HOOK_DICTS
        if getattr(m, d, None)
    ]


class Quadrant(nn.Module):
    """A classifier that only ever looks at the top-left 32 x 32 pixels."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)
        self.gradcam_layer = "conv"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.conv(x[:, :, :32, :32]))).flatten(1))


def test_methods_are_listed_in_order_with_labels():
    names = [m.name for m in explain.METHODS]
    assert names == [
        "gradient",
        "smoothgrad",
        "integrated_gradients",
        "gradcam",
        "guided_backprop",
        "occlusion",
    ]
    assert all(m.label and m.shows for m in explain.METHODS)
    with pytest.raises(ValueError, match="unknown method"):
        explain.method_info("lime")


def test_every_method_gives_a_unit_heatmap_and_leaves_no_hooks(trained):
    model, x, label = trained
    before = [p.clone() for p in model.parameters()]
    results = [explain.attribute(model, x, label, m.name) for m in explain.METHODS]
    assert [a.method for a in results] == [m.name for m in explain.METHODS]
    for a in results:
        assert a.heat.shape == a.signed.shape == (64, 64), a.method
        assert a.heat.dtype == np.float32 and not a.heat.flags.writeable
        assert a.heat.min() >= 0 and a.heat.max() == pytest.approx(1.0), a.method
        assert np.isfinite(a.signed).all() and a.seconds > 0 and a.target == label
        assert overlay(np.zeros((64, 64, 3), np.uint8), a.heat).shape == (64, 64, 3)
    assert results[3].layer == model.gradcam_layer
    assert hooks_left(model) == []
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_parameters_override_defaults_and_unknown_ones_are_refused(trained):
    model, x, label = trained
    a = explain.attribute(model, x, label, "integrated_gradients", n_steps=8, internal_batch_size=8)
    assert a.params["n_steps"] == 8 and a.delta is not None
    with pytest.raises(TypeError, match="n_steps"):
        explain.attribute(model, x, label, "gradient", n_steps=8)
    with pytest.raises(ValueError, match="1 x 3 x H x W"):
        explain.attribute(model, x[0], label, "gradient")
    with pytest.raises(ValueError, match="no layer"):
        explain.attribute(model, x, label, "gradcam", layer="layer9")


def test_gradient_heat_stays_where_the_model_looks():
    model = Quadrant().eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for name in ("gradient", "guided_backprop", "smoothgrad"):
        a = explain.attribute(model, x, 1, name)
        inside = a.heat[:32, :32].sum() / a.heat.sum()
        assert inside > 0.99, (name, inside)
    occl = explain.attribute(model, x, 1, "occlusion")
    assert np.abs(occl.signed[:32, :32]).sum() > 0
    # patches that never touch the quadrant (rows or columns from 36 on) change nothing
    # (up to float rounding: a batch of perturbations is not summed in one fixed order)
    inside = np.abs(occl.signed[:32, :32]).max()
    assert np.abs(occl.signed[48:, :]).max() < 1e-4 * inside
    assert np.abs(occl.signed[:, 48:]).max() < 1e-4 * inside
    with pytest.raises(ValueError, match="tile"):
        explain.attribute(model, x, 1, "occlusion", window=16, stride=5)


def test_gradcam_heat_is_non_negative(trained):
    model, x, label = trained
    for target in range(4):
        a = explain.attribute(model, x, target, "gradcam")
        assert (a.heat >= 0).all() and (a.signed >= 0).all()


def test_integrated_gradients_add_up_to_the_score_difference(trained):
    model, x, label = trained
    a = explain.attribute(model, x, label, "integrated_gradients")
    with torch.no_grad():
        gain = float(model(x)[0, label] - model(torch.zeros_like(x))[0, label])
    assert abs(gain) > 0.1
    assert float(a.signed.sum()) == pytest.approx(gain, rel=0.1)
    assert abs(a.delta) <= 0.1 * abs(gain)


def test_hooks_are_removed_even_when_captum_leaks_or_raises(trained, monkeypatch):
    model, x, label = trained
    keep = model.fc.register_forward_hook(lambda *args: None)  # someone else's: must stay
    try:
        monkeypatch.setattr(explain.GuidedBackprop, "_remove_hooks", lambda self: None)
        explain.attribute(model, x, label, "guided_backprop")
        assert hooks_left(model) == ["fc._forward_hooks"]
        for name in ("guided_backprop", "gradcam", "gradient"):
            with pytest.raises((IndexError, RuntimeError)):
                explain.attribute(model, x, 999, name)  # no such class: fails mid-way
            assert hooks_left(model) == ["fc._forward_hooks"], name
    finally:
        keep.remove()


def test_works_inside_inference_mode_and_restores_training_mode(trained):
    model, x, label = trained
    model.train()
    try:
        with torch.inference_mode():
            a = explain.attribute(model, x, label, "gradient")
        assert a.heat.max() > 0
        assert model.training
    finally:
        model.eval()


# ------------------------------------------------------------------- concurrency

PAIR = ("guided_backprop", "gradcam")
ROUNDS = 5


def _hammer(model, inputs, rounds: int) -> tuple[dict, list[BaseException]]:
    """Two threads, each explaining its own image with `PAIR` `rounds` times, at once."""
    results: dict[int, list] = {0: [], 1: []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(rounds):
                results[i].append(
                    [
                        explain.attribute(model, inputs[i], t, name)
                        for name, t in zip(PAIR, (i, 3 - i), strict=True)
                    ]
                )
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


def _same_as_sequential(model, inputs, results) -> bool:
    for i in (0, 1):
        expected = [
            explain.attribute(model, inputs[i], t, name)
            for name, t in zip(PAIR, (i, 3 - i), strict=True)
        ]
        for run in results[i]:
            for got, want in zip(run, expected, strict=True):
                if not np.array_equal(got.signed, want.signed):
                    return False
    return True


@pytest.fixture()
def two_images(trained):
    model, x, _ = trained
    return model, [x, x.flip(-1) * 0.8]


def test_two_sessions_explaining_one_model_at_once_do_not_interfere(two_images):
    model, inputs = two_images
    results, errors = _hammer(model, inputs, ROUNDS)
    assert errors == []
    assert all(len(results[i]) == ROUNDS for i in (0, 1))
    assert _same_as_sequential(model, inputs, results)
    assert hooks_left(model) == []


def _explain_inside_another(model, inputs, on_pause) -> tuple:
    """A explains (guided backprop) in a thread and pauses in the middle of its forward
    pass; `on_pause()` runs then, in this thread; returns A's result (or its error)."""
    inside, release, out = threading.Event(), threading.Event(), {}

    def pause(module, args, output):
        if threading.current_thread().name == "A" and not inside.is_set():
            inside.set()
            release.wait(60)

    def a() -> None:
        try:
            out["a"] = explain.attribute(model, inputs[0], 0, "guided_backprop")
        except BaseException as e:  # noqa: BLE001 - reported by the test
            out["a"] = e

    handle = model.register_forward_hook(pause)
    thread = threading.Thread(target=a, name="A")
    thread.start()
    try:
        assert inside.wait(60)
        during = on_pause()
    finally:
        release.set()
        thread.join(60)
        handle.remove()
    return out["a"], during


def test_an_explanation_holds_the_model_lock_through_its_forward_pass(two_images):
    model, inputs = two_images

    def try_the_lock() -> bool:  # from a third thread, as another session would
        got = []
        t = threading.Thread(target=lambda: got.append(model_lock(model).acquire(False)))
        t.start()
        t.join(60)
        if got[0]:
            model_lock(model).release()
        return got[0]

    a, free = _explain_inside_another(model, inputs, try_the_lock)
    assert free is False and not isinstance(a, BaseException)
    assert model_lock(model).acquire(False)  # and let go of it afterwards
    model_lock(model).release()


def test_without_the_lock_an_explanation_inside_another_goes_wrong(two_images, monkeypatch):
    """What the lock buys, without a race: B runs entirely inside A's forward pass."""
    model, inputs = two_images
    want_a = explain.attribute(model, inputs[0], 0, "guided_backprop")
    want_b = explain.attribute(model, inputs[1], 3, "gradient")
    monkeypatch.setattr(explain, "model_lock", lambda m: contextlib.nullcontext())

    def b():
        try:
            return explain.attribute(model, inputs[1], 3, "gradient")
        except Exception as e:  # noqa: BLE001 - one of the ways it goes wrong
            return e

    try:
        a, b_got = _explain_inside_another(model, inputs, b)
        leaked = hooks_left(model)
    finally:
        explain._remove_new_hooks(model, {})  # whatever it left, for the tests after

    def wrong(got, want) -> bool:
        return isinstance(got, BaseException) or not np.array_equal(got.signed, want.signed)

    assert wrong(a, want_a) or wrong(b_got, want_b) or leaked


def _small_net(act: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        act(),
        nn.Conv2d(8, 8, 3, padding=1),
        act(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()


def test_guided_backprop_guides_relu6_as_relu():
    """captum guides nn.ReLU alone: on ReLU6 (EfficientNet-Lite) guided backprop was the
    vanilla gradient. Below 6 ReLU6 is ReLU, so both nets must now give the same guided
    map, and it must differ from the ReLU6 net's plain gradient."""
    relu, relu6 = _small_net(nn.ReLU), _small_net(nn.ReLU6)
    relu6.load_state_dict(relu.state_dict())
    x = torch.rand(1, 3, 16, 16) * 0.1  # small: no activation reaches 6
    guided = [explain.attribute(m, x, 2, "guided_backprop").signed for m in (relu, relu6)]
    plain = explain.attribute(relu6, x, 2, "gradient").signed
    np.testing.assert_allclose(guided[1], guided[0], rtol=1e-5, atol=1e-7)
    assert not np.allclose(guided[1], plain, atol=1e-7)
    assert not relu6._backward_hooks and all(not m._backward_hooks for m in relu6.modules())
