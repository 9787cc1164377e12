"""The one view of a data set on disk, whatever its form: Tiny ImageNet's zip or folder
(`archive`), or the user's own class folders (`imagefolder`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Classes:
    """The class order with names: Tiny ImageNet's `wnids.txt` with names from `words.txt`,
    or an image folder's class folders (the folder name is the id)."""

    wnids: tuple[str, ...]
    names: tuple[str, ...]  # first name of each synset: short enough for a label
    full_names: tuple[str, ...]  # every name, for hover text

    def __len__(self) -> int:
        return len(self.wnids)

    def to_json(self) -> dict:
        return {
            "wnids": list(self.wnids),
            "names": list(self.names),
            "full_names": list(self.full_names),
        }

    @classmethod
    def from_json(cls, obj: dict) -> Classes:
        return cls(tuple(obj["wnids"]), tuple(obj["names"]), tuple(obj["full_names"]))


@dataclass(frozen=True)
class Archive:
    """One opened data set: where it is, its classes and its labelled items.

    Items are paths relative to the data set's root folder with their class index; `read`
    returns an item's bytes whichever form the data set has on disk. `watched` (folders
    only) names the folders and files, relative to `source`, whose stat tells whether the
    item list is still what was read; `layout` says in words how the items were found.
    """

    source: Path
    kind: str  # "zip" or "folder" (Tiny ImageNet), "images" (class folders)
    classes: Classes
    train: tuple[tuple[str, int], ...]
    val: tuple[tuple[str, int], ...]
    fingerprint: str
    _read: Callable[[str], bytes]
    watched: tuple[str, ...] = ()
    layout: str = ""

    def read(self, item: str) -> bytes:
        return self._read(item)


_NUM = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort `x_2` before `x_10`, as the official files are numbered."""
    return tuple(int(t) if t.isdigit() else t for t in _NUM.split(name))
