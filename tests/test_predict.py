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


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")
def test_classifying_while_another_session_explains_is_safe(run):
    """Guided backprop's hooks would break an inference-mode forward pass: the lock waits."""
    r, data = run
    model = runs.load_model(r.path)
    rgb = np.asarray(data.val.images[3])
    want = predict.predict_ensemble([model], rgb, r.class_names, r.wnids)
    errors: list[BaseException] = []

    def explain_loop() -> None:
        try:
            for _ in range(3):
                explain.attribute(model, to_model_input(rgb), 0, "guided_backprop")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=explain_loop)
    t.start()
    got = [predict.predict_ensemble([model], rgb, r.class_names, r.wnids) for _ in range(10)]
    t.join()
    assert errors == []
    assert all(g.classes == want.classes and g.probs == want.probs for g in got)
