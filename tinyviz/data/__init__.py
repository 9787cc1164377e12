"""Tiny ImageNet as the user has it (zip or folder), decoded once into memory-mapped arrays."""

from ..errors import DataError
from .archive import URL, Archive, Classes, locate, open_archive
from .cache import Split, TinyImageNet, cache_root, decode, load, open_decoded
from .download import describe_missing, download

__all__ = [
    "URL",
    "Archive",
    "Classes",
    "DataError",
    "Split",
    "TinyImageNet",
    "cache_root",
    "decode",
    "describe_missing",
    "download",
    "load",
    "locate",
    "open_archive",
    "open_decoded",
]
