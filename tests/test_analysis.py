"""The cached validation pass, confusion matrices and class orders (tinyviz.analysis)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tinyviz import runs
from tinyviz.explain import analysis, confusion, wordnet


@pytest.fixture(scope="session")
def outputs(run_data):
    return analysis.val_outputs(*run_data)


def test_val_outputs_match_the_model(run_data, outputs):
    run, data = run_data
    n = len(data.val.labels)
    assert outputs.logp.shape == (n, 4) and outputs.logp.dtype == np.float32
    width = runs.load_model(run).fc.in_features
    assert outputs.features.dtype == np.float16 and outputs.features.shape == (n, width)
    np.testing.assert_allclose(np.exp(outputs.logp).sum(1), 1, rtol=1e-4)
    assert (outputs.labels == data.val.labels).all()
    assert (outputs.preds == outputs.logp.argmax(1)).all()
    model = runs.load_model(run)
    x = torch.from_numpy(np.array(data.val.images[:5])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        want = model(x).log_softmax(1).numpy()
    np.testing.assert_allclose(outputs.logp[:5], want, atol=1e-3)
    assert 0 <= outputs.top1 <= outputs.top5 <= 1 and outputs.top5 == 1.0  # 4 classes
    assert outputs.top1 > 0.4  # trained: better than chance


def test_cache_is_reused_then_invalidated_by_new_weights(run_data, outputs, tmp_path):
    run, data = run_data
    folder = analysis.cache_dir(run, data)
    assert analysis.is_cached(run, data) and (folder / "meta.json").exists()
    calls = []
    again = analysis.val_outputs(run, data, progress=lambda f, m: calls.append(f))
    assert calls == [] and np.array_equal(again.logp, outputs.logp)

    weights = run / runs.RunFolder.WEIGHTS
    st = weights.stat()
    try:
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # "retrained"
        assert not analysis.is_cached(run, data)
        seen = []
        analysis.val_outputs(run, data, progress=lambda f, m: seen.append((f, m)))
        assert seen[0][0] == 0.0 and seen[-1][0] == 1.0 and len(seen) >= 3
        assert all(isinstance(m, str) for _, m in seen)
        assert not folder.exists()  # the old weights' folder is pruned
    finally:
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
        analysis.val_outputs(run, data)  # back to the shared cache for the other tests


def test_limit_takes_the_first_images(run_data, outputs):
    run, data = run_data
    part = analysis.val_outputs(run, data, limit=10)
    assert len(part) == 10
    assert analysis.cache_dir(run, data, 10) != analysis.cache_dir(run, data)
    np.testing.assert_allclose(part.logp, outputs.logp[:10], atol=1e-5)


def test_wrong_classes_are_refused(run_data, tmp_path):
    import dataclasses

    run, data = run_data
    classes = dataclasses.replace(data.classes, wnids=tuple(reversed(data.classes.wnids)))
    other = dataclasses.replace(data, classes=classes, cache=tmp_path / "other")
    with pytest.raises(runs.CheckpointError):
        analysis.val_outputs(run, other)


def _outputs(labels, preds, num_classes, features=None):
    labels, preds = np.asarray(labels), np.asarray(preds)
    logp = np.full((len(labels), num_classes), -5.0, np.float32)
    logp[np.arange(len(labels)), preds] = -0.1
    if features is None:
        features = np.eye(num_classes, 8)[labels]
    return analysis.ValOutputs(logp, features.astype(np.float16), labels, preds)


def test_confusion_counts_pairs_and_rates():
    #  class 0: 3 right, 1 -> 1; class 1: 2 right, 2 -> 0; class 2: 4 right
    out = _outputs([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], [0, 0, 0, 1, 1, 1, 0, 0, 2, 2, 2, 2], 3)
    conf = confusion.confusion(out, ["a", "b", "c"])
    assert conf.matrix.tolist() == [[3, 1, 0], [2, 2, 0], [0, 0, 4]]
    np.testing.assert_allclose(conf.per_class, [0.75, 0.5, 1.0])
    assert conf.pairs == (confusion.Pair(1, 0, 2, 0.5), confusion.Pair(0, 1, 1, 0.25))
    assert conf.best.tolist() == [2, 0, 1] and conf.worst.tolist() == [1, 0, 2]
    np.testing.assert_allclose(conf.rates.sum(1), 1)
    assert sorted(conf.order.tolist()) == [0, 1, 2]


def test_confusion_order_puts_confused_classes_together():
    # six classes; 0<->3 and 1<->4 are confused with each other, 2 and 5 with nothing
    labels, preds = [], []
    for c in range(6):
        labels += [c] * 10
        preds += [c] * 10
    for a, b in ((0, 3), (1, 4)):
        for t, p in ((a, b), (b, a)):
            i = labels.index(t)
            preds[i : i + 4] = [p] * 4
    conf = confusion.confusion(_outputs(labels, preds, 6), list("abcdef"))
    pos = {int(c): i for i, c in enumerate(conf.order)}
    assert abs(pos[0] - pos[3]) == 1 and abs(pos[1] - pos[4]) == 1


def test_feature_and_name_orders():
    # classes 0 and 2 look alike (same feature direction), as do 1 and 3
    feats = np.array([[1, 0], [0, 1], [1, 0.1], [0.1, 1]], np.float32)
    labels = np.repeat(np.arange(4), 3)
    out = _outputs(labels, labels, 4, feats[labels])
    order = confusion.confusion(out, list("dcba"), order_by="feature").order.tolist()
    pos = {c: i for i, c in enumerate(order)}
    assert abs(pos[0] - pos[2]) == 1 and abs(pos[1] - pos[3]) == 1
    assert confusion.confusion(out, ["b", "a", "C", "d"], order_by="name").order.tolist() == [
        1,
        0,
        2,
        3,
    ]
    with pytest.raises(ValueError):
        confusion.confusion(out, list("abcd"), order_by="colour")
    with pytest.raises(ValueError):
        confusion.confusion(out, list("abcd"), order_by="wordnet")


def test_wordnet_order_groups_the_tree():
    # Tiny ImageNet wnids: two dogs, two vehicles, a cat, and a class unknown to the table
    wnids = ["n02085620", "n04285008", "n02123045", "n99999999", "n02099601", "n03670208"]
    assert [wordnet.known(w) for w in wnids] == [True, True, True, False, True, True]
    order = wordnet.order(wnids).tolist()
    assert sorted(order) == list(range(6)) and order[-1] == 3
    pos = {w: order.index(i) for i, w in enumerate(wnids)}
    assert abs(pos["n02085620"] - pos["n02099601"]) == 1  # Chihuahua, golden retriever
    assert abs(pos["n04285008"] - pos["n03670208"]) == 1  # sports car, limousine
    assert wordnet.ancestors("n02085620")[:1] == ("entity",)
    assert "dog" in wordnet.ancestors("n02085620") and wordnet.ancestors("n99999999") == ()
    out = _outputs([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], 6)
    conf = confusion.confusion(out, list("abcdef"), order_by="wordnet", wnids=wnids)
    assert conf.order.tolist() == order


def test_wordnet_table_builder():
    lines = [
        "  1 This software and database is being provided to you\n",
        "00001740 03 n 01 entity 0 000 | that which is perceived\n",
        "00002000 03 n 02 thing 0 object 0 001 @ 00001740 n 0000 | a thing\n",
        "00003000 05 n 01 dog 0 002 @ 00002000 n 0000 ~ 00004000 n 0000 | a dog\n",
        "00004000 05 n 01 puppy 0 002 @i 00003000 n 0000 @ 00002000 n 0000 | a young dog\n",
    ]
    table = wordnet.build_table(lines, ["n00004000"])
    tree = wordnet.parse_table(table)
    assert tree["n00004000"] == ("n00003000", "puppy")
    assert tree["n00001740"] == (wordnet.ROOT, "entity")
    assert len(tree) == 4


def test_images_of_cell_most_confident_first():
    out = _outputs([0, 0, 0, 1], [1, 1, 0, 1], 2)
    out.logp[0, 1], out.logp[1, 1] = -0.5, -0.01
    assert confusion.images_of_cell(out, 0, 1).tolist() == [1, 0]
    assert confusion.images_of_cell(out, 0, 1, limit=1).tolist() == [1]
    assert confusion.images_of_cell(out, 1, 0).tolist() == []


def test_per_class_table(outputs, run_data):
    _, data = run_data
    names, wnids = list(data.classes.names), list(data.classes.wnids)
    conf = confusion.confusion(outputs, names)
    rows = confusion.per_class_table(conf, names, wnids)
    assert [r["wnid"] for r in rows] == wnids
    assert sum(r["images"] for r in rows) == len(outputs)
    assert sorted(r["position"] for r in rows) == [0, 1, 2, 3]
    for r in rows:
        assert r["accuracy"] == pytest.approx(r["correct"] / r["images"])
        assert (r["confused_with"] == "") == (r["confused_count"] == 0)
