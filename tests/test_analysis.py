"""The stored validation pass (keys, compact form, resuming), confusion matrices, orders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tinydata
import torch

from tinyviz import runs
from tinyviz.data import load
from tinyviz.data.cache import val_key
from tinyviz.explain import analysis, confusion, speed, wordnet


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


def test_a_trained_run_comes_with_its_analysis(run_data):
    """The trainer writes the analysis at the end of the run: nothing is computed here."""
    run, data = run_data
    folder = analysis.available(run, data)
    assert folder == analysis.cache_dir(run, data) and analysis.is_cached(run, data)
    stored = analysis.read(folder)
    assert stored.exact and not stored.partial and stored.meta["device"] == "cpu"
    assert list(stored.channels) == list(runs.load_model(run).channel_layers)
    assert speed.measured(run, "cpu").forward > 0  # its measured cost, for estimates
    calls = []
    analysis.val_outputs(run, data, progress=lambda f, m: calls.append(f))
    assert calls == []


def test_new_weights_get_a_new_analysis_and_the_old_one_goes(run_data, tmp_path):
    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    old = analysis.cache_dir(copy, data)
    assert old.name == analysis.cache_dir(run, data).name  # keyed by content, not by path
    assert analysis.is_cached(copy, data)
    weights = runs.load_weights(copy / runs.RunFolder.WEIGHTS)
    weights["fc.bias"] += 1.0  # "retrained"
    runs.save_weights(copy / runs.RunFolder.WEIGHTS, weights)
    assert not analysis.is_cached(copy, data) and analysis.available(copy, data) is None
    seen = []
    analysis.val_outputs(copy, data, progress=lambda f, m: seen.append((f, m)))
    assert seen[0][0] == 0.0 and seen[-1][0] == 1.0 and len(seen) >= 3
    assert all(isinstance(m, str) for _, m in seen)
    assert not old.exists() and analysis.is_cached(copy, data)  # the old weights' one is pruned


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


def test_compact_analysis_gives_the_same_answers(run_data, outputs, tmp_path):
    """What is shipped: top-k log-probs, every prediction, PCA features, channel tops."""
    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    folder = analysis.cache_dir(copy, data)
    assert analysis.compact(folder) > 0 and not (folder / "features.npy").exists()
    small = analysis.read(folder)
    assert not small.exact
    out = small.outputs
    assert out.logp.shape == outputs.logp.shape and out.features.shape == outputs.features.shape
    assert (out.preds == outputs.preds).all() and (out.labels == outputs.labels).all()
    rows = np.arange(len(out))
    np.testing.assert_allclose(out.logp[rows, out.labels], outputs.logp[rows, outputs.labels])
    np.testing.assert_allclose(np.exp(out.logp).sum(1), 1, rtol=1e-3)
    assert out.top5 == outputs.top5
    # 24 images: the PCA keeps every direction, so the features come back to float16 rounding
    f, g = np.asarray(out.features, np.float32), np.asarray(outputs.features, np.float32)
    np.testing.assert_allclose(f, g, atol=0.02 * np.abs(g).max())
    full = analysis.read(analysis.cache_dir(run, data)).channels["layer3"]
    np.testing.assert_array_equal(small.channels["layer3"].rows, full.rows)


def test_shipped_analysis_holds_for_any_copy_of_the_data_and_no_other(
    run_data, tiny_folder, tmp_path
):
    """Keyed by the validation set's content: the same files extracted into a folder and
    decoded into another cache find it; a different data set computes its own."""
    run, data = run_data
    shipped = tmp_path / "checkpoints" / run.name
    shutil.copytree(run, shipped)
    analysis.compact(analysis.cache_dir(shipped, data))
    same = load(tiny_folder, root=tmp_path / "fresh-cache", progress=False)
    assert same.cache != data.cache and val_key(same) == val_key(data)
    assert "val_key" in json.loads((same.cache / "meta.json").read_text())  # stored once
    calls = []
    got = analysis.val_outputs(shipped, same, progress=lambda f, m: calls.append(m))
    assert calls == [] and (got.preds == analysis.val_outputs(run, data).preds).all()

    files = tinydata.make_files(seed=1)  # other pixels, same names and labels
    other = load(
        tinydata.write_zip(tmp_path / "other.zip", files), root=tmp_path / "c2", progress=False
    )
    assert val_key(other) != val_key(data)
    assert analysis.available(shipped, other) is None
    analysis.val_outputs(shipped, other, progress=lambda f, m: calls.append(m))
    assert calls and analysis.is_cached(shipped, other) and analysis.is_cached(shipped, same)


def test_a_pass_stopped_half_way_resumes_from_its_chunks(run_data, tmp_path, monkeypatch):
    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
    monkeypatch.setattr(analysis, "CHUNK", 5)  # 24 images: 5 chunks
    monkeypatch.setattr(analysis, "SUBSET_PER_CLASS", 2)  # a subset of 8 images first
    computed = []
    real = analysis._run_model

    def counted(model, images, rows, *rest):
        computed.append(len(rows))
        return real(model, images, rows, *rest)

    monkeypatch.setattr(analysis, "_run_model", counted)

    class Killed(Exception):
        pass

    def die_after_two_chunks(fraction, message):
        if len(computed) == 2:
            raise Killed

    with pytest.raises(Killed):
        analysis.compute(copy, data, progress=die_after_two_chunks)
    folder = analysis.cache_dir(copy, data)
    assert not analysis.is_cached(copy, data) and analysis.read_progress(folder)["done"] == 10
    sample = analysis.read(analysis.available(copy, data))  # the subset was published
    assert sample.partial and len(sample.outputs) == 8 and sample.total == 24
    assert np.bincount(sample.outputs.labels).tolist() == [2, 2, 2, 2]
    assert (sample.outputs.indices == analysis.subset_rows(data.val.labels, 2)).all()
    computed.clear()
    out = analysis.val_outputs(copy, data)
    assert computed == [5, 5, 4] and len(out) == 24  # only what was missing
    assert analysis.read(folder).meta["computed_here"] == 14
    assert not (folder / analysis.WORK).exists() and not (folder / analysis.SUBSET).exists()
    want = analysis.val_outputs(run, data)
    np.testing.assert_allclose(out.logp, want.logp, atol=1e-5)
    i = sample.outputs.indices
    np.testing.assert_allclose(sample.outputs.logp, want.logp[i], atol=1e-5)


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


def test_the_analyse_command_stores_it_and_answers_in_one_json_line(
    run_data, tiny_zip, tmp_path, capsys
):
    from tinyviz.cli import main

    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
    assert main(["analyse", str(copy), "--data", str(tiny_zip), "--quiet", "--compact"]) == 0
    reply = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert reply["status"] == "done" and reply["images"] == 24 and reply["exact"] is False
    assert analysis.is_cached(copy, data) and not analysis.read(reply["folder"]).exact
    assert main(["analyse", str(tmp_path / "nowhere"), "--data", str(tiny_zip)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1


def test_decoding_reports_from_the_first_second(tiny_zip, tmp_path):
    """(0, 0) before the archive's index is read, (0, total) before the first image."""
    from tinyviz.data import cache

    seen = []
    data = load(tiny_zip, root=tmp_path / "c", progress=lambda d, t: seen.append((d, t)))
    total = len(data.train) + len(data.val)
    assert seen[:2] == [(0, 0), (0, total)] and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert json.loads((data.cache / "meta.json").read_text())[cache.VAL_KEY] == val_key(data)
