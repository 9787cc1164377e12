"""Decode the data set once into uint8 arrays on disk, memory-mapped ever after.

Decoding 110,000 JPEGs every epoch is the classic bottleneck of Tiny ImageNet projects. We
decode once, in parallel over all cores (a set of a few hundred images in this process), into
`N x S x S x 3` uint8 `.npy` files under `TINYVIZ_CACHE` (default `~/.cache/tinyviz`);
training and analysis then read arrays. `S` is the size chosen when the cache is built
(`SIZE`, 64, by default: Tiny ImageNet's own; 32 suits CIFAR-sized images, more suits
transfer learning), and a data set remembers the size it was last built at, so later
commands need not repeat it.
The cache folder is keyed by the archive's fingerprint and the size, so a changed archive is
decoded anew, and it is written to `<folder>.partial/` and renamed when complete, so nothing
half-built is ever opened. Reopening never reads the archive: a zip is known by its size and
mtime, a folder by the mtimes of the folders its file list came from (`Archive.watched`).

A decode is a `runtime.tasks.Task` (`decode_task`): one process at a time decodes a data set
at a size, whoever asks (the command line, a page's script run, or a background process a
page started for a large data set, `start_decode`), and the others wait for it and open
what it built; its progress (images, and the time left at the measured speed) is in the
task's progress file for every page to show. A killed decode resumes: the chunks already
decoded into `<folder>.partial/` are kept (`chunks.json`), and a partial build nobody
resumes is removed after `PARTIAL_HOURS`.

`val_key` is a digest of what the validation set IS (class order, file names, labels and the
decoded pixels), stored in the cache's metadata: results computed on the validation set (a
run's shipped analysis) are keyed by it, so they hold for any copy of the same data set, zip
or folder, wherever it lies, and for no other.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import threading
import time
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import CheckpointError, DataError
from ..io import read_json, write_json
from ..runtime.tasks import Task
from .archive import Archive, Classes, _zip_root, locate, open_archive
from .imagefolder import FORMATS, is_image_folder
from .progress import Progress, reporter

SIZE = 64
MIN_SIZE, MAX_SIZE = 8, 512
CACHE_VERSION = 1
CHUNK = 500  # images per decoding task: small enough that progress moves every second or so
SMALL_BYTES = 16 * 2**20  # a zip this small decodes in a second or two: a page may wait for it
SMALL_FILES = 3_000  # a folder of fewer files too
PARTIAL_HOURS = 24.0  # an unfinished decode of another data set is removed after this
# This many images or fewer are decoded in this process: each spawned worker costs about half a
# second of CPU and a second or two of waiting to start (imports), more than decoding one chunk of
# small images (0.3 ms each at 64 px; a 12-megapixel photo takes about 75 ms).
IN_PROCESS_MAX = CHUNK
VAL_KEY = "val_key"


@dataclass(frozen=True)
class Split:
    """Images (`N x S x S x 3` uint8, memory-mapped), labels and file names of one split."""

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
    kind: str = "zip"  # the `Archive.kind` it was read from
    layout: str = ""  # how its items were found, in words (`Archive.layout`)

    @property
    def size(self) -> int:
        """The side of the decoded square images."""
        return int(self.val.images.shape[1]) if len(self.val.images) else SIZE

    @property
    def tiny_imagenet(self) -> bool:
        """Read from Tiny ImageNet's official layout (its seeds' figures compare with it)."""
        return self.kind in ("zip", "folder")

    def summary(self) -> dict:
        return {
            "classes": len(self.classes),
            "train": len(self.train),
            "val": len(self.val),
            "corrupt": len(self.corrupt),
            "size": self.size,
            "layout": self.layout,
            "source": str(self.source),
            "cache": str(self.cache),
        }


def cache_root() -> Path:
    return Path(os.environ.get("TINYVIZ_CACHE") or Path.home() / ".cache" / "tinyviz")


def load(
    path=None,
    *,
    size: int | None = None,
    remember: bool = False,
    root: Path | None = None,
    workers: int | None = None,
    progress: bool | Progress = True,
) -> TinyImageNet:
    """Open the data set's cache at `size` (default: the size it was last built at, else
    `SIZE`), building it first if the archive is new or changed. A new build, or
    `remember`, makes `size` the data set's default (`tinyviz data --size`)."""
    src = locate(path).resolve()
    root = Path(root) if root else cache_root()
    size = check_size(size) if size else last_size(root, src)
    quick = _quick_key(src, size)
    folder = _lookup(root, quick)
    if folder is None:
        # one decode of a data set at a time, across processes: the others wait, then open it
        with decode_task(src, size, root).working(wait=True) as task:
            folder = _lookup(root, quick)
            if folder is None:
                folder = _decode(src, size, root, quick, workers, _both(progress, task))
                remember = True
    if remember:
        _remember_size(root, src, size)
    return _open(src, folder)


def _decode(src: Path, size: int, root: Path, quick: str, workers, progress) -> Path:
    progress(0, 0)  # reading the archive's index (seconds): the count is not known yet
    workers = workers or os.cpu_count() or 1
    # a large data set's decoders start now, while the list of its images is read (the
    # seconds each worker spends starting Python and opening the zip overlap with it)
    pool = _start_pool(src, size, workers) if workers > 1 and not is_small(src) else None
    try:
        archive = open_archive(src)
        folder = root / _folder_name(archive, size)
        if not (folder / "meta.json").exists():
            _build(archive, folder, size, workers, progress, pool)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    _remember(root, quick, folder, _stamps(archive))
    return folder


def _start_pool(src: Path, size: int, workers: int) -> ProcessPoolExecutor:
    """`workers` decoding processes, started at once (each opens the archive for itself)."""
    src = Path(src)
    kind = "zip" if not src.is_dir() else "images" if is_image_folder(src) else "folder"
    ctx = get_context("spawn")  # fork is unsafe once torch has started threads
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(str(src), kind, size)
    )
    for _ in range(workers):
        pool.submit(int)  # a trivial task: the processes start now, not at the first chunk
    return pool


def decode_task(src: Path, size: int, root: Path | None = None) -> Task:
    """The task that decodes the data set at `src` at `size` (its lock, progress and log in
    `<cache root>/jobs/`)."""
    root = Path(root) if root else cache_root()
    key = hashlib.sha256(_quick_key(Path(src), size).encode()).hexdigest()[:16]
    return Task(root / "jobs", f"decode-{key}")


def is_small(src: Path) -> bool:
    """Whether the data set decodes in a second or two (a page's script run may wait for
    it): a zip of at most `SMALL_BYTES`, a folder of fewer than `SMALL_FILES` files."""
    src = Path(src)
    if not src.is_dir():
        try:
            return src.stat().st_size <= SMALL_BYTES
        except OSError:
            return True  # nothing there: the one-line error comes at once
    seen = 0
    for _, _, names in os.walk(src):
        seen += len(names)
        if seen >= SMALL_FILES:
            return False
    return True


def start_decode(path, size: int | None = None):
    """Make sure the data set at `path` is decoded at `size` (default: its last size) or
    being decoded by a background process (`tinyviz data PATH`), shared by every session
    and the command line: returns the task's state."""
    import sys

    src, root = locate(path).resolve(), cache_root()  # the child's root too (TINYVIZ_CACHE)
    size = check_size(size) if size else last_size(root, src)
    task = decode_task(src, size, root)
    cmd = [sys.executable, "-m", "tinyviz", "data", str(src), f"--size={size}"]
    return task.start(cmd)


def _both(progress: bool | Progress, task) -> Progress | bool:
    """The caller's progress (a callback, a terminal bar or nothing) and the task's
    progress file, written as images done of a total with the time left."""
    state = {"start": None, "first": None}

    def report(done: int, total: int) -> None:
        if callable(progress):
            progress(done, total)
        now = time.monotonic()
        if not total:
            task(0.0, "reading the data set's list of images", True)
            return
        if state["start"] is None:
            state["start"] = now
            task(0.0, f"decoding {total:,} images", True)
            return
        if done and state["first"] is None:
            state["first"] = (now, done)
        left = None
        if state["first"] is not None and done > state["first"][1]:
            t0, d0 = state["first"]
            left = (total - done) * (now - t0) / (done - d0)
        task(done / total, f"{done:,} of {total:,} images decoded", seconds_left=left)

    if callable(progress) or not progress:
        return report
    return _with_bar(report)


def _with_bar(report: Progress) -> Progress:
    """A terminal bar (stderr) as well as the task's progress."""
    bar = {}

    def both(done: int, total: int) -> None:
        report(done, total)
        if total and "bar" not in bar:
            from tqdm import tqdm

            bar["bar"] = tqdm(total=total, desc="decoding", unit="img")
        if "bar" in bar:
            bar["bar"].update(done - bar["bar"].n)
            if done >= total:
                bar["bar"].close()

    return both


def open_decoded(path=None, *, size: int | None = None, root: Path | None = None):
    """The data set if its cache is built and known (opened before), else None: never reads
    the archive nor decodes, so a background warm-up can call it freely."""
    try:
        src = locate(path).resolve()
    except DataError:
        return None
    root = Path(root) if root else cache_root()
    size = size or last_size(root, src)
    folder = _lookup(root, _quick_key(src, size))
    return None if folder is None else _open(src, folder)


def check_size(size: int) -> int:
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise DataError(f"image size must be {MIN_SIZE} to {MAX_SIZE} pixels, not {size}")
    return int(size)


def _folder_name(archive: Archive, size: int) -> str:
    """`tiny-<fingerprint>-v1` at 64 px (the name caches had before sizes), else with `-sN`;
    an image folder's caches start with `images-`."""
    prefix = "tiny" if archive.kind in ("zip", "folder") else "images"
    at = "" if size == SIZE and prefix == "tiny" else f"-s{size}"
    return f"{prefix}-{archive.fingerprint[:16]}{at}-v{CACHE_VERSION}"


# ------------------------------------------------------------------ fast reopening


def _quick_key(src: Path, size: int = SIZE) -> str:
    """The index's key: for a zip its stat (reopening skips reading 110,000 zip entries);
    for a folder its path, the entry then holding the stat of each watched folder and file
    (`_stamps`), checked on lookup. Adding, removing or renaming an image changes its
    folder's mtime; an image rewritten in place under the same name is not seen (`tinyviz
    data` after touching its folder, or a new cache root, decodes it anew)."""
    at = "" if size == SIZE else f"|s{size}"
    if src.is_dir():
        return f"{src}|folder|v{CACHE_VERSION}|s{size}"
    st = src.stat()
    return f"{src}|{st.st_size}|{st.st_mtime_ns}|v{CACHE_VERSION}{at}"


def _stamps(archive: Archive) -> dict[str, list[int]] | None:
    """`{absolute path: [size, mtime_ns]}` of what a folder's item list was read from."""
    if not archive.watched:
        return None
    return {str(path): _stat(path) for path in (archive.source / rel for rel in archive.watched)}


def _stat(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size if not os.path.isdir(path) else 0, st.st_mtime_ns]


def _index_path(root: Path) -> Path:
    return root / "index.json"


def _read_index(root: Path) -> dict:
    try:
        index = json.loads(_index_path(root).read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _lookup(root: Path, quick: str) -> Path | None:
    entry = _read_index(root).get(quick)
    if isinstance(entry, dict):  # a folder: still as it was when it was listed?
        stamps = entry.get("stamps")
        if not isinstance(stamps, dict) or any(_stat(Path(p)) != v for p, v in stamps.items()):
            return None
        entry = entry.get("folder")
    if not isinstance(entry, str):
        return None
    folder = Path(entry)
    return folder if (folder / "meta.json").exists() else None


def _remember(root: Path, quick: str, folder: Path, stamps: dict | None) -> None:
    index = _read_index(root)
    index[quick] = str(folder) if stamps is None else {"folder": str(folder), "stamps": stamps}
    write_json(_index_path(root), index)


def last_size(root: Path, src: Path) -> int:
    """The size this data set was last opened at (`SIZE` for one never opened)."""
    size = _read_index(root).get(f"size|{src}")
    return size if isinstance(size, int) and MIN_SIZE <= size <= MAX_SIZE else SIZE


def _remember_size(root: Path, src: Path, size: int) -> None:
    if last_size(root, src) != size:
        index = _read_index(root)
        index[f"size|{src}"] = size
        write_json(_index_path(root), index)


OPENED_KEPT = 4  # decoded data sets kept open (`_open`)
_OPENED: OrderedDict[tuple, TinyImageNet] = OrderedDict()
_OPENED_LOCK = threading.Lock()


def _open(src: Path, folder: Path) -> TinyImageNet:
    """The decoded data set in `folder`, one object for every caller while its files are
    unchanged. Every page of the dashboard opens the data set on every script run: read
    anew, its file list alone (110,000 names) was 28 MB of Python objects and 17 ms of the
    server's one interpreter each time, and a crowd's sessions each kept copies of their
    own (bench/crowd.py, traced with tracemalloc). Shared, its arrays are read-only."""
    meta_file = folder / "meta.json"
    now = meta_file.stat()  # a rebuilt cache writes a new meta.json last, by replacing it
    key = (str(src), str(folder), now.st_ino, now.st_mtime_ns, now.st_size)
    with _OPENED_LOCK:
        if key in _OPENED:
            _OPENED.move_to_end(key)
            return _OPENED[key]
    data = _read_decoded(src, folder, json.loads(meta_file.read_text()))
    with _OPENED_LOCK:
        _OPENED[key] = data
        while len(_OPENED) > OPENED_KEPT:
            _OPENED.popitem(last=False)
    return data


def _read_decoded(src: Path, folder: Path, meta: dict) -> TinyImageNet:
    def split(name: str) -> Split:
        images = np.load(folder / f"{name}_images.npy", mmap_mode="r")
        labels = np.load(folder / f"{name}_labels.npy")
        labels.flags.writeable = False  # shared by every caller (`_open`)
        return Split(images, labels, tuple(meta["files"][name]))

    return TinyImageNet(
        src,
        Classes.from_json(meta["classes"]),
        split("train"),
        split("val"),
        tuple(meta["corrupt"]),
        folder,
        kind=meta.get("kind", "zip"),
        layout=meta.get("layout", ""),
    )


# ------------------------------------------------------------------------ building


def _build(
    archive: Archive,
    folder: Path,
    size: int,
    workers: int,
    progress: bool | Progress,
    pool: ProcessPoolExecutor | None = None,
) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(folder.parent, keep=_partial(folder))
    tmp = _partial(folder)
    corrupt = _decode_all(archive, tmp, size, workers, progress, pool)
    files = {"train": [r for r, _ in archive.train], "val": [r for r, _ in archive.val]}
    if archive.kind not in ("zip", "folder"):  # the user's own images: skip what failed
        files = {name: _drop(tmp, name, rels, set(corrupt)) for name, rels in files.items()}
        if not files["train"] or not files["val"]:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(
                f"no {'training' if not files['train'] else 'validation'} image of "
                f"{archive.source} could be decoded ({len(corrupt):,} unreadable files)"
            )
    val = np.load(tmp / "val_images.npy", mmap_mode="r")
    labels = np.load(tmp / "val_labels.npy")
    key = content_key(archive.classes.wnids, files["val"], labels, val)
    meta = {
        "version": CACHE_VERSION,
        "source": str(archive.source),
        "fingerprint": archive.fingerprint,
        "kind": archive.kind,
        "layout": archive.layout,
        "size": size,
        "classes": archive.classes.to_json(),
        "files": files,
        "corrupt": corrupt,
        "built": time.time(),
        VAL_KEY: key,
    }
    del val
    (tmp / PLAN).unlink(missing_ok=True)
    (tmp / DONE).unlink(missing_ok=True)
    (tmp / "meta.json").write_text(json.dumps(meta))
    try:
        os.replace(tmp, folder)
    except OSError:  # built already (by a version without the decode lock): keep that one
        if not (folder / "meta.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


PLAN, DONE = "plan.json", "chunks.json"  # in a partial build: what it is, what is decoded


def _partial(folder: Path) -> Path:
    return folder.with_name(folder.name + ".partial")


def _remove_stale_partials(root: Path, keep: Path) -> None:
    """Unfinished decodes of other data sets (or sizes) left for `PARTIAL_HOURS`: nobody
    resumed them, and each can hold gigabytes. (Ours is resumed, never removed; one that is
    being written is written by the holder of its data set's decode lock, which touches it
    with every chunk.)"""
    try:
        found = [p for p in root.glob("*.partial") if p != keep and p.is_dir()]
    except OSError:
        return
    for path in found:
        try:
            age = time.time() - max(path.stat().st_mtime, (path / DONE).stat().st_mtime)
        except OSError:
            age = time.time() - path.stat().st_mtime if path.exists() else 0.0
        if age > PARTIAL_HOURS * 3600:
            shutil.rmtree(path, ignore_errors=True)


def _drop(out: Path, name: str, rels: list[str], bad: set[str]) -> list[str]:
    """Rewrite one split's arrays without the images that failed to decode."""
    keep = np.array([r not in bad for r in rels], bool)
    if keep.all():
        return rels
    for what in ("images", "labels"):
        path = out / f"{name}_{what}.npy"
        arr = np.load(path, mmap_mode="r")
        kept = np.lib.format.open_memmap(
            out / f"{name}_{what}.kept.npy", "w+", arr.dtype, (int(keep.sum()), *arr.shape[1:])
        )
        rows = np.flatnonzero(keep)
        for start in range(0, len(rows), CHUNK):
            kept[start : start + CHUNK] = arr[rows[start : start + CHUNK]]
        kept.flush()
        del arr, kept
        os.replace(out / f"{name}_{what}.kept.npy", path)
    return [r for r, k in zip(rels, keep, strict=True) if k]


def _decode_all(
    archive: Archive, out: Path, size: int, workers: int, progress, pool=None
) -> list[str]:
    """Decode both splits into `out` (resuming the chunks a killed decode finished there),
    in `pool` when given (else one made here if there is more than a chunk); returns the
    names of images that failed to decode."""
    plan = {
        "fingerprint": archive.fingerprint,
        "size": size,
        "counts": [len(archive.train), len(archive.val)],
        "chunk": CHUNK,
    }
    done_before = _resumable(out, plan)
    jobs, total = [], 0
    for name, items in (("train", archive.train), ("val", archive.val)):
        path = out / f"{name}_images.npy"
        if not done_before:
            np.save(out / f"{name}_labels.npy", np.array([lab for _, lab in items], np.int16))
            np.lib.format.open_memmap(path, "w+", np.uint8, (len(items), size, size, 3)).flush()
        rels = [r for r, _ in items]
        jobs += [
            (str(path), start, rels[start : start + CHUNK]) for start in range(0, len(rels), CHUNK)
        ]
        total += len(rels)
    write_json(out / PLAN, plan)
    what = "Tiny ImageNet" if archive.kind in ("zip", "folder") else archive.source.name
    report, close = reporter(progress, total, f"decoding {what}", unit="img")
    finished = {
        _job_id(job): bad for job in jobs if (bad := done_before.get(_job_id(job))) is not None
    }
    corrupt = [rel for bad in finished.values() for rel in bad]
    done = sum(len(job[2]) for job in jobs if _job_id(job) in finished)
    todo = [job for job in jobs if _job_id(job) not in finished]
    report(done)  # the bar shows from the first second, not after the first chunk

    def finish(job, bad: list[str]) -> None:
        nonlocal done, corrupt
        finished[_job_id(job)] = bad
        write_json(out / DONE, finished)  # a killed decode resumes after this chunk
        corrupt, done = corrupt + bad, done + len(job[2])
        report(done)

    init = (str(archive.source), archive.kind, size)
    try:
        # a chunk's worth (a small folder data set: two splits are two jobs, but few images):
        # starting processes (seconds each, in a server) would cost more than decoding
        if pool is None and (total <= IN_PROCESS_MAX or min(workers, len(todo)) <= 1):
            _init_worker(*init)
            for job in todo:
                finish(job, _decode_chunk(*job))
            return corrupt
        with contextlib.ExitStack() as own:
            if pool is None:
                pool = own.enter_context(_start_pool(archive.source, size, workers))
            futures = {pool.submit(_decode_chunk, *job): job for job in todo}
            for fut in as_completed(futures):  # in the order they finish: the bar moves steadily
                finish(futures[fut], fut.result())
        return corrupt
    finally:
        close()


def _job_id(job) -> str:
    """A chunk's name in `chunks.json`: its split's file and first row."""
    return f"{Path(job[0]).name}:{job[1]}"


def _resumable(out: Path, plan: dict) -> dict[str, list[str]]:
    """The chunks a killed decode of the same plan finished in `out` ({} when there is
    none: `out` is made afresh)."""
    try:
        same = read_json(out / PLAN) == plan
        done = read_json(out / DONE) if same else None
    except CheckpointError:
        done = None
    if isinstance(done, dict) and all(isinstance(v, list) for v in done.values()):
        return {str(k): [str(r) for r in v] for k, v in done.items()}
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return {}


_WORKER: tuple[Callable[[str], bytes], int] | None = None  # (read an item, size)


def _init_worker(source: str, kind: str = "zip", size: int = SIZE) -> None:
    """A worker reads items straight from a folder (no second listing), or from the zip's
    members (its central directory only: no layout check, classes or fingerprint)."""
    global _WORKER
    if kind == "zip":
        zf = zipfile.ZipFile(source)
        prefix = _zip_root(Path(source), zf.namelist())

        def read(rel: str) -> bytes:
            try:
                return zf.read(prefix + rel)
            except (KeyError, zipfile.BadZipFile, zlib.error, EOFError) as e:
                raise DataError(f"{source} is truncated or corrupt at {rel}: {e}") from None
    else:
        base = Path(source) if kind == "images" else _tiny_root(Path(source))
        read = lambda rel: (base / rel).read_bytes()  # noqa: E731
        _register_heif()
    _WORKER = (read, size)


def _tiny_root(p: Path) -> Path:
    return p if (p / "wnids.txt").exists() else p / "tiny-imagenet-200"


def _register_heif() -> None:
    """HEIC photos decode where pillow-heif is installed (this worker's Pillow only)."""
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.register_heif_opener()


def _decode_chunk(path: str, start: int, rels: list[str]) -> list[str]:
    """Decode `rels` into rows `start...` of the memory-mapped array at `path`."""
    assert _WORKER is not None
    read, size = _WORKER
    arr = np.load(path, mmap_mode="r+")
    bad = []
    for i, rel in enumerate(rels):
        try:
            arr[start + i] = decode(read(rel), size)
        except (OSError, UnidentifiedImageError, ValueError, DataError, SyntaxError, EOFError):
            bad.append(rel)  # left as zeros; counted and named in the cache's metadata
        except (Image.DecompressionBombError, MemoryError):
            bad.append(rel)
    arr.flush()
    return bad


MAX_PIXELS = 60_000_000  # a data-set photo larger than this is counted as unreadable
_WIDE = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def decode(data: bytes, size: int = SIZE) -> np.ndarray:
    """One data-set image as `size x size x 3` uint8 RGB, decoded as the upload decoder
    does it (`tinyviz.demo.decode`), in short: only whitelisted formats, the first frame,
    EXIF orientation applied, every mode converted to RGB explicitly (alpha over white,
    16-bit and float grey scaled), then the centre square resized to `size`. An image
    already `size x size` keeps its pixels exactly (Tiny ImageNet's)."""
    with Image.open(io.BytesIO(data), formats=_formats()) as img:
        if img.size[0] * img.size[1] > MAX_PIXELS:
            raise ValueError(f"image too large: {img.size[0]} x {img.size[1]}")
        if img.format == "JPEG" and min(img.size) >= 2 * size:
            img.draft(None, (size, size))  # decode at 1/2..1/8 scale: big photos stay fast
        img = ImageOps.exif_transpose(_rgb(img))
        if img.size != (size, size):
            img = ImageOps.fit(img, (size, size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in _WIDE:
        a = np.asarray(img, np.float64)
        top = a.max() if a.size else 1.0
        a = a / (top if top > 255 else 255) * 255 if top > 255 or img.mode == "F" else a
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _formats() -> tuple[str, ...]:
    """`imagefolder.FORMATS` minus what this Pillow lacks (an unknown name makes open fail)."""
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


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
    if len(_VAL_KEYS) >= _VAL_KEYS_MAX:
        _VAL_KEYS.pop(next(iter(_VAL_KEYS)))  # the oldest: bounded however many sets come
    _VAL_KEYS[(str(data.cache), stamp)] = key
    return key


_VAL_KEYS: dict[tuple[str, int | None], str] = {}
_VAL_KEYS_MAX = 32


def content_key(wnids, files, labels, images: np.ndarray) -> str:
    """sha256 of the class order, the validation file names, labels and decoded pixels."""
    h = hashlib.sha256(b"tinyviz validation set v1\n")
    h.update("\n".join(wnids).encode() + b"\0")
    h.update("\n".join(files).encode() + b"\0")
    h.update(np.asarray(labels, dtype="<i8").tobytes())
    for start in range(0, len(images), 1000):
        h.update(np.ascontiguousarray(images[start : start + 1000], dtype=np.uint8).tobytes())
    return h.hexdigest()
