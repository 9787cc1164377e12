"""Classifying uploads: top-k of one model, of snapshot ensembles, and class-list checks."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from tinyviz import runs
from tinyviz.data import load
from tinyviz.data.batches import to_model_input
from tinyviz.demo import predict
from tinyviz.explain import saliency as explain
from tinyviz.runs.folder import ClassList, write_config


@pytest.fixture(scope="module")
def run(tiny_run, tiny_zip):
    """The conftest's tiny trained run (ResNet-18, a few epochs, snapshots kept) and data."""
    return runs.open_run(tiny_run), load(tiny_zip, progress=False)


def test_top5_of_one_model(run):
    r, data = run
    model = runs.load_model(r.path)
    rgb = np.asarray(data.val.images[0])
    p = predict.predict_ensemble([model], rgb, r.class_names, r.wnids, k=5, label="resnet18")
    assert len(p.classes) == 4  # only 4 classes: k is capped
    assert list(p.probs) == sorted(p.probs, reverse=True)
    assert 0 < sum(p.probs) <= 1 + 1e-6
    assert p.names == tuple(r.class_names[i] for i in p.classes)
    assert p.wnids == tuple(r.wnids[i] for i in p.classes)
    assert p.model_label == "resnet18" and p.top == p.names[0]
    with torch.no_grad():
        expected = int(model(to_model_input(rgb)).argmax())
    assert p.classes[0] == expected


def test_one_look_gives_the_same_top5_as_a_forward_pass_and_the_features(run):
    r, data = run
    model = runs.load_model(r.path)
    assert predict.one_pass(model)  # ResNet: forward is its head on its features
    rgb = np.asarray(data.val.images[1])
    seen = predict.look(model, rgb)
    got = predict.from_look(seen, r.class_names, r.wnids, label="resnet18")
    want = predict.predict_ensemble([model], rgb, r.class_names, r.wnids, label="resnet18")
    assert got.classes == want.classes and got.names == want.names and got.wnids == want.wnids
    assert np.allclose(got.probs, want.probs, atol=1e-6) and got.seconds == seen.seconds > 0
    assert seen.features.ndim == 1 and seen.logits.shape == (len(r.wnids),)
    assert predict.judge(seen, None) is None  # no calibration yet: nothing to say
    with pytest.raises(predict.PredictError, match="predicts 4 classes"):
        predict.from_look(seen, ["a"] * 200, ["n"] * 200, label="x")

    class Scaled(type(model)):  # a forward of its own: one pass is not assumed
        def forward(self, x):
            return 2 * super().forward(x)

    model.__class__ = Scaled
    assert not predict.one_pass(model)
    assert not predict.one_pass(torch.nn.Sequential(torch.nn.Flatten()))


def test_snapshot_ensemble_averages_probabilities(run):
    r, data = run
    models = predict.load_snapshot_ensemble(r.path, k=5)
    assert len(models) == len(r.snapshots) >= 2
    assert all(not m.training for m in models)
    rgb = np.asarray(data.val.images[2])
    ens = predict.predict_ensemble(models, rgb, r.class_names, r.wnids, k=4)
    x = to_model_input(rgb)
    with torch.no_grad():
        mean = torch.stack([m(x).softmax(1)[0] for m in models]).mean(0)
    assert ens.classes[0] == int(mean.argmax())
    assert ens.probs[0] == pytest.approx(float(mean.max()), abs=1e-6)
    assert sum(ens.probs) == pytest.approx(1.0, abs=1e-5)  # k = all classes
    assert f"ensemble of {len(models)}" in ens.model_label


def test_wrong_class_lists_are_refused(run):
    r, data = run
    model = runs.load_model(r.path)
    rgb = np.asarray(data.val.images[0])
    with pytest.raises(predict.PredictError, match="4 classes"):
        predict.predict_ensemble([model], rgb, ["a"] * 200, ["n"] * 200)
    with pytest.raises(predict.PredictError, match="wnids"):
        predict.predict_ensemble([model], rgb, r.class_names, r.wnids[:3])
    with pytest.raises(predict.PredictError, match="at least one"):
        predict.predict_ensemble([], rgb, r.class_names, r.wnids)
    with pytest.raises(ValueError, match="uint8"):
        predict.predict_ensemble([model], rgb.astype(np.float32), r.class_names, r.wnids)


def test_run_classes_come_from_the_runs_and_must_agree(run):
    r, _ = run
    assert predict.run_classes([r, r]) == (r.class_names, r.wnids)
    classes = ClassList(tuple(r.wnids[::-1]), tuple(r.class_names[::-1]))
    other = dataclasses.replace(r, config=dataclasses.replace(r.config, classes=classes))
    with pytest.raises(predict.PredictError, match="different classes"):
        predict.run_classes([r, other])
    with pytest.raises(predict.PredictError):
        predict.run_classes([])


def test_no_snapshots_is_a_clear_error(run, tmp_path):
    r, _ = run
    bare = tmp_path / "bare"
    bare.mkdir()
    write_config(runs.RunFolder(bare), r.config)
    with pytest.raises(predict.PredictError, match="no snapshots"):
        predict.load_snapshot_ensemble(bare, 3)


class WatchedLock:
    """The model's lock, noting who asks for it: a test can wait until a thread is waiting
    on it instead of hoping that two threads overlap."""

    def __init__(self) -> None:
        self.lock, self.asked = threading.RLock(), {}

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.asked.setdefault(threading.current_thread().name, threading.Event()).set()
        return self.lock.acquire(blocking, timeout)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def waits(self, name: str, timeout: float = 60) -> bool:
        return self.asked.setdefault(name, threading.Event()).wait(timeout)


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")
def test_classifying_while_another_session_explains_is_safe(run):
    """Guided backprop's hooks would break an inference-mode forward pass: the top-5 waits
    for the explanation. Made to overlap for certain: the explanation is held in the middle
    of its forward pass (its hooks on the model) while the other session asks for its top-5;
    that one must be waiting for the model's lock, then get the answer it gets alone."""
    from tinyviz.runtime import locks

    r, data = run
    model = runs.load_model(r.path)
    rgb = np.asarray(data.val.images[3])
    want = predict.predict_ensemble([model], rgb, r.class_names, r.wnids)
    watched = WatchedLock()
    locks._LOCKS[model] = watched  # what `model_lock(model)` hands out from now on
    inside, release, out = threading.Event(), threading.Event(), {}

    def pause(module, args, output):
        if threading.current_thread().name == "explain" and not inside.is_set():
            inside.set()
            release.wait(60)

    def explain_once() -> None:
        try:
            out["explain"] = explain.attribute(model, to_model_input(rgb), 0, "guided_backprop")
        except BaseException as e:  # noqa: BLE001 - reported by the test
            out["explain"] = e

    def classify() -> None:
        out["classify"] = predict.predict_ensemble([model], rgb, r.class_names, r.wnids)

    handle = model.register_forward_hook(pause)
    a = threading.Thread(target=explain_once, name="explain")
    b = threading.Thread(target=classify, name="classify")
    try:
        a.start()
        assert inside.wait(60)  # the explanation is in its forward pass, its hooks on
        b.start()
        assert watched.waits("classify")  # the top-5 asked for the model's lock...
        assert "classify" not in out  # ...and has no answer while the explanation holds it
    finally:
        release.set()
        a.join(60)
        b.join(60)
        handle.remove()
    assert not isinstance(out["explain"], BaseException), out["explain"]
    got = out["classify"]
    assert got.classes == want.classes and got.probs == want.probs


def test_the_model_lock_is_re_entrant(run):
    """A service holding a model's lock may call another that takes it (docs/architecture.md
    says so): classifying inside the lock finishes instead of waiting for itself."""
    from tinyviz.runtime.locks import model_lock

    r, data = run
    model = runs.load_model(r.path)
    rgb = np.asarray(data.val.images[1])
    got = []

    def nested() -> None:
        with model_lock(model):
            got.append(predict.predict_ensemble([model], rgb, r.class_names, r.wnids))

    t = threading.Thread(target=nested, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive() and len(got) == 1
