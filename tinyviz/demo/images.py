"""Decode any image a user uploads or photographs, safely, into what the models expect.

Uploads are untrusted bytes from a browser. The size is checked here, before anything
else; the decoding itself (`tinyviz.demo.decode`) runs in a worker process with a time
and memory limit (`tinyviz.demo.sandbox`), so a decompression bomb or a file built to
stall a decoder costs a worker that is killed and replaced, never the server. What comes
back is plain pixels. Pillow's global settings are never touched in the server: Streamlit
runs sessions in threads that share them.

Every failure is an `ImageError` whose message is one line a page can show as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from ..errors import ImageError
from . import sandbox
from .decode import CORRUPT, DISPLAY_MAX, FORMATS, HEIC_UNSUPPORTED, NOT_AN_IMAGE

__all__ = [
    "CORRUPT",
    "DISPLAY_MAX",
    "EXTENSIONS",
    "FORMATS",
    "HEIC_UNSUPPORTED",
    "MAX_BYTES",
    "NOT_AN_IMAGE",
    "UPLOAD_TYPES",
    "ImageError",
    "UploadedImage",
    "describe_size",
    "load_upload",
    "prepare",
]

MAX_BYTES = 20_000_000  # what an upload may be (20 MB)
# What the browser may send (`server.maxUploadSize` in .streamlit/config.toml and the
# uploaders' own limit, in MiB): above MAX_BYTES, so that a file a little too large (a
# 20.5 MB photo, 20 MiB + 1 byte) reaches the server and the page says so with its size,
# where the browser's own refusal showed only in the file's chip and the page said nothing.
BROWSER_MAX_MIB = 32
# What the uploaders offer: name endings, and the MIME types phones give HEIC photos. A
# MIME type in the list also makes Streamlit skip its own check of the name, which raises
# an exception (a traceback box) where `load_upload`'s check of the content refuses in one
# line: a name proves nothing.
EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif")
UPLOAD_TYPES = (*EXTENSIONS, "image/heic", "image/heif")


@dataclass(frozen=True, eq=False)
class UploadedImage:
    """A decoded upload: the model's view (`rgb`) and the person's view (`original`).

    `rgb` is read-only `H x W x 3` uint8 (`size x size` unless `load_upload(size=None)`);
    `original` is RGB, upright, at most 512 px on its long side; `original_size` is the
    upright full-resolution `(width, height)` and `format` Pillow's name for the file type.
    """

    rgb: np.ndarray
    original: Image.Image
    format: str
    original_size: tuple[int, int]

    def square(self, size: int = 256) -> np.ndarray:
        """The models' centre crop of the photo, at `size` px for display (overlays)."""
        return np.asarray(ImageOps.fit(self.original, (size, size)))


def load_upload(data: bytes, *, max_bytes: int = MAX_BYTES, size: int | None = 64) -> UploadedImage:
    """Decode uploaded bytes; with `size`, the shorter side is resized to it and centre-cropped.

    Safe to call from any thread; raises ImageError with a one-line reason.
    """
    if len(data) > max_bytes:
        size, limit = describe_size(len(data)), describe_size(max_bytes)
        size = f"{len(data):,} bytes" if size == limit else size  # just over: the exact size
        raise ImageError(f"too large ({size}, at most {limit})")
    if not data:
        raise ImageError("the file is empty")
    return from_reply(sandbox.pool().decode(bytes(data), size))


def prepare() -> None:
    """Start a decoder worker now, in the background (a page with an uploader calls this)."""
    sandbox.pool().warm()


def from_reply(reply: sandbox.Reply) -> UploadedImage:
    """The UploadedImage a worker's reply describes (its pixels are ours: plain bytes)."""
    h = reply.header
    if not h["ok"]:
        raise ImageError(h["message"])
    (rw, rh), (dw, dh) = h["rgb_size"], h["display_size"]
    cut = rw * rh * 3
    rgb = np.frombuffer(reply.payload, np.uint8, cut).reshape(rh, rw, 3)  # read-only
    original = Image.frombytes("RGB", (dw, dh), reply.payload[cut:])
    return UploadedImage(rgb, original, h["format"], tuple(h["original_size"]))


def describe_size(n: int) -> str:
    """`n` bytes the way the upload limit is stated: "20 MB"."""
    for unit, step in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= step:
            return f"{n / step:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"
