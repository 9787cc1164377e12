"""Reading the official layout (zip and folder), its errors, the decoded cache and batches."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import tinydata
import torch

from tinyviz.config import AugmentConfig
from tinyviz.data import DataError, load, locate, open_archive
from tinyviz.data.batches import DeviceSplit
from tinyviz.training.augment import augment, mix


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_archive_reads_official_layout(kind, tiny_zip, tiny_folder):
    a = open_archive(tiny_zip if kind == "zip" else tiny_folder)
    assert a.kind == kind
    assert a.classes.wnids == tuple(tinydata.wnid(k) for k in range(4))
    assert a.classes.names[0] == "goldfish" and a.classes.full_names[0].startswith("goldfish,")
    assert len(a.train) == 4 * 24 and len(a.val) == 4 * 6
    assert a.train[0] == (f"train/{tinydata.wnid(0)}/images/{tinydata.wnid(0)}_0.JPEG", 0)
    assert a.train[2][0].endswith("_2.JPEG")  # natural order: _2 before _10
    assert [lab for _, lab in a.val[:4]] == [0, 1, 2, 3]
    assert a.read(a.val[0][0])[:2] == b"\xff\xd8"


def test_zip_and_folder_decode_to_the_same_arrays(tiny_zip, tiny_folder, tmp_path, monkeypatch):
    """The zip through the pool of worker processes (what a set of more than a few hundred
    images gets), the folder in this process: the same arrays either way."""
    from tinyviz.data import cache

    pools = []

    class Pool(cache.ProcessPoolExecutor):
        def __init__(self, *args, **kw):
            pools.append(args)
            super().__init__(*args, **kw)

    monkeypatch.setattr(cache, "ProcessPoolExecutor", Pool)
    with monkeypatch.context() as big:
        big.setattr(cache, "IN_PROCESS_MAX", 0)
        dz = load(tiny_zip, root=tmp_path / "a", workers=2, progress=False)
    assert len(pools) == 1
    df = load(tiny_folder, root=tmp_path / "b", workers=2, progress=False)
    assert len(pools) == 1  # 120 images: no processes started
    assert np.array_equal(np.asarray(dz.train.images), np.asarray(df.train.images))
    assert np.array_equal(dz.val.labels, df.val.labels)
    assert dz.summary()["train"] == 96 and dz.summary()["classes"] == 4
    assert dz.train.images.shape == (96, 64, 64, 3) and dz.train.images.dtype == np.uint8


def test_grayscale_images_become_rgb(tiny_zip, tmp_path):
    d = load(tiny_zip, root=tmp_path, progress=False)
    gray = np.asarray(d.train.images[1], dtype=np.int16)  # image _1 of class 0 is mode L
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1


def test_cache_reopens_without_decoding_and_rebuilds_when_archive_changes(tmp_path, monkeypatch):
    from tinyviz.data import cache

    files = tinydata.make_files(classes=2, train_per_class=6, val_per_class=2)
    z = tinydata.write_zip(tmp_path / "t.zip", files)
    monkeypatch.setattr(cache, "CHUNK", 4)  # four chunks
    first = load(z, root=tmp_path / "c", workers=2, progress=False)
    build = cache._build

    def no_decoding(*args, **kw):
        raise AssertionError("the cache was decoded again")

    monkeypatch.setattr(cache, "_build", no_decoding)
    again = load(z, root=tmp_path / "c", progress=False)
    assert again.cache == first.cache
    monkeypatch.setattr(cache, "_build", build)
    changed = tinydata.make_files(classes=2, train_per_class=6, val_per_class=2, seed=5)
    time.sleep(0.01)
    tinydata.write_zip(z, changed)
    rebuilt = load(z, root=tmp_path / "c", progress=False)
    assert rebuilt.cache != first.cache
    assert not np.array_equal(np.asarray(rebuilt.val.images), np.asarray(first.val.images))


def test_progress_callback_reaches_total(tiny_zip, tmp_path):
    seen = []
    load(
        tiny_zip, root=tmp_path, workers=1, progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1][0] == seen[-1][1] == 120


def test_corrupt_image_is_named_and_counted(tmp_path):
    files = tinydata.make_files(classes=2, train_per_class=6, val_per_class=2, corrupt=1)
    d = load(tinydata.write_zip(tmp_path / "c.zip", files), root=tmp_path / "k", progress=False)
    assert len(d.corrupt) == 1 and d.corrupt[0].endswith("_2.JPEG")
    assert d.summary()["corrupt"] == 1 and len(d.train) == 12


def _without(files, rel):
    return {k: v for k, v in files.items() if k != rel}


@pytest.mark.parametrize("missing", ["wnids.txt", "words.txt", "val/val_annotations.txt"])
def test_missing_layout_file_is_named(tmp_path, tiny_files, missing):
    z = tinydata.write_zip(tmp_path / "bad.zip", _without(tiny_files, missing))
    with pytest.raises(DataError, match=missing.split("/")[-1]):
        open_archive(z)


def test_missing_class_folder_is_named(tmp_path, tiny_files):
    w = tinydata.wnid(2)
    files = {k: v for k, v in tiny_files.items() if not k.startswith(f"train/{w}/")}
    with pytest.raises(DataError, match=f"train/{w}/images"):
        open_archive(tinydata.write_folder(tmp_path, files))


def test_missing_val_image_is_named(tmp_path, tiny_files):
    with pytest.raises(DataError, match="val_3.JPEG missing"):
        open_archive(
            tinydata.write_zip(tmp_path / "v.zip", _without(tiny_files, "val/images/val_3.JPEG"))
        )


def test_truncated_zip_is_refused(tmp_path, tiny_zip):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(tiny_zip.read_bytes()[: tiny_zip.stat().st_size // 2])
    with pytest.raises(DataError, match="not a complete zip"):
        open_archive(cut)


def test_missing_path_and_nothing_found(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        locate(tmp_path / "nope.zip")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="TINYVIZ_DATA"):
        locate()
    monkeypatch.setenv("TINYVIZ_DATA", str(tmp_path / "gone"))
    with pytest.raises(DataError, match="TINYVIZ_DATA points"):
        locate()


def test_locate_order(tmp_path, monkeypatch, tiny_zip, tiny_folder):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tiny-imagenet-200").mkdir()
    assert locate().name == "tiny-imagenet-200"
    monkeypatch.setenv("TINYVIZ_DATA", str(tiny_zip))
    assert locate() == tiny_zip
    assert locate(tiny_folder) == tiny_folder


@pytest.mark.slow
def test_cli_data_prints_one_json_line(tiny_zip, tmp_path):
    env = {"TINYVIZ_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "tinyviz", "data", str(tiny_zip)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["classes"] == 4 and line["train"] == 96 and line["val"] == 24


@pytest.mark.slow
def test_cli_data_error_is_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tinyviz", "data", str(tmp_path / "x.zip")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "does not exist" in out.stderr


def test_device_split_batches_and_subset(tiny_zip, tmp_path):
    d = load(tiny_zip, root=tmp_path, progress=False)
    split = DeviceSplit(d.train.images, d.train.labels, torch.device("cpu"), limit=8)
    assert sorted(split.labels.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    full = DeviceSplit(d.train.images, d.train.labels, torch.device("cpu"))
    batches = list(full.epoch(32, torch.Generator().manual_seed(0)))
    assert len(batches) == 3 and batches[0][0].shape == (32, 3, 64, 64)
    x = batches[0][0]
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    ordered = list(full.epoch(50, None, drop_last=False))
    assert [len(b[1]) for b in ordered] == [50, 46]


@pytest.mark.parametrize(
    "cfg",
    [
        AugmentConfig(),
        AugmentConfig(flip=True, translate=0),
        AugmentConfig(rotate=15, crop=56, brightness=0.2, contrast=0.3),
    ],
)
def test_augment_keeps_shape_and_range(cfg):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 64, 64)
    y = augment(x, cfg, gen)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.equal(y, x)


def test_flip_translate_is_exact_pixel_move():
    x = torch.rand(64, 3, 64, 64)
    y = augment(x, AugmentConfig(flip=True, translate=0), torch.Generator().manual_seed(1))
    for a, b in zip(x, y, strict=True):
        assert torch.equal(b, a) or torch.equal(b, a.flip(-1))
    assert any(not torch.equal(a, b) for a, b in zip(x, y, strict=True))


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mix_returns_pair_labels_and_ratio(kind):
    cfg = AugmentConfig(**{kind: 1.0})
    x, y = torch.rand(8, 3, 64, 64), torch.arange(8)
    xm, ya, yb, lam = mix(x, y, cfg, torch.Generator().manual_seed(0), np.random.default_rng(0))
    assert xm.shape == x.shape and torch.equal(ya, y) and 0 <= lam <= 1
    assert sorted(yb.tolist()) == list(range(8))


def test_open_decoded_opens_only_a_cache_built_before(tmp_path, tiny_zip, tiny_files):
    """What a background warm-up may call: the decoded set, or None, never a decode."""
    from tinyviz.data import open_decoded

    root = tmp_path / "cache"
    other = tinydata.write_zip(tmp_path / "other.zip", tiny_files)
    assert open_decoded(other, root=root) is None
    assert not root.exists() or not list(root.glob("tiny-*"))  # nothing was decoded
    load(other, root=root, progress=False)
    opened = open_decoded(other, root=root)
    val_images = [name for name in tiny_files if name.startswith("val/images/")]
    assert opened is not None and len(opened.val.labels) == len(val_images)


def test_every_page_shares_one_opened_data_set_until_its_cache_is_rebuilt(tmp_path, tiny_zip):
    """Each page opens the data set on every script run: the same object comes back (no
    file list read again, no copy per session), read-only, and a rebuilt cache is read anew."""
    from tinyviz.data import cache, open_decoded

    root = tmp_path / "cache"
    load(tiny_zip, root=root, progress=False)
    first = open_decoded(tiny_zip, root=root)
    assert open_decoded(tiny_zip, root=root) is first
    with pytest.raises(ValueError, match="read-only"):
        first.val.labels[0] = 1
    meta = first.cache / "meta.json"
    fresh = meta.with_suffix(".new")
    fresh.write_text(meta.read_text())
    fresh.replace(meta)  # as a rebuild writes it: a new file in its place
    again = open_decoded(tiny_zip, root=root)
    assert again is not first and (again.val.labels == first.val.labels).all()
    assert len(cache._OPENED) <= cache.OPENED_KEPT


# ------------------------------------------------ the decode as a task (issue 18)


def test_a_killed_decode_resumes_with_the_chunks_it_finished(tmp_path, monkeypatch):
    from tinyviz.data import cache

    monkeypatch.setattr(cache, "CHUNK", 10)
    files = tinydata.make_files(classes=3, train_per_class=10, val_per_class=4)  # 3 + 2 chunks
    z = tinydata.write_zip(tmp_path / "t.zip", files)
    real, calls = cache._decode_chunk, []

    def dies_after_two(*job):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill would stop it (nothing of it is recorded)
        calls.append(job[:2])
        return real(*job)

    monkeypatch.setattr(cache, "_decode_chunk", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        load(z, root=tmp_path / "c", workers=1, progress=False)
    assert len(list((tmp_path / "c").glob("*.partial"))) == 1
    monkeypatch.setattr(cache, "_decode_chunk", lambda *job: calls.append(job[:2]) or real(*job))
    resumed = load(z, root=tmp_path / "c", workers=1, progress=False)
    assert len(calls) == len(set(calls)) == 5  # two before the kill, three after: none twice
    fresh = load(z, root=tmp_path / "fresh", workers=1, progress=False)
    assert np.array_equal(np.asarray(resumed.train.images), np.asarray(fresh.train.images))
    assert np.array_equal(np.asarray(resumed.val.images), np.asarray(fresh.val.images))
    assert not list((tmp_path / "c").glob("*.partial"))


def test_two_sessions_asking_at_once_decode_the_data_set_once(tmp_path, tiny_zip, monkeypatch):
    """The decode's lock is taken by whoever decodes (a session's thread, the command line,
    a background process): the others wait for it, then open what it built."""
    import threading

    from tinyviz.data import cache

    builds, real = [], cache._build
    monkeypatch.setattr(cache, "_build", lambda *a, **k: builds.append(1) or real(*a, **k))
    got, start = [], threading.Barrier(2)

    def session() -> None:
        start.wait()
        got.append(load(tiny_zip, root=tmp_path / "c", workers=1, progress=False).cache)

    threads = [threading.Thread(target=session) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(builds) == 1 and len(got) == 2 and got[0] == got[1]


def test_the_decode_reports_from_its_first_second(tmp_path, tiny_zip, monkeypatch):
    """Before the archive's list is read (seconds for 120,000 zip entries) the task's
    progress file already says what is happening; then images and the time left."""
    from tinyviz.data import cache

    task = cache.decode_task(tiny_zip.resolve(), 64, tmp_path / "c")
    seen, real = [], cache.open_archive

    def listing(src):
        seen.append(task.state())
        return real(src)

    monkeypatch.setattr(cache, "open_archive", listing)
    load(tiny_zip, root=tmp_path / "c", workers=1, progress=False)
    assert seen[0].state == "running" and "list of images" in seen[0].message
    assert task.state().state == "done"


def test_only_a_small_data_set_is_small(tmp_path, tiny_zip, tiny_folder, monkeypatch):
    from tinyviz.data import cache

    assert cache.is_small(tiny_zip) and cache.is_small(tiny_folder)
    monkeypatch.setattr(cache, "SMALL_BYTES", tiny_zip.stat().st_size - 1)
    monkeypatch.setattr(cache, "SMALL_FILES", 10)
    assert not cache.is_small(tiny_zip) and not cache.is_small(tiny_folder)


def test_a_background_decode_is_one_process_however_many_ask(tmp_path, tiny_zip, monkeypatch):
    """What a page does for a large data set: `tinyviz data` in the background; a second
    asker launches nothing; the cache it builds is what `open_decoded` opens."""
    import time as clock

    from tinyviz.data import cache, open_decoded
    from tinyviz.runtime import background

    root = tmp_path / "c"
    monkeypatch.setenv("TINYVIZ_CACHE", str(root))
    first = cache.start_decode(tiny_zip)
    second = cache.start_decode(tiny_zip)
    assert first.active and second.active
    task = cache.decode_task(tiny_zip.resolve(), 64, root)
    launched = task.files.launched()
    deadline = clock.monotonic() + 120
    while task.files.running() and clock.monotonic() < deadline:
        clock.sleep(0.05)
    proc = background.child(launched.pid)
    assert proc is None or proc.wait(60) == 0, task.log_tail(5)
    assert task.files.launched() == launched  # the second asker started nothing
    assert task.state().state == "done" and open_decoded(tiny_zip, root=root) is not None


def test_a_large_data_set_decodes_with_decoders_started_before_its_list(
    tmp_path, tiny_zip, monkeypatch
):
    """For a large set the decoding processes start while the list of images is read (they
    open the zip for themselves); what they decode is what one process decodes."""
    from tinyviz.data import cache

    started = []
    real = cache._start_pool
    monkeypatch.setattr(cache, "_start_pool", lambda *a: started.append(a) or real(*a))
    monkeypatch.setattr(cache, "SMALL_BYTES", 0)
    early = load(tiny_zip, root=tmp_path / "a", workers=2, progress=False)
    assert len(started) == 1  # once, before the listing, and used for every chunk
    one = load(tiny_zip, root=tmp_path / "b", workers=1, progress=False)
    assert np.array_equal(np.asarray(early.train.images), np.asarray(one.train.images))
    assert np.array_equal(np.asarray(early.val.images), np.asarray(one.val.images))
