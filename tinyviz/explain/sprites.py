"""Thumbnails for a map's hover, as sprite sheets: one image file per 2,500 points.

A chart that carries a base64 thumbnail per point grows by about 1 KB per point on every
rerun (3 MB for the 3,000 points the map used to draw), so 10,000 or 100,000 points cannot
carry them. Instead the points are numbered by a `slot`, and the thumbnails live in a few
JPEG sheets of `PER_ROW` x `PER_ROW` tiles of `TILE` px that the browser fetches once, when
the pointer first rests on a point of that sheet: measured on the real validation set,
765 KB per sheet of 2,500 32-px thumbnails (about 300 bytes each, against 1 KB as data URIs).
Slots are given in class order, so the points of one cluster mostly share a sheet.

Sheets are named by a digest of what they show (data set, split, images, tile size), so they
are written once and can be served as static files. Every class subset shows other points,
so its sheets are other files: the folder is kept within `BUDGET` bytes, the least
recently used sheets going first (`build` touches the sheets it hands out).
"""

from __future__ import annotations

import contextlib
import hashlib
import io as pyio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import io

TILE = 32
PER_ROW = 50
PER_SHEET = PER_ROW * PER_ROW
QUALITY = 75
BUDGET = 128 * 2**20  # bytes of sheets kept (a whole data set's 110,000 thumbnails: 33 MB)


@dataclass(frozen=True, eq=False)
class Sprites:
    """Where each point's thumbnail is: `slots[i]` is point i's tile in `files`."""

    files: tuple[str, ...]  # sheet file names, sheet k holds slots k*PER_SHEET ...
    slots: np.ndarray  # (N,) int64
    tile: int = TILE
    per_row: int = PER_ROW

    @property
    def per_sheet(self) -> int:
        return self.per_row * self.per_row


def assign_slots(labels: np.ndarray) -> np.ndarray:
    """A slot per point, consecutive within a class (stable): nearby points share sheets."""
    order = np.argsort(np.asarray(labels), kind="stable")
    slots = np.empty(len(order), np.int64)
    slots[order] = np.arange(len(order))
    return slots


def thumbnails(images_u8: np.ndarray, tile: int = TILE) -> np.ndarray:
    """(N, tile, tile, 3) uint8: each image reduced (box filter: the mean of each block)."""
    a = np.asarray(images_u8, np.uint8)
    if not len(a):
        return np.zeros((0, tile, tile, 3), np.uint8)
    h = a.shape[1]
    if h % tile == 0:  # 64 -> 32: exact block means, fast
        f = h // tile
        return a.reshape(len(a), tile, f, tile, f, 3).mean((2, 4)).round().astype(np.uint8)
    box = Image.Resampling.BOX
    return np.stack([np.asarray(Image.fromarray(x).resize((tile, tile), box)) for x in a])


def sheet(tiles: np.ndarray, per_row: int = PER_ROW) -> np.ndarray:
    """Tiles (n <= per_row**2, t, t, 3) on one (per_row * t) square image, row by row."""
    n, t = len(tiles), tiles.shape[1]
    if n > per_row * per_row:
        raise ValueError(f"{n} tiles do not fit a sheet of {per_row} x {per_row}")
    canvas = np.full((per_row * per_row, t, t, 3), 255, np.uint8)
    canvas[:n] = tiles
    rows = -(-n // per_row) or 1
    grid = canvas[: rows * per_row].reshape(rows, per_row, t, t, 3)
    return grid.transpose(0, 2, 1, 3, 4).reshape(rows * t, per_row * t, 3)


def build(
    images_u8: np.ndarray,
    indices: np.ndarray,
    labels: np.ndarray,
    folder: Path,
    tag: str,
    *,
    tile: int = TILE,
    per_row: int = PER_ROW,
) -> Sprites:
    """The sheets of images `indices` (of `images_u8`), written to `folder` unless there.

    `tag` names what the images are (data set and split): with a digest of the indices it
    makes the file names, so the same points always map to the same files.
    """
    slots, by_slot = _slot_order(indices, labels)
    per = per_row * per_row
    files, written = [], False
    for k, name in enumerate(_names(by_slot, tag, tile, per_row)):
        path = Path(folder) / name
        if path.exists():
            with contextlib.suppress(OSError):
                path.touch()  # used now: the last to go
        else:
            chunk = by_slot[k * per : (k + 1) * per]
            tiles = thumbnails(np.asarray(images_u8[np.sort(chunk)]), tile)
            tiles = tiles[np.argsort(np.argsort(chunk))]  # back to slot order
            buf = pyio.BytesIO()
            Image.fromarray(sheet(tiles, per_row)).save(buf, "JPEG", quality=QUALITY)
            io.write_bytes(path, buf.getvalue())
            written = True
        files.append(name)
    if written:
        io.keep_within(Path(folder), BUDGET, keep=set(files), pattern="*.jpg")
    return Sprites(tuple(files), slots, tile, per_row)


def _slot_order(indices, labels) -> tuple[np.ndarray, np.ndarray]:
    """Each image's slot on the sheets (`assign_slots`) and the images in slot order: what
    `build` draws and `stored` looks for alike."""
    indices = np.asarray(indices, np.int64)
    slots = assign_slots(np.asarray(labels)[: len(indices)])
    return slots, indices[np.argsort(slots)]


def _names(by_slot: np.ndarray, tag: str, tile: int, per_row: int) -> list[str]:
    """The sheets' file names: the tag and a digest of the images in slot order."""
    digest = hashlib.sha1(f"{tag}|{tile}|{per_row}|".encode() + by_slot.tobytes()).hexdigest()
    return [f"{digest[:16]}-{k}.jpg" for k in range(max(1, -(-len(by_slot) // per_row**2)))]


def stored(
    indices: np.ndarray,
    labels: np.ndarray,
    folder: Path,
    tag: str,
    *,
    tile: int = TILE,
    per_row: int = PER_ROW,
) -> bool:
    """Whether `build` would find every sheet of these images written already (it then
    only touches them): what a page's estimate of drawing them needs to know."""
    _, by_slot = _slot_order(indices, labels)
    return all((Path(folder) / name).exists() for name in _names(by_slot, tag, tile, per_row))
