"""Your own data set in class folders (issue 17): layouts, decoding, sizes, cheap reopening,
and every bad layout refused in one line."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tinydata
from PIL import Image

from tinyviz.data import DataError, cache, imagefolder, load, open_archive, open_decoded

NAMES = list(tinydata.FOLDER_CLASSES)


def copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_train_val_layout(folder_set):
    a = open_archive(folder_set)
    assert a.kind == "images" and a.layout == "train/ and val/ folders"
    assert list(a.classes.wnids) == NAMES == list(a.classes.names)  # sorted folder names
    assert len(a.train) == 5 * 12 and len(a.val) == 5 * 4
    assert {lab for _, lab in a.val} == set(range(5))
    assert a.train[0][0].startswith("train/apple/") and a.val[-1][0].startswith("val/elephant/")


def test_single_folder_is_split_by_a_fixed_seed(folder_single, tmp_path):
    a = open_archive(folder_single)
    assert "split by seed 0" in a.layout and "20%" in a.layout
    assert len(a.train) + len(a.val) == 5 * 16 and len(a.val) == 5 * 3  # 20% of 16 per class
    assert not {r for r, _ in a.train} & {r for r, _ in a.val}
    again = open_archive(copy(folder_single, tmp_path))  # the same split on another copy
    assert [r for r, _ in again.val] == [r for r, _ in a.val]
    summary = load(folder_single, progress=False).summary()
    assert "split by seed 0" in summary["layout"]


def test_mixed_formats_and_sizes_decode_to_squares(folder_data, folder_set):
    assert folder_data.size == 32 and folder_data.train.images.shape[1:] == (32, 32, 3)
    assert folder_data.val.images.shape == (20, 32, 32, 3)
    assert not folder_data.tiny_imagenet and folder_data.summary()["corrupt"] == 0
    files = list(folder_data.train.files)
    gray = np.asarray(folder_data.train.images[files.index("train/apple/IMG_2.JPEG")], np.int16)
    assert np.abs(gray[..., 0] - gray[..., 2]).max() <= 1 and gray.std() > 3  # grayscale
    rgba = np.asarray(folder_data.train.images[files.index("train/apple/img_3.png")])
    assert rgba.std() > 3  # RGBA, opaque: the picture, not a flat colour


def test_decode_applies_exif_orientation_and_alpha_over_white():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # white left half, black right
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    out = cache.decode(buf.getvalue(), 16)
    assert out.shape == (16, 16, 3)
    assert out[:4].mean() > 200 and out[-4:].mean() < 50  # left became top
    clear = io.BytesIO()
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(clear, "PNG")
    assert cache.decode(clear.getvalue(), 8).min() == 255  # transparent is white, not black


def test_the_decoder_whitelist_is_the_upload_decoders():
    from tinyviz.demo import decode

    assert imagefolder.FORMATS == decode.FORMATS
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    with pytest.raises(Exception):  # noqa: B017  (no Ghostscript is ever started)
        cache.decode(eps, 8)


def test_classes_txt_gives_order_and_names(folder_set, tmp_path):
    root = copy(folder_set, tmp_path)
    order = ["elephant", "daisy", "cloud", "bicycle", "apple"]
    (root / "classes.txt").write_text("".join(f"{c}\t{c.title()} (mine)\n" for c in order))
    a = open_archive(root)
    assert list(a.classes.wnids) == order and a.classes.names[0] == "Elephant (mine)"
    assert {lab for rel, lab in a.val if rel.startswith("val/apple/")} == {4}


@pytest.mark.parametrize("pool", [False, True], ids=["in-process", "worker-pool"])
def test_unreadable_files_are_counted_and_skipped(folder_set, tmp_path, monkeypatch, pool):
    root = copy(folder_set, tmp_path)
    (root / "train" / "apple" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg at all")
    (root / "val" / "daisy" / "empty.png").write_bytes(b"")
    (root / "train" / "apple" / "notes.txt").write_text("not an image: ignored")
    if pool:  # as a set of more than a few hundred images is decoded
        monkeypatch.setattr(cache, "IN_PROCESS_MAX", 0)
    d = load(root, workers=2, progress=False)
    assert d.summary()["corrupt"] == 2 and len(d.train) == 60 and len(d.val) == 20
    assert sorted(d.corrupt) == ["train/apple/broken.jpg", "val/daisy/empty.png"]
    assert not any(f.endswith(("broken.jpg", "empty.png")) for f in d.train.files + d.val.files)
    assert d.train.images.shape[0] == len(d.train.labels) == len(d.train.files)


def _layout(tmp_path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "bad"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    root.mkdir(exist_ok=True)
    return root


PNG = tinydata.folder_image(0, 1, np.random.default_rng(0))[1]
BAD = {
    "no class folders": ({"loose.png": PNG}, "no class folders in"),
    "class without images": (
        {"a/1.png": PNG, "a/2.png": PNG, "b/readme.txt": b"x"},
        "class folder b/ has no images",
    ),
    "val class train lacks": (
        {"train/a/1.png": PNG, "train/b/1.png": PNG, "val/a/1.png": PNG, "val/c/1.png": PNG},
        "val/c/ is a class that train/ lacks",
    ),
    "train without val": ({"train/a/1.png": PNG, "train/b/1.png": PNG}, "no val/ folder"),
    "one class": ({"a/1.png": PNG, "a/2.png": PNG}, "1 class folder: tinyviz takes 2"),
    "one image a class": ({"a/1.png": PNG, "b/1.png": PNG}, "no validation images: give each"),
    "classes.txt lists a folder that is not there": (
        {"a/1.png": PNG, "a/2.png": PNG, "b/1.png": PNG, "b/2.png": PNG, "classes.txt": b"a\nz\n"},
        "classes.txt line 2 names no class folder",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_layouts_get_one_line(tmp_path, case):
    files, message = BAD[case]
    with pytest.raises(DataError, match=message) as e:
        load(_layout(tmp_path, files), progress=False)
    assert "\n" not in str(e.value)


def test_nothing_decodable_is_one_line(tmp_path):
    root = _layout(tmp_path, {f"{c}/{i}.jpg": b"junk" for c in "ab" for i in range(3)})
    with pytest.raises(DataError, match="could be decoded"):
        load(root, progress=False)


def test_cli_data_size_then_train_uses_it_and_errors_are_one_line(folder_set, tmp_path):
    env = {**os.environ, "TINYVIZ_CACHE": str(tmp_path / "c")}
    cli = [sys.executable, "-m", "tinyviz"]
    out = subprocess.run([*cli, "data", str(folder_set), "--size", "24"], env=env, text=True,
                         capture_output=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["size"] == 24 and summary["classes"] == 5 and summary["corrupt"] == 0
    assert load(folder_set, root=tmp_path / "c", progress=False).size == 24  # remembered
    bad = subprocess.run([*cli, "data", str(folder_set), "--size", "4"], env=env, text=True,
                         capture_output=True, timeout=120)  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "8 to 512" in bad.stderr


def test_a_second_load_reads_no_file_list(folder_set, tmp_path, monkeypatch):
    """Every script run of the app loads the data set: it must not list the folders again."""
    root = copy(folder_set, tmp_path)
    first = load(root, root=tmp_path / "c", progress=False)
    calls = []
    real_scandir, real_walk = os.scandir, os.walk
    monkeypatch.setattr(os, "scandir", lambda *a: calls.append(a) or real_scandir(*a))
    monkeypatch.setattr(os, "walk", lambda *a, **k: calls.append(a) or real_walk(*a, **k))
    monkeypatch.setattr(cache, "_build", lambda *a, **k: pytest.fail("decoded again"))
    again = load(root, root=tmp_path / "c", progress=False)
    assert calls == [] and again.cache == first.cache
    assert open_decoded(root, root=tmp_path / "c") is not None and calls == []
    monkeypatch.undo()
    time.sleep(0.01)
    (root / "val" / "apple" / "new.png").write_bytes(PNG)  # a new image changes its folder
    changed = load(root, root=tmp_path / "c", progress=False)
    assert changed.cache != first.cache and len(changed.val) == len(first.val) + 1


def test_an_extracted_tiny_imagenet_folder_is_not_listed_again(tiny_folder, tmp_path, monkeypatch):
    first = load(tiny_folder, root=tmp_path / "c", progress=False)
    calls = []
    real_walk, real_scandir = os.walk, os.scandir
    monkeypatch.setattr(os, "walk", lambda *a, **k: calls.append(a) or real_walk(*a, **k))
    monkeypatch.setattr(os, "scandir", lambda *a: calls.append(a) or real_scandir(*a))
    again = load(tiny_folder, root=tmp_path / "c", progress=False)
    assert calls == [] and again.cache == first.cache and again.tiny_imagenet


def test_tiny_imagenet_at_64_keeps_its_cache_name_and_pixels(tiny_zip, tmp_path):
    """Caches built before sizes existed (and the shipped analyses' validation keys) hold."""
    d = load(tiny_zip, root=tmp_path / "c", progress=False)
    assert d.cache.name.startswith("tiny-") and "-s" not in d.cache.name and d.size == 64
    small = load(tiny_zip, size=32, root=tmp_path / "c", progress=False)
    assert small.cache.name.endswith("-s32-v1") and small.val.images.shape[1:] == (32, 32, 3)
    assert cache.val_key(small) != cache.val_key(d)
