"""Tiny ImageNet as the user has it (zip or folder), or the user's own image folders, decoded
once into memory-mapped arrays."""

from ..errors import DataError
from .archive import URL, Archive, Classes, locate, open_archive
from .cache import SIZE, Split, TinyImageNet, cache_root, check_size, decode, load, open_decoded
from .download import describe_missing, download

__all__ = [
    "SIZE",
    "URL",
    "Archive",
    "Classes",
    "DataError",
    "Split",
    "TinyImageNet",
    "cache_root",
    "check_size",
    "decode",
    "describe_missing",
    "download",
    "load",
    "locate",
    "open_archive",
    "open_decoded",
]
