"""Read the official Tiny ImageNet download as it comes: the zip itself, or its extracted folder
(any other folder is the user's own class folders: `imagefolder`).

Both give the same view (class list, training and validation items, raw bytes of each image),
so nothing above this module knows which one the user has. Every problem with the input is
a `DataError` whose message is one line naming the problem, because users meet these errors
in a terminal or a page banner, not a traceback.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError
from .imagefolder import is_image_folder, open_image_folder
from .view import Archive, Classes, natural_key

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
DEFAULT_LOCATIONS = (Path("data/tiny-imagenet-200.zip"), Path("data/tiny-imagenet-200"))
LAYOUT_FILES = ("wnids.txt", "words.txt", "val/val_annotations.txt")  # what is read, not listed


def locate(path: str | os.PathLike | None = None) -> Path:
    """Where the data is: an explicit path, else `TINYVIZ_DATA`, else `./data/`."""
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise DataError(f"data path does not exist: {p}")
        return p
    env = os.environ.get("TINYVIZ_DATA")
    if env:
        p = Path(env).expanduser()
        if not p.exists():
            raise DataError(f"TINYVIZ_DATA points to a path that does not exist: {p}")
        return p
    for p in DEFAULT_LOCATIONS:
        if p.exists():
            return p
    raise DataError(
        "no Tiny ImageNet found: pass --data PATH, set TINYVIZ_DATA, "
        "or run `python -m tinyviz download` (looked in ./data/)"
    )


def open_archive(path: str | os.PathLike | None = None) -> Archive:
    """Open the zip or folder at `path` (or the located default) and check its layout: a
    folder without Tiny ImageNet's files is read as class folders (`imagefolder`)."""
    p = locate(path)
    if is_image_folder(p):
        return open_image_folder(p)
    if p.is_dir():
        return _open_folder(p)
    return _open_zip(p)


# ---------------------------------------------------------------------------- zip


def _open_zip(p: Path) -> Archive:
    try:
        zf = zipfile.ZipFile(p)
    except zipfile.BadZipFile as e:
        raise DataError(f"{p} is not a complete zip file (truncated or corrupt): {e}") from None
    except OSError as e:
        raise DataError(f"cannot read {p}: {e.strerror or e}") from None
    infos = zf.infolist()
    root = _zip_root(p, [i.filename for i in infos])
    members = {i.filename[len(root) :]: i for i in infos if i.filename.startswith(root)}

    def read(rel: str) -> bytes:
        try:
            return zf.read(members[rel])
        except KeyError:
            raise DataError(f"{rel} is not in {p}") from None
        except (zipfile.BadZipFile, EOFError, OSError) as e:
            raise DataError(f"{p} is truncated or corrupt at {rel}: {e}") from None

    def text(rel: str) -> str:
        if rel not in members:
            raise DataError(f"not a Tiny ImageNet layout: {rel} missing in {p}")
        return read(rel).decode("utf-8", errors="replace")

    digest = hashlib.sha1()
    for name in sorted(members):
        i = members[name]
        digest.update(f"{name}\0{i.CRC}\0{i.file_size}\n".encode())
    return _build(p, "zip", text, set(members), digest.hexdigest(), read)


def _zip_root(p: Path, names: list[str]) -> str:
    """The prefix inside the zip that holds `wnids.txt` (usually `tiny-imagenet-200/`)."""
    roots = [n[: -len("wnids.txt")] for n in names if n.endswith("wnids.txt")]
    if not roots:
        raise DataError(f"not a Tiny ImageNet layout: wnids.txt missing in {p}")
    return min(roots, key=len)


# ------------------------------------------------------------------------- folder


def _open_folder(p: Path) -> Archive:
    root = p if (p / "wnids.txt").exists() else p / "tiny-imagenet-200"
    if not (root / "wnids.txt").exists():
        raise DataError(f"not a Tiny ImageNet layout: wnids.txt missing in {p}")
    files: set[str] = set()
    watched = list(LAYOUT_FILES)
    digest = hashlib.sha1()
    for dirpath, _, filenames in os.walk(root):
        watched.append(os.path.relpath(dirpath, root).replace(os.sep, "/"))
        for f in filenames:
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            files.add(rel)
    for rel in sorted(files):
        st = os.stat(root / rel)
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())

    def read(rel: str) -> bytes:
        try:
            return (root / rel).read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {root / rel}: {e.strerror or e}") from None

    def text(rel: str) -> str:
        if rel not in files:
            raise DataError(f"not a Tiny ImageNet layout: {rel} missing in {root}")
        return read(rel).decode("utf-8", errors="replace")

    return _build(root, "folder", text, files, digest.hexdigest(), read, tuple(watched))


# ------------------------------------------------------------------------- layout


def _build(source, kind, text, files: set[str], fingerprint: str, read, watched=()) -> Archive:
    classes = _classes(text)
    index = {w: i for i, w in enumerate(classes.wnids)}
    return Archive(
        source=Path(source),
        kind=kind,
        classes=classes,
        train=_train_items(files, classes.wnids, source),
        val=_val_items(text("val/val_annotations.txt"), index, files, source),
        fingerprint=fingerprint,
        _read=read,
        watched=watched,
        layout=f"Tiny ImageNet's official layout ({kind})",
    )


def _classes(text: Callable[[str], str]) -> Classes:
    wnids = tuple(line.strip() for line in text("wnids.txt").splitlines() if line.strip())
    if not wnids:
        raise DataError("not a Tiny ImageNet layout: wnids.txt is empty")
    words = {}
    for line in text("words.txt").splitlines():
        wnid, _, names = line.partition("\t")
        words[wnid.strip()] = names.strip()
    full = tuple(words.get(w, w) for w in wnids)
    first = tuple(n.split(",")[0].strip() or w for n, w in zip(full, wnids, strict=True))
    return Classes(wnids, first, full)


def _is_image(rel: str) -> bool:
    return rel.lower().endswith((".jpeg", ".jpg", ".png"))


def _train_items(files: set[str], wnids: tuple[str, ...], source) -> tuple:
    by_class: dict[str, list[str]] = {w: [] for w in wnids}
    for rel in files:
        parts = rel.split("/")
        if (
            len(parts) == 4
            and parts[0] == "train"
            and parts[2] == "images"
            and parts[1] in by_class
            and _is_image(rel)
        ):
            by_class[parts[1]].append(rel)
    items = []
    for label, w in enumerate(wnids):
        if not by_class[w]:
            raise DataError(
                f"not a Tiny ImageNet layout: train/{w}/images/ missing or empty in {source}"
            )
        items.extend((rel, label) for rel in sorted(by_class[w], key=natural_key))
    return tuple(items)


def _val_items(annotations: str, index: dict[str, int], files: set[str], source) -> tuple:
    items = []
    for n, line in enumerate(annotations.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in index:
            raise DataError(f"val/val_annotations.txt line {n} names no known class: {line[:60]}")
        rel = f"val/images/{fields[0].strip()}"
        if rel not in files:
            raise DataError(f"not a Tiny ImageNet layout: {rel} missing in {source}")
        items.append((rel, index[fields[1].strip()]))
    if not items:
        raise DataError("not a Tiny ImageNet layout: val/val_annotations.txt is empty")
    items.sort(key=lambda it: natural_key(it[0]))
    return tuple(items)
