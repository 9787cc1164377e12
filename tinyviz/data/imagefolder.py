"""Your own image data set, in class folders, read through the same view as Tiny ImageNet.

Two layouts, as Keras' `flow_from_directory` and torchvision's `ImageFolder` read them:
`root/train/<class>/*` with `root/val/<class>/*` (or `valid/`, `validation/`), or one
`root/<class>/*` that we split into training and validation images by a fixed seed
(`SPLIT_SEED`, `VAL_FRACTION` of each class), so every machine gets the same split. Images
may sit in sub-folders of a class folder. The class order is the sorted folder names (what
both libraries use), unless `classes.txt` in the root lists the folders in another order,
one a line, each optionally followed by a tab and the name to show.

Files are kept by extension (`EXTENSIONS`: the upload decoder's formats); whether each one
decodes is found when the cache is built, where one that does not is counted and skipped.
Every problem with the layout is a one-line `DataError`.

`watched` names the folders (and `classes.txt`) the item list was read from: adding,
removing or renaming a file changes its folder's mtime, so the cache can tell from a few
`stat` calls whether the list it decoded is still the folder's (`cache._quick_key`).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .view import Archive, Classes, natural_key

# The upload decoder's whitelist (`tinyviz.demo.decode.FORMATS`, a layer above this one;
# tests/test_imagefolder.py keeps the two equal).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "HEIF")
EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".mpo",
    ".heic",
    ".heif",
)
CLASSES_FILE = "classes.txt"
VAL_NAMES = ("val", "valid", "validation")
SPLIT_SEED = 0
VAL_FRACTION = 0.2
MIN_CLASSES, MAX_CLASSES = 2, 1000
KIND = "images"


def is_image_folder(p: Path) -> bool:
    """A folder that is not Tiny ImageNet's official layout is read as class folders."""
    tiny = ("wnids.txt", "words.txt", "val/val_annotations.txt")
    return p.is_dir() and not any(
        (q / f).exists() for q in (p, p / "tiny-imagenet-200") for f in tiny
    )


def open_image_folder(p: Path) -> Archive:
    root = Path(p)
    watched: list[str] = ["."]
    train_dir = root / "train"
    val_dir = next((root / n for n in VAL_NAMES if (root / n).is_dir()), None)
    if train_dir.is_dir():
        if val_dir is None:
            raise DataError(
                f"{root} has train/ but no val/ folder: add val/<class>/ images, or put the "
                "class folders directly in the root to have them split"
            )
        watched += ["train", val_dir.name]
        train_files = _class_files(root, "train", watched)
        val_files = _class_files(root, val_dir.name, watched)
        layout = f"train/ and {val_dir.name}/ folders"
    else:
        train_files = _class_files(root, ".", watched)
        val_files = None
        layout = (
            f"one folder of classes, split by seed {SPLIT_SEED}: "
            f"{VAL_FRACTION:.0%} of each class for validation"
        )
    classes = _classes(root, sorted(train_files), watched)  # plain sort, as ImageFolder
    if val_files is not None:
        extra = sorted(set(val_files) - set(classes.wnids))
        if extra:
            raise DataError(
                f"{val_dir.name}/{extra[0]}/ is a class that train/ lacks"
                + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
            )
        train = [(c, train_files[c]) for c in classes.wnids]
        val = [(c, val_files.get(c, [])) for c in classes.wnids]
    else:
        train, val = _split({c: train_files[c] for c in classes.wnids})
    index = {c: i for i, c in enumerate(classes.wnids)}
    train_items = tuple((rel, index[c]) for c, rels in train for rel in rels)
    val_items = tuple((rel, index[c]) for c, rels in val for rel in rels)
    if not val_items:
        raise DataError(
            f"{root} has no validation images: give each class at least two images (one is "
            "kept for validation), or add a val/ folder"
        )
    digest = hashlib.sha1(f"{KIND}\0{layout}\0{classes.to_json()}\n".encode())
    for rel, label in train_items + val_items:
        st = os.stat(root / rel)
        digest.update(f"{rel}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())

    def read(rel: str) -> bytes:
        try:
            return (root / rel).read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {root / rel}: {e.strerror or e}") from None

    return Archive(
        source=root,
        kind=KIND,
        classes=classes,
        train=train_items,
        val=val_items,
        fingerprint=digest.hexdigest(),
        _read=read,
        watched=tuple(watched),
        layout=layout,
    )


def _class_files(root: Path, split: str, watched: list[str]) -> dict[str, list[str]]:
    """`{class folder: [relative paths of its images]}` of one split folder."""
    base = root / split
    folders = sorted(e.name for e in _entries(base) if e.is_dir() and _visible(e.name))
    if split == ".":
        folders = [f for f in folders if f not in VAL_NAMES]
    if not folders:
        where = "" if split == "." else f"{split}/ in "
        raise DataError(f"no class folders in {where}{root} (expected {where}<class>/<images>)")
    out = {}
    for name in folders:
        rel = name if split == "." else f"{split}/{name}"
        files = _images_under(root, rel, watched)
        if not files:
            raise DataError(
                f"class folder {rel}/ has no images (JPEG, PNG, WEBP, GIF, BMP, TIFF or HEIC "
                f"files) in {root}"
            )
        out[name] = sorted(files, key=natural_key)
    return out


def _images_under(root: Path, rel: str, watched: list[str]) -> list[str]:
    watched.append(rel)
    files = []
    for e in _entries(root / rel):
        if not _visible(e.name):
            continue
        if e.is_dir(follow_symlinks=False):
            files += _images_under(root, f"{rel}/{e.name}", watched)
        elif e.name.lower().endswith(EXTENSIONS) and e.is_file():
            files.append(f"{rel}/{e.name}")
    return files


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as e:
        raise DataError(f"cannot read {folder}: {e.strerror or e}") from None


def _visible(name: str) -> bool:
    return not name.startswith((".", "__"))  # .DS_Store, .ipynb_checkpoints, __MACOSX


def _classes(root: Path, folders: list[str], watched: list[str]) -> Classes:
    """Classes in sorted folder order, or in `classes.txt`'s order with its names."""
    listed = root / CLASSES_FILE
    if not listed.is_file():
        order, shown = folders, folders
    else:
        watched.append(CLASSES_FILE)
        order, shown = _read_classes_file(listed, folders)
    if not MIN_CLASSES <= len(order) <= MAX_CLASSES:
        folders = "class folder" if len(order) == 1 else "class folders"
        raise DataError(
            f"{root} has {len(order)} {folders}: tinyviz takes {MIN_CLASSES} to "
            f"{MAX_CLASSES:,} classes"
        )
    return Classes(tuple(order), tuple(shown), tuple(shown))


def _read_classes_file(path: Path, folders: list[str]) -> tuple[list[str], list[str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    order, shown = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        folder, _, name = line.partition("\t")
        folder = folder.strip()
        if folder not in folders:
            raise DataError(f"{path.name} line {n} names no class folder: {folder[:60]!r}")
        if folder in order:
            raise DataError(f"{path.name} line {n} lists {folder[:60]!r} a second time")
        order.append(folder)
        shown.append(name.strip() or folder)
    missing = [f for f in folders if f not in order]
    if missing:
        raise DataError(f"class folder {missing[0]}/ is not listed in {path.name}")
    return order, shown


def _split(files: dict[str, list[str]]) -> tuple[list, list]:
    """Each class's images split by a seed of their own (the class name's CRC mixed with
    `SPLIT_SEED`), so adding a class leaves the other classes' split as it was."""
    train, val = [], []
    for name, rels in files.items():
        n_val = round(len(rels) * VAL_FRACTION) if len(rels) > 1 else 0
        n_val = min(max(n_val, 1 if len(rels) > 1 else 0), len(rels) - 1)
        rng = np.random.default_rng([SPLIT_SEED, zlib.crc32(name.encode())])
        pick = set(rng.permutation(len(rels))[:n_val].tolist())
        train.append((name, [r for i, r in enumerate(rels) if i not in pick]))
        val.append((name, [r for i, r in enumerate(rels) if i in pick]))
    return train, val
