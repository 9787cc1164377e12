"""Fetch the official Tiny ImageNet zip, so a first run needs nothing but this package.

The download streams into a hidden `.part` file next to its destination and is renamed only
after it has been checked (size, optional SHA-256, and a full layout check with
`open_archive`). A killed or failed download therefore never leaves a half file under the
final name, where `locate` would find it and every later run would trip over it. Every
failure is a one-line `DataError`, like the rest of the data layer.

A download is a `runtime.tasks.Task` (`download_task`, one per destination): one process at
a time fetches into a destination, whoever asks (`tinyviz download`, or the background
process a page starts with `start_download`); the others wait and keep its file. Its
progress (bytes, and the time left at the speed so far) is in the task's progress file.
A broken download is not resumed: its partial file is removed, as above.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from ..errors import DataError
from ..runtime.tasks import Task
from .archive import URL, open_archive
from .cache import cache_root
from .progress import Progress, reporter

FILENAME = "tiny-imagenet-200.zip"
# Size of the official zip as served by cs231n.stanford.edu; no checksum is published. Used
# only to size the progress bar if the server sends no Content-Length.
OFFICIAL_SIZE = 248_100_043
CHUNK = 1 << 20

__all__ = [
    "FILENAME",
    "OFFICIAL_SIZE",
    "URL",
    "describe_missing",
    "download",
    "download_task",
    "start_download",
]


def download(
    url: str = URL,
    dest: str | os.PathLike = Path("data"),
    *,
    progress: bool | Progress = True,
    sha256: str | None = None,
    timeout: float = 30,
    force: bool = False,
) -> Path:
    """Download the data set to `dest/tiny-imagenet-200.zip` and return that path.

    An existing file that opens as a complete data set (and matches `sha256`, if given) is
    returned as it is, unless `force`. `progress` is True for a tqdm bar, False for silence,
    or a callable `(done_bytes, total_bytes)` such as a Streamlit progress bar's updater
    (`total_bytes` is 0 when the server sends no length, except for the official URL).
    """
    final = Path(dest) / FILENAME
    if not force and final.exists() and _is_good(final, sha256):
        return final
    # one download into a destination at a time: another asker waits, then keeps its file
    with download_task(dest).working(wait=True) as task:
        if not force and final.exists() and _is_good(final, sha256):
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{FILENAME}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            with open(tmp, "xb") as out:  # "x": a fresh file with the umask's permissions
                digest = _fetch(url, out, _both(progress, task), timeout)
            task(1.0, "checking the download", True)
            _check_digest(url, digest, sha256)
            _verify(tmp, url)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
    return final


def download_task(dest: str | os.PathLike = Path("data")) -> Task:
    """The task that downloads into `dest` (its lock and progress in `<cache>/jobs/`)."""
    where = str(Path(dest).resolve())
    return Task(
        cache_root() / "jobs", f"download-{hashlib.sha256(where.encode()).hexdigest()[:16]}"
    )


def start_download(dest: str | os.PathLike = Path("data")):
    """Make sure the official zip is downloaded into `dest` or being downloaded by a
    background process (`tinyviz download --dest DEST`): returns the task's state."""
    import sys

    where = Path(dest).resolve()
    cmd = [sys.executable, "-m", "tinyviz", "download", f"--dest={where}"]
    return download_task(where).start(cmd)


def _both(progress: bool | Progress, task) -> Progress | bool:
    """The caller's progress and the task's progress file, in megabytes of the total."""

    def report(done: int, total: int) -> None:
        if callable(progress):
            progress(done, total)
        mb = (
            f"{done / 2**20:,.0f} of {total / 2**20:,.0f} MB"
            if total
            else f"{done / 2**20:,.0f} MB"
        )
        task(done / total if total else 0.0, f"downloading: {mb}")

    if callable(progress) or not progress:
        return report

    from tqdm import tqdm

    bar: dict = {}

    def with_bar(done: int, total: int) -> None:
        report(done, total)
        if "bar" not in bar:
            bar["bar"] = tqdm(
                total=total or None, desc="downloading Tiny ImageNet", unit="B",
                unit_scale=True, unit_divisor=1024,
            )  # fmt: skip
        bar["bar"].update(done - bar["bar"].n)
        if total and done >= total:
            bar["bar"].close()

    return with_bar


def describe_missing() -> str:
    """Plain-text help for a user who has no data yet (a terminal or a page shows it)."""
    return (
        "Tiny ImageNet (about 240 MB) was not found. To get it, either:\n"
        "  1. run `python -m tinyviz download` (saves data/tiny-imagenet-200.zip), or\n"
        f"  2. download {URL} yourself and put it at ./data/{FILENAME}, or\n"
        "  3. set TINYVIZ_DATA to the path of the zip or of its extracted folder.\n"
        "The zip does not need to be extracted."
    )


# ---------------------------------------------------------------------- checking


def _is_good(path: Path, sha256: str | None) -> bool:
    """Whether an existing file can be kept: a complete data set with the expected digest."""
    try:
        _verify(path, str(path))
    except DataError:
        return False
    return sha256 is None or _file_sha256(path) == sha256.strip().lower()


def _verify(path: Path, origin: str) -> None:
    """Open `path` as a data set; the archive goes out of scope here, closing its zip."""
    try:
        archive = open_archive(path)
    except DataError as e:
        raise DataError(f"download of {origin} is not a usable Tiny ImageNet: {e}") from None
    if not (len(archive.classes) and archive.train and archive.val):
        raise DataError(
            f"download of {origin} is not a usable Tiny ImageNet: "
            "no classes, training or validation images"
        )


def _check_digest(url: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected.strip().lower():
        raise DataError(
            f"download of {url} failed: SHA-256 mismatch "
            f"(expected {expected.strip().lower()}, got {actual})"
        )


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------- network


def _fetch(url: str, out: BinaryIO, progress: bool | Progress, timeout: float) -> str:
    """Stream `url` into `out`; returns the SHA-256 of what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": "tinyviz"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _stream(url, response, out, progress)
    except urllib.error.HTTPError as e:
        raise DataError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DataError(f"download of {url} failed: {e.reason}") from None
    except TimeoutError:
        raise DataError(f"download of {url} failed: no data for {timeout:g} s") from None
    except http.client.HTTPException as e:
        raise DataError(f"download of {url} failed: {type(e).__name__} {e}") from None
    except OSError as e:
        raise DataError(f"download of {url} failed: {e.strerror or e}") from None


def _stream(url: str, response, out: BinaryIO, progress: bool | Progress) -> str:
    total = _content_length(response)
    report, close = reporter(
        progress,
        total or (OFFICIAL_SIZE if url == URL else 0),
        "downloading Tiny ImageNet",
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
    )
    h, done = hashlib.sha256(), 0
    try:
        while chunk := response.read(CHUNK):
            _write(out, chunk)
            h.update(chunk)
            done += len(chunk)
            report(done)
    finally:
        close()
    if total and done != total:  # http.client returns b"" on a short body, not an error
        raise DataError(
            f"download of {url} failed: connection closed after {done:,} of {total:,} bytes"
        )
    return h.hexdigest()


def _content_length(response) -> int:
    """The announced body size, or 0 when the server does not say (or says nonsense)."""
    try:
        return max(0, int(response.headers.get("Content-Length", "")))
    except ValueError:
        return 0


def _write(out: BinaryIO, chunk: bytes) -> None:
    """Write, naming the file on failure: a full disk is not a network problem."""
    try:
        out.write(chunk)
    except OSError as e:
        raise DataError(f"cannot write {out.name}: {e.strerror or e}") from None
