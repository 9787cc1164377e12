"""Decode the data set once into uint8 arrays on disk, memory-mapped ever after.

Decoding 110,000 JPEGs every epoch is the classic bottleneck of Tiny ImageNet projects. We
decode once, in parallel over all cores, into `N x 64 x 64 x 3` uint8 `.npy` files under
`TINYVIZ_CACHE` (default `~/.cache/tinyviz`); training and analysis then read arrays.
The cache folder is keyed by the archive's fingerprint, so a changed archive is decoded anew,
and it is written to a temporary folder and renamed, so a killed build leaves nothing behind.

`val_key` is a digest of what the validation set IS (class order, file names, labels and the
decoded pixels), stored in the cache's metadata: results computed on the validation set (a
run's shipped analysis) are keyed by it, so they hold for any copy of the same data set, zip
or folder, wherever it lies, and for no other.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import CheckpointError, DataError
from ..io import read_json, write_json
from .archive import Archive, Classes, locate, open_archive
from .progress import Progress, reporter

SIZE = 64
CACHE_VERSION = 1
CHUNK = 500  # images per decoding task: small enough that progress moves every second or so
VAL_KEY = "val_key"


@dataclass(frozen=True)
class Split:
    """Images (`N x 64 x 64 x 3` uint8, memory-mapped), labels and file names of one split."""

    images: np.ndarray
    labels: np.ndarray
    files: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def of_class(self, k: int) -> np.ndarray:
        """Indices of the images of class `k`, in file order."""
        return np.flatnonzero(np.asarray(self.labels) == k)

    def counts(self, classes: int) -> np.ndarray:
        """Images per class, an array of length `classes`."""
        return np.bincount(np.asarray(self.labels, np.int64), minlength=classes)


@dataclass(frozen=True)
class TinyImageNet:
    """The decoded data set: what a trainer or an analysis page needs, as arrays."""

    source: Path
    classes: Classes
    train: Split
    val: Split
    corrupt: tuple[str, ...]
    cache: Path

    def summary(self) -> dict:
        return {
            "classes": len(self.classes),
            "train": len(self.train),
            "val": len(self.val),
            "corrupt": len(self.corrupt),
            "source": str(self.source),
            "cache": str(self.cache),
        }


def cache_root() -> Path:
    return Path(os.environ.get("TINYVIZ_CACHE") or Path.home() / ".cache" / "tinyviz")


def load(
    path=None,
    *,
    root: Path | None = None,
    workers: int | None = None,
    progress: bool | Progress = True,
) -> TinyImageNet:
    """Open the data set's cache, building it first if the archive is new or changed."""
    src = locate(path).resolve()
    root = Path(root) if root else cache_root()
    quick = _quick_key(src)
    folder = _lookup(root, quick)
    if folder is None:
        if callable(progress):
            progress(0, 0)  # reading the archive's index (seconds): the count is not known yet
        archive = open_archive(src)
        folder = root / f"tiny-{archive.fingerprint[:16]}-v{CACHE_VERSION}"
        if not (folder / "meta.json").exists():
            _build(archive, folder, workers or os.cpu_count() or 1, progress)
        _remember(root, quick, folder)
    return _open(src, folder)


def open_decoded(path=None, *, root: Path | None = None) -> TinyImageNet | None:
    """The data set if this zip's cache is built and known (opened before), else None:
    never reads the archive nor decodes, so a background warm-up can call it freely."""
    try:
        src = locate(path).resolve()
    except DataError:
        return None
    folder = _lookup(Path(root) if root else cache_root(), _quick_key(src))
    return None if folder is None else _open(src, folder)


# ------------------------------------------------------------------ fast reopening


def _quick_key(src: Path) -> str | None:
    """A stat-based key for zips, so reopening skips reading 110,000 zip entries.

    Folders get none: a changed image inside does not change the folder's own stat.
    """
    if src.is_dir():
        return None
    st = src.stat()
    return f"{src}|{st.st_size}|{st.st_mtime_ns}|v{CACHE_VERSION}"


def _index_path(root: Path) -> Path:
    return root / "index.json"


def _lookup(root: Path, quick: str | None) -> Path | None:
    if quick is None:
        return None
    try:
        folder = Path(json.loads(_index_path(root).read_text())[quick])
    except (OSError, ValueError, KeyError):
        return None
    return folder if (folder / "meta.json").exists() else None


def _remember(root: Path, quick: str | None, folder: Path) -> None:
    if quick is None:
        return
    try:
        index = json.loads(_index_path(root).read_text())
    except (OSError, ValueError):
        index = {}
    index[quick] = str(folder)
    write_json(_index_path(root), index)


def _open(src: Path, folder: Path) -> TinyImageNet:
    meta = json.loads((folder / "meta.json").read_text())

    def split(name: str) -> Split:
        images = np.load(folder / f"{name}_images.npy", mmap_mode="r")
        labels = np.load(folder / f"{name}_labels.npy")
        return Split(images, labels, tuple(meta["files"][name]))

    return TinyImageNet(
        src,
        Classes.from_json(meta["classes"]),
        split("train"),
        split("val"),
        tuple(meta["corrupt"]),
        folder,
    )


# ------------------------------------------------------------------------ building


def _build(archive: Archive, folder: Path, workers: int, progress: bool | Progress) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".tmp"))
    try:
        corrupt = _decode_all(archive, tmp, workers, progress)
        val = np.load(tmp / "val_images.npy", mmap_mode="r")
        val_files = [r for r, _ in archive.val]
        key = content_key(archive.classes.wnids, val_files, np.load(tmp / "val_labels.npy"), val)
        meta = {
            "version": CACHE_VERSION,
            "source": str(archive.source),
            "fingerprint": archive.fingerprint,
            "classes": archive.classes.to_json(),
            "files": {"train": [r for r, _ in archive.train], "val": val_files},
            "corrupt": corrupt,
            "built": time.time(),
            VAL_KEY: key,
        }
        del val
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same cache first
            if not (folder / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _decode_all(archive: Archive, out: Path, workers: int, progress) -> list[str]:
    """Decode both splits into `out`; returns the names of images that failed to decode."""
    jobs, total = [], 0
    for name, items in (("train", archive.train), ("val", archive.val)):
        np.save(out / f"{name}_labels.npy", np.array([lab for _, lab in items], np.int16))
        path = out / f"{name}_images.npy"
        np.lib.format.open_memmap(path, "w+", np.uint8, (len(items), SIZE, SIZE, 3)).flush()
        rels = [r for r, _ in items]
        jobs += [
            (str(path), start, rels[start : start + CHUNK]) for start in range(0, len(rels), CHUNK)
        ]
        total += len(rels)
    report, close = reporter(progress, total, "decoding Tiny ImageNet", unit="img")
    report(0)  # the bar shows from the first second, not after the first chunk
    corrupt: list[str] = []
    done = 0
    try:
        if workers <= 1:
            _init_worker(str(archive.source))
            results = ((_decode_chunk(*job), len(job[2])) for job in jobs)
            for bad, n in results:
                corrupt, done = corrupt + bad, done + n
                report(done)
            return corrupt
        ctx = get_context("spawn")  # fork is unsafe once torch has started threads
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(str(archive.source),)
        ) as pool:
            sizes = {pool.submit(_decode_chunk, *job): len(job[2]) for job in jobs}
            for fut in as_completed(sizes):  # in the order they finish: the bar moves steadily
                corrupt, done = corrupt + fut.result(), done + sizes[fut]
                report(done)
        return corrupt
    finally:
        close()


_WORKER_ARCHIVE: Archive | None = None


def _init_worker(source: str) -> None:
    global _WORKER_ARCHIVE
    _WORKER_ARCHIVE = open_archive(source)


def _decode_chunk(path: str, start: int, rels: list[str]) -> list[str]:
    """Decode `rels` into rows `start...` of the memory-mapped array at `path`."""
    assert _WORKER_ARCHIVE is not None
    arr = np.load(path, mmap_mode="r+")
    bad = []
    for i, rel in enumerate(rels):
        try:
            arr[start + i] = decode(_WORKER_ARCHIVE.read(rel))
        except (OSError, UnidentifiedImageError, ValueError, DataError, SyntaxError):
            bad.append(rel)  # left as zeros; counted and named in the cache's metadata
    arr.flush()
    return bad


def decode(data: bytes) -> np.ndarray:
    """One data-set image as `64 x 64 x 3` uint8 RGB (grayscale images are replicated)."""
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        if img.size != (SIZE, SIZE):
            img = img.resize((SIZE, SIZE), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


# ------------------------------------------------------------- content key


def val_key(data: TinyImageNet) -> str:
    """The validation set's content digest (see the module docstring), from the cache's
    metadata; a cache built by an older version gets it computed once (about a second for
    10,000 images) and added to its metadata."""
    meta_path = Path(data.cache) / "meta.json"
    try:
        stamp = meta_path.stat().st_mtime_ns
    except OSError:
        stamp = None
    memo = (str(data.cache), stamp)
    if memo in _VAL_KEYS:
        return _VAL_KEYS[memo]
    meta = None
    if stamp is not None:
        try:
            meta = read_json(meta_path)
        except CheckpointError:
            meta = None
    key = meta.get(VAL_KEY) if isinstance(meta, dict) else None
    if not isinstance(key, str):
        key = content_key(data.classes.wnids, data.val.files, data.val.labels, data.val.images)
        if isinstance(meta, dict) and list(meta.get("classes", {}).get("wnids", [])) == list(
            data.classes.wnids
        ):
            meta[VAL_KEY] = key
            try:
                write_json(meta_path, meta)
                stamp = meta_path.stat().st_mtime_ns
            except OSError:
                pass  # a read-only cache: computed again by the next process
    _VAL_KEYS[(str(data.cache), stamp)] = key
    return key


_VAL_KEYS: dict[tuple[str, int | None], str] = {}


def content_key(wnids, files, labels, images: np.ndarray) -> str:
    """sha256 of the class order, the validation file names, labels and decoded pixels."""
    h = hashlib.sha256(b"tinyviz validation set v1\n")
    h.update("\n".join(wnids).encode() + b"\0")
    h.update("\n".join(files).encode() + b"\0")
    h.update(np.asarray(labels, dtype="<i8").tobytes())
    for start in range(0, len(images), 1000):
        h.update(np.ascontiguousarray(images[start : start + 1000], dtype=np.uint8).tobytes())
    return h.hexdigest()
