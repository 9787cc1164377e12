"""Decode any image a user uploads or photographs, safely, into what the models expect.

Uploads are untrusted bytes from a browser, so decoding follows Pillow's documented traps:
a size cap before anything else; a whitelist of formats, so Pillow never probes every
decoder (EPS, for one, would start Ghostscript); the decompression-bomb pixel limit enforced
before pixels are decoded; truncated files refused rather than half-filled with grey; the
first frame of animations; EXIF orientation applied (phone photos are stored sideways); and
an explicit conversion of every pixel mode to RGB, because `convert("RGB")` clips 16-bit and
float images into garbage and drops alpha onto black. Pillow's global settings are never
touched: Streamlit runs sessions in threads that share them (which is also why the pixel
limit is checked here rather than by turning Pillow's warning into an error with
`warnings.catch_warnings`, which swaps process-wide state and is not thread-safe).

Every failure is an `ImageError` whose message is one line a page can show as it is.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO")
DISPLAY_MAX = 512
NOT_AN_IMAGE = "not an image, or a format we do not read (JPEG, PNG, WEBP, GIF, BMP, TIFF)"
CORRUPT = "image file is truncated or corrupt"
# What a broken file can make Pillow's decoders raise (UnidentifiedImageError is caught first).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


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


def load_upload(
    data: bytes, *, max_bytes: int = 20_000_000, size: int | None = 64
) -> UploadedImage:
    """Decode uploaded bytes; with `size`, the shorter side is resized to it and centre-cropped."""
    if len(data) > max_bytes:
        raise ImageError(f"file is larger than {_human_bytes(max_bytes)}")
    if not data:
        raise ImageError("the file is empty")
    img, fmt, full = _decode(data, size)
    rgb_img = _to_rgb(img)
    original = rgb_img.copy()
    original.thumbnail((DISPLAY_MAX, DISPLAY_MAX), Image.Resampling.LANCZOS)
    if size is not None:
        rgb_img = ImageOps.fit(rgb_img, (size, size), Image.Resampling.LANCZOS)
    rgb = np.array(rgb_img, dtype=np.uint8)
    rgb.flags.writeable = False
    return UploadedImage(rgb, original, fmt, full)


# ---------------------------------------------------------------------- decoding


def _decode(data: bytes, size: int | None) -> tuple[Image.Image, str, tuple[int, int]]:
    """Open, check the pixel count, decode the first frame and stand it upright.

    Returns the image (possibly decoded at a reduced JPEG scale), its format, and its upright
    full-resolution size.
    """
    try:
        img = Image.open(io.BytesIO(data), formats=_available_formats())
        _check_pixels(img.size)  # header only so far: nothing decoded yet
        fmt = img.format or "unknown"
        img.seek(0)
        full = img.size
        if size is not None and fmt in ("JPEG", "MPO"):
            img.draft(None, _draft_size(full, size))  # decode at 1/2..1/8 scale when enough
        img.load()
        _check_pixels(img.size)  # a GIF frame may grow the canvas while loading
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(_too_large(_pixels_in(str(e)))) from None
    except UnidentifiedImageError:
        raise ImageError(NOT_AN_IMAGE) from None
    except _DECODE_ERRORS:
        raise ImageError(CORRUPT) from None
    except MemoryError:
        raise ImageError("image is too large to decode in memory") from None
    return img, fmt, _upright(img, full)


@lru_cache(maxsize=1)
def _available_formats() -> tuple[str, ...]:
    """The whitelist minus formats this Pillow lacks (an unknown name makes `open` raise)."""
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def _check_pixels(size: tuple[int, int]) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise ImageError(_too_large(size[0] * size[1]))


def _too_large(pixels: int | None) -> str:
    limit = Image.MAX_IMAGE_PIXELS
    count = f"{pixels:,} pixels" if pixels else "too many pixels"
    return f"image too large: {count} (limit {limit:,})" if limit else f"image too large: {count}"


def _pixels_in(message: str) -> int | None:
    m = re.search(r"\((\d+) pixels\)", message)
    return int(m.group(1)) if m else None


def _draft_size(full: tuple[int, int], size: int) -> tuple[int, int]:
    """The least size JPEG draft mode may shrink to and still serve the model and display."""
    w, h = full
    scale = max(size / min(w, h), DISPLAY_MAX / max(w, h))
    return max(1, int(np.ceil(w * scale))), max(1, int(np.ceil(h * scale)))


def _upright(img: Image.Image, full: tuple[int, int]) -> tuple[int, int]:
    """Apply EXIF orientation in place and return `full` turned the same way.

    A broken EXIF block leaves the image as stored rather than refusing it.
    """
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        ImageOps.exif_transpose(img, in_place=True)
    except _DECODE_ERRORS:
        return full
    return full[::-1] if orientation in (5, 6, 7, 8) else full


# ------------------------------------------------------------------- pixel modes


def _to_rgb(img: Image.Image) -> Image.Image:
    """Every mode to RGB: alpha composited over white, 16-bit and float scaled to 0..255."""
    try:
        if img.mode in _WIDE_MODES:
            return Image.fromarray(_wide_to_uint8(img)).convert("RGB")
        if img.mode == "LAB":
            return _lab_to_rgb(img)
        if img.mode in _ALPHA_MODES or "transparency" in img.info:
            return _over_white(img.convert("RGBA"))
        return img.convert("RGB")  # 1, L, P, CMYK, YCbCr, HSV, RGB
    except ValueError:
        raise ImageError(f"unsupported colour mode {img.mode}") from None


def _lab_to_rgb(img: Image.Image) -> Image.Image:
    """CIELab (from TIFF): `convert("RGB")` would relabel the channels, not convert them."""
    unsupported = ImageError("unsupported colour mode LAB (no colour management in Pillow)")
    try:
        from PIL import ImageCms
    except ImportError:
        raise unsupported from None
    try:
        return ImageCms.applyTransform(img, _lab_transform())
    except (OSError, ValueError, ImageCms.PyCMSError):
        raise unsupported from None


@lru_cache(maxsize=1)
def _lab_transform():
    from PIL import ImageCms

    lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
    return ImageCms.buildTransform(lab, srgb, "LAB", "RGB")


def _over_white(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _wide_to_uint8(img: Image.Image) -> np.ndarray:
    """16-bit, 32-bit and float grey to uint8, mapping the range the file was written for."""
    a = np.asarray(img).astype(np.float64)
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    lo, hi = _value_range(img.mode, lo, hi)
    scaled = (np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo) - lo) / max(hi - lo, 1e-12)
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def _value_range(mode: str, lo: float, hi: float) -> tuple[float, float]:
    """16-bit files use 0..65535; others 0..1, 0..255 or 0..65535 if they fit, else min..max."""
    if mode.startswith("I;16"):
        return 0.0, 65535.0
    tops = (1.0, 255.0, 65535.0) if mode == "F" else (255.0, 65535.0)
    for top in tops:
        if lo >= 0 and hi <= top:
            return 0.0, top
    return lo, hi


def _human_bytes(n: int) -> str:
    for unit, step in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= step:
            return f"{n / step:g} {unit}"
    return f"{n} bytes"
