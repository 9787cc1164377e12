"""Files on disk: atomic writes, and reads that a tampered folder cannot turn against us.

Writes go to a temporary file in the target's folder, are flushed to disk (fsync) and then
renamed over the target, so a killed process leaves the old file or the new one, never half
of either (timm's saver does the same). A temporary file names its writer's pid; the next
write of the same target removes those whose writer has died, so interrupted writes do not
pile up.

Reads treat every stored file as input from someone else (a run folder can be downloaded):
only regular files (a FIFO would block forever, /dev/zero never ends), optionally only inside
a given folder (a snapshot index entry `../../etc/passwd` is refused), and never more than a
size bound. Nothing here imports torch, so the command line's light commands stay light.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import CheckpointError

MAX_JSON = 32 * 2**20  # config, metrics, evals, indexes: kilobytes in practice
MAX_ARRAY = 2 * 2**30
TMP_SUFFIX = ".tmp"


# ------------------------------------------------------------------- writing


def write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, json.dumps(obj, indent=1, allow_nan=False).encode())


def append_jsonl(path: Path, obj: Any) -> None:
    """Append one line; rewriting the whole file keeps the append atomic too."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    write_bytes(path, old + (json.dumps(obj, allow_nan=False) + "\n").encode())


def write_jsonl(path: Path, rows: list[Any]) -> None:
    write_bytes(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows).encode())


def save_array(path: Path, array: np.ndarray) -> None:
    """`np.save` to `path` atomically, never pickling."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    write_bytes(path, buf.getvalue())


def save_arrays(path: Path, arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """Named arrays as one `.npz` at `path`, atomically, never pickling (compressed
    unless `compress` is False: a scratch file read back soon)."""
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    write_bytes(path, buf.getvalue())


def remove_stale_temporaries(path: Path) -> int:
    """Delete `.NAME.PID.*.tmp` files next to `path` whose writing process has ended."""
    return _remove_dead(Path(path).parent.glob(f".{Path(path).name}.*{TMP_SUFFIX}"))


def remove_stale_in(folder: Path) -> int:
    """Every dead writer's temporary file directly in `folder` (on resume, on a new run)."""
    return _remove_dead(Path(folder).glob(f".*{TMP_SUFFIX}"))


def _remove_dead(temporaries) -> int:
    removed = 0
    try:
        for tmp in list(temporaries):
            if not _writer_alive(tmp.name):
                tmp.unlink(missing_ok=True)
                removed += 1
    except OSError:
        pass
    return removed


def _writer_alive(tmp_name: str) -> bool:
    """`.NAME.PID.RANDOM.tmp`: whether PID still runs (older writers named none: dead)."""
    from .runtime import pids

    parts = tmp_name.rsplit(".", 3)
    pid = parts[-3] if len(parts) == 4 else ""
    if not pid.isdigit():
        return False
    return int(pid) == os.getpid() or pids.alive(int(pid))


def keep_within(folder: Path, budget: int, keep=frozenset(), pattern: str = "*") -> int:
    """Delete the least recently used files of `folder` matching `pattern` (by mtime:
    whoever reads one touches it) until their bytes fit `budget`; names in `keep` stay.
    Returns the bytes left. What a server derives and writes stays bounded this way."""
    try:
        files = [(p.stat(), p) for p in Path(folder).glob(pattern) if p.is_file()]
    except OSError:
        return 0
    total = sum(st.st_size for st, _ in files)
    for st, path in sorted(files, key=lambda f: f[0].st_mtime_ns):
        if total <= budget:
            break
        if path.name in keep:
            continue
        try:
            path.unlink()
        except OSError:
            continue
        total -= st.st_size
    return total


# ------------------------------------------------------------------- reading


def read_bytes(path: Path, *, max_bytes: int, inside: Path | None = None) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, optionally inside folder `inside`."""
    with open_regular(path, max_bytes=max_bytes, inside=inside) as f:
        try:
            return f.read(max_bytes + 1)[:max_bytes]
        except OSError as e:
            raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None


@contextlib.contextmanager
def open_regular(path: Path, *, max_bytes: int, inside: Path | None = None) -> Iterator[BinaryIO]:
    """Open a file for reading if it is a regular file of at most `max_bytes`.

    Opened non-blocking (a FIFO returns at once instead of waiting for a writer) and checked
    with `fstat` on the open descriptor, so what is checked is what is read.
    """
    path = Path(path)
    if inside is not None:
        check_inside(path, inside)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
        os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{path} is not a regular file")
        raise CheckpointError(
            f"{path} is {st.st_size / 2**20:,.1f} MB, more than the "
            f"{max_bytes / 2**20:,.0f} MB such a file may hold"
        )
    with os.fdopen(fd, "rb") as f:
        yield f


def check_inside(path: Path, folder: Path) -> Path:
    """`path` resolved (links followed), refused unless it lies inside `folder`."""
    real, root = Path(path).resolve(), Path(folder).resolve()
    if real != root and root not in real.parents:
        raise CheckpointError(f"{path} points outside {folder}")
    return real


def is_regular_file(path: Path) -> bool:
    """Whether `path` is a regular file (following links), without opening it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def read_json(path: Path, *, max_bytes: int = MAX_JSON, inside: Path | None = None) -> Any:
    data = read_bytes(path, max_bytes=max_bytes, inside=inside)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def read_jsonl(path: Path, *, max_bytes: int = MAX_JSON, inside: Path | None = None) -> list[Any]:
    """The parsed lines of a JSON-lines file ([] when it is missing); a torn line is skipped."""
    if not Path(path).exists():
        return []
    rows = []
    for line in read_bytes(path, max_bytes=max_bytes, inside=inside).splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except (ValueError, RecursionError):
                continue  # a torn last line from an older writer: skip, keep the rest
    return rows


def safetensors_header(path: Path, *, max_bytes: int, inside: Path | None = None) -> dict:
    """The JSON header of a safetensors file (its tensors' names, dtypes, shapes, offsets
    and `__metadata__`), checked against the file's size; no tensor is read."""
    with open_regular(path, max_bytes=max_bytes, inside=inside) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        header = None
        if 0 < n <= min(size - 8, MAX_JSON):
            try:
                header = json.loads(f.read(n))
            except (ValueError, RecursionError):
                header = None
    if not isinstance(header, dict) or not _offsets_fit(header, size - 8 - n):
        raise CheckpointError(f"{path} is not a valid safetensors file")
    return header


def _offsets_fit(header: dict, data_bytes: int) -> bool:
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_bytes
        ):
            return False
    return True


def load_array(path: Path, *, max_bytes: int = MAX_ARRAY, inside: Path | None = None) -> np.ndarray:
    """An `.npy` file, never unpickled."""
    data = read_bytes(path, max_bytes=max_bytes, inside=inside)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"{path} is not a valid .npy file ({e})") from None


# ------------------------------------------------------------------ names shown


# What a name may not show as it is: controls (Cc), format characters such as the
# right-to-left override U+202E that reverses what follows (Cf), private-use (Co),
# surrogates (Cs) and line or paragraph separators (Zl, Zp).
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})
SHOWN_NAME_MAX = 120  # longer names keep their start and their ending


def shown_name(name: object) -> str:
    """A file (or run folder) name as a person may see it: every character that would hide
    or reorder text written as its escape (`\\u202e`), and a very long name cut in the
    middle. The one place every page and message takes a file name from."""
    import unicodedata

    text = "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in HIDDEN_CATEGORIES
        else ch
        for ch in str(name)
    )
    if len(text) > SHOWN_NAME_MAX:
        tail = (SHOWN_NAME_MAX - 1) // 3
        text = text[: SHOWN_NAME_MAX - 1 - tail] + "…" + text[len(text) - tail :]
    return text


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}
_FILE_DIGESTS_MAX = 256  # one per weights file a server has seen: bounded all the same
_DIGEST_GUARD = threading.Lock()


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a regular file of bounded size, every byte read, remembered per
    (path, size, mtime): the content key of whatever is derived from a weights file."""
    try:
        st = Path(path).stat()
    except OSError:
        raise CheckpointError(f"{path} is missing") from None
    stamp = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    with _DIGEST_GUARD:
        if stamp in _FILE_DIGESTS:
            return _FILE_DIGESTS[stamp]
    digest = hashlib.sha256()
    with open_regular(path, max_bytes=MAX_ARRAY) as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    with _DIGEST_GUARD:
        if len(_FILE_DIGESTS) >= _FILE_DIGESTS_MAX:
            _FILE_DIGESTS.pop(next(iter(_FILE_DIGESTS)))
        _FILE_DIGESTS[stamp] = digest.hexdigest()
    return _FILE_DIGESTS[stamp]
