"""Nothing the server writes or remembers grows without a bound: class-subset maps and
sprite sheets are kept within a byte budget (least recently used first out), and the
memos of digests, keys and locks stay small however many runs and data sets come."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinyviz import io
from tinyviz.data import cache
from tinyviz.explain import analysis, embed, sprites

CLASSES, PER_CLASS = 60, 10


@pytest.fixture
def stored(tmp_path):
    """A stored analysis of 60 classes (only what a map needs: labels and features) in a
    run folder, as a page hands it to `embed.cached_embedding`."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    features = rng.normal(size=(len(labels), 16)).astype(np.float32) + labels[:, None] * 0.1
    folder = tmp_path / "run" / "analysis" / "0123456789abcdef-n600-w0123456789abcdef"
    folder.mkdir(parents=True)
    return SimpleNamespace(outputs=SimpleNamespace(labels=labels, features=features), folder=folder)


def subsets(n: int, seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [
        sorted(rng.choice(CLASSES, rng.integers(3, 20), replace=False).tolist()) for _ in range(n)
    ]


def map_bytes(run: Path) -> int:
    return sum(size for _, size, _ in embed.stored_maps(run))


def test_fifty_subsets_leave_the_maps_within_the_budget(stored, monkeypatch):
    run = stored.folder.parents[1]
    one = embed.cached_embedding(run, None, "pca", 2, classes=subsets(1)[0], source=stored)
    budget = 6 * map_bytes(run)  # room for a few maps: most of the 50 must go
    monkeypatch.setattr(embed, "MAP_BUDGET", budget)
    picked = subsets(50)
    for k, classes in enumerate(picked):
        emb = embed.cached_embedding(run, None, "pca", 2, classes=classes, source=stored)
        assert set(stored.outputs.labels[emb.indices]) == set(classes)
        assert map_bytes(run) <= budget, f"over the budget after {k + 1} subsets"
        if k == 10:  # the first map, used again now: the least recently used go first
            embed.cached_embedding(run, None, "pca", 2, classes=subsets(1)[0], source=stored)
    assert len(embed.stored_maps(run)) < 50
    kept = {tuple(embed._read(b).params["classes"]) for b, _, _ in embed.stored_maps(run)}
    assert tuple(picked[-1]) in kept  # the newest is there
    assert tuple(picked[0]) not in kept and len(one.indices)  # an old one went
    whole = embed.cached_embedding(run, None, "pca", 2, source=stored)
    assert len(whole.indices) == CLASSES * PER_CLASS  # a map of all classes is not pruned
    embed.prune_maps(stored.folder / "x", budget=0)
    assert (stored.folder / "embed-pca2d-all-s0.json").exists()


def test_fifty_subsets_at_the_real_budget(stored):
    run = stored.folder.parents[1]
    for classes in subsets(50, seed=2):
        embed.cached_embedding(run, None, "pca", 2, classes=classes, source=stored)
    assert 0 < map_bytes(run) <= embed.MAP_BUDGET


def test_sprite_sheets_stay_within_their_budget(tmp_path, monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (CLASSES * PER_CLASS, 64, 64, 3), np.uint8)
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    folder = tmp_path / "sprites"
    folder.mkdir()
    few = np.flatnonzero(labels < 5)
    assert not sprites.stored(few, labels[few], folder, "d|val")  # a page's cost estimate
    first = sprites.build(images, few, labels[few], folder, "d|val")
    assert sprites.stored(few, labels[few], folder, "d|val")
    assert not sprites.stored(few, labels[few], folder, "d|train")
    sheet = (folder / first.files[0]).stat().st_size
    monkeypatch.setattr(sprites, "BUDGET", 8 * sheet)
    for classes in subsets(50, seed=3):
        rows = np.flatnonzero(np.isin(labels, classes))
        got = sprites.build(images, rows, labels[rows], folder, "d|val")
        assert all((folder / f).exists() for f in got.files)  # what a page was handed is there
        used = sum(p.stat().st_size for p in folder.glob("*.jpg"))
        assert used <= sprites.BUDGET + sum((folder / f).stat().st_size for f in got.files)
    assert len(list(folder.glob("*.jpg"))) < 50


def test_a_key_lock_lives_only_while_it_is_used():
    with analysis.key_lock("a"), analysis.key_lock("b"):  # nested keys: no deadlock
        assert set(analysis._KEY_LOCKS) == {"a", "b"}
    assert analysis._KEY_LOCKS == {}
    inside, release, order = threading.Event(), threading.Event(), []

    def first() -> None:
        with analysis.key_lock("k"):
            inside.set()
            release.wait(30)
            order.append("first")

    def second() -> None:
        inside.wait(30)
        with analysis.key_lock("k"):
            order.append("second")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    inside.wait(30)
    while analysis._KEY_LOCKS.get("k", [None, 0])[1] < 2:  # the second waits on the same lock
        threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join(30)
    assert order == ["first", "second"] and analysis._KEY_LOCKS == {}


def test_the_memos_of_digests_and_keys_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "_FILE_DIGESTS_MAX", 5)
    monkeypatch.setattr(io, "_FILE_DIGESTS", {})
    for k in range(20):
        (tmp_path / f"w{k}").write_bytes(bytes([k]) * 10)
        analysis.weights_digest(tmp_path / f"w{k}")
    assert len(io._FILE_DIGESTS) == 5
    monkeypatch.setattr(cache, "_VAL_KEYS_MAX", 4)
    monkeypatch.setattr(cache, "_VAL_KEYS", {})
    for k in range(10):
        folder = tmp_path / f"cache{k}"
        folder.mkdir()
        io.write_json(folder / "meta.json", {cache.VAL_KEY: f"key{k}", "classes": {}})
        assert cache.val_key(SimpleNamespace(cache=folder)) == f"key{k}"
    assert len(cache._VAL_KEYS) == 4
    monkeypatch.setattr(analysis, "_PROBLEMS_MAX", 3)
    monkeypatch.setattr(analysis, "_PROBLEMS", {})
    for k in range(10):
        analysis.problem(tmp_path / f"nothing{k}")
    assert len(analysis._PROBLEMS) == 3


def test_keep_within_keeps_the_recently_used(tmp_path):
    for k in range(10):
        (tmp_path / f"{k}.bin").write_bytes(b"x" * 100)
        t = 1_000_000_000 + k
        os.utime(tmp_path / f"{k}.bin", (t, t))
    (tmp_path / "0.bin").touch()  # used now
    left = io.keep_within(tmp_path, 350, keep={"1.bin"})
    assert left <= 350
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.bin", "1.bin", "9.bin"]
