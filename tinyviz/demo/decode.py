"""Decode one untrusted image file into the two small pictures tinyviz needs.

This runs inside the decoder worker (`tinyviz.demo.sandbox`), never in the server, and
follows Pillow's documented traps: a whitelist of formats, so Pillow never probes every
decoder (EPS, for one, would start Ghostscript); the decompression-bomb pixel limit
checked on the header; truncated files refused rather than half-filled with grey; the
first frame of animations; EXIF orientation applied (phone photos are stored sideways);
and an explicit conversion of every pixel mode to RGB, because `convert("RGB")` clips
16-bit and float images into garbage and drops alpha onto black.

Pillow's pixel limit is not a memory limit (a 172 KB PNG of 9400 x 9400 at 16 bits is
under it and decodes to 177 MB), so before `load()` the bytes the decoder will allocate
are estimated from the header (size x bytes per pixel of the mode, times what the format's
decoder holds besides), and JPEGs decode at 1/2..1/8 scale when that is enough for the
model's 64 x 64 and a 512 px display copy. After decoding, the image is shrunk band by
band, so no full-size copy is ever made in another mode. A JPEG's scans are counted and
its scan data checked against its claimed size (`probe`); a GIF whose first frame fills a
speck of a huge canvas is refused. What no estimate can catch (a decoder looping on
purpose-built data) the worker's time and memory limits stop.

Every failure is an `ImageError` whose message is one line a page can show as it is.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError
from . import probe

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "HEIF")
DISPLAY_MAX = 512
# What the decoder may allocate for one image, estimated before load(): a 24 MP RGB photo
# as PNG or TIFF fits, a 9400 x 9400 16-bit PNG does not.
DECODE_BUDGET = 100_000_000
# Decoding time grows with the pixels decoded whatever their size (1-bit PNG included). A
# 40 MP limit (after JPEG's reduced decoding) keeps every accepted image well inside the
# worker's deadline (`sandbox.SECONDS`), which leaves room on a loaded machine.
MAX_DECODE_PIXELS = 40_000_000
# Progressive JPEG: libjpeg's script writes 10 scans, mozjpeg's optimiser a few more; each
# scan walks every block, so scans x blocks bounds the decoding time.
MAX_SCANS = 100
MAX_BLOCK_SCANS = 20_000_000
BAND_BYTES = 4_000_000  # the size of one band of the shrinking pass

NOT_AN_IMAGE = "not an image, or a format we do not read (JPEG, PNG, WEBP, GIF, BMP, TIFF, HEIC)"
CORRUPT = "image file is truncated or corrupt"
HEIC_UNSUPPORTED = (
    "HEIC photos are not supported here: on the iPhone, share the photo as JPEG "
    "(Settings > Camera > Formats > Most Compatible takes JPEGs)"
)
OUT_OF_MEMORY = "image needs too much memory to decode"
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
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# What a format's (or codec's) decoder holds besides Pillow's image, in images of the same
# size, as measured: libwebp decodes into its own canvas and hands Pillow copies; libtiff
# may read a whole strip; libheif its own RGB planes (a 12 MP iPhone photo: 103 MB in all);
# Pillow's BMP RLE decoder (Python) builds a bytearray and a copy.
_DECODER_COPIES = {"WEBP": 4, "TIFF": 1, "HEIF": 1, "bmp_rle": 2}
_HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class Decoded:
    """The decoded upload as plain bytes: RGB pixels, row-major, 3 bytes per pixel.

    `rgb` is the model's `size x size` crop (the whole upright image with `size=None`),
    `display` the upright image at most 512 px on its long side; sizes are `(width, height)`.
    """

    format: str
    original_size: tuple[int, int]
    rgb: bytes
    rgb_size: tuple[int, int]
    display: bytes
    display_size: tuple[int, int]


def decode(data: bytes, size: int | None = 64) -> Decoded:
    """Decode `data`; with `size`, the shorter side is resized to it and centre-cropped."""
    if not data:
        raise ImageError("the file is empty")
    img, fmt, full, orientation = _open_and_load(data, size)
    try:
        work = _shrink(img, _factor(img.size, size))
    except MemoryError:
        raise ImageError(OUT_OF_MEMORY) from None
    work = work.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else work
    display = work.copy()
    display.thumbnail((DISPLAY_MAX, DISPLAY_MAX), Image.Resampling.LANCZOS)
    if size is not None:
        work = ImageOps.fit(work, (size, size), Image.Resampling.LANCZOS)
    upright = full[::-1] if orientation in (5, 6, 7, 8) else full
    return Decoded(fmt, upright, work.tobytes(), work.size, display.tobytes(), display.size)


# ---------------------------------------------------------------------- decoding


def _open_and_load(data: bytes, size: int | None) -> tuple[Image.Image, str, tuple[int, int], int]:
    """Open, check what decoding will cost, decode the first frame (reduced if JPEG).

    Returns the image, its format, its full-resolution size as stored, and its EXIF
    orientation (1 when absent or unreadable).
    """
    try:
        layout = _check_structure(data)  # before Pillow walks the file itself
        img = Image.open(io.BytesIO(data), formats=available_formats())
        fmt = img.format or "unknown"
        full = img.size
        _check_pixels(full)  # header only so far: nothing decoded yet
        layout = layout if fmt in ("JPEG", "MPO") else None
        if size is not None and (layout is not None or fmt == "HEIF"):
            img.draft(None, _needed_size(full, size))  # JPEG: 1/2..1/8 scale; HEIC: thumbnail
        _check_gif_frame(img, fmt)
        _check_budget_or_thumbnail(img, fmt, layout, full, size)
        img.load()
        _check_pixels(img.size)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:  # over twice the limit: open() refuses
        raise ImageError(_too_many_pixels(_pixels_in(str(e)))) from None
    except UnidentifiedImageError:
        raise ImageError(HEIC_UNSUPPORTED if _is_heic(data) else NOT_AN_IMAGE) from None
    except MemoryError:
        raise ImageError(OUT_OF_MEMORY) from None
    except _DECODE_ERRORS:
        raise ImageError(CORRUPT) from None
    return img, fmt, full, _orientation(img)


@lru_cache(maxsize=1)
def available_formats() -> tuple[str, ...]:
    """The whitelist minus formats this Pillow lacks (an unknown name makes `open` raise)."""
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def register_plugins() -> None:
    """Let Pillow read HEIC when pillow-heif is installed (the worker calls this once).

    Registering changes Pillow's global table of decoders, so only the worker does it.
    """
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.options.DECODE_THREADS = 2  # HEVC is slow to decode on one core
    pillow_heif.register_heif_opener()
    available_formats.cache_clear()


def _is_heic(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in _HEIC_BRANDS


def _check_pixels(size: tuple[int, int]) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise ImageError(_too_many_pixels(size[0] * size[1]))


def _too_many_pixels(pixels: int | None) -> str:
    count = f"{pixels:,} pixels" if pixels else "too many pixels"
    return f"image too large: {count} (limit {Image.MAX_IMAGE_PIXELS:,})"


def _pixels_in(message: str) -> int | None:
    m = re.search(r"\((\d+) pixels\)", message)
    return int(m.group(1)) if m else None


def _check_structure(data: bytes) -> probe.JpegLayout | None:
    """Refuse floods of segments, chunks or blocks; for a JPEG, check and return its layout."""
    try:
        if data.startswith(b"\xff\xd8"):
            return _check_jpeg(probe.jpeg_layout(data))
        if data.startswith(probe.PNG_SIGNATURE):
            probe.check_png(data)
        elif data.startswith((b"GIF87a", b"GIF89a")):
            probe.check_gif(data)
    except probe.Flood as e:
        raise ImageError(f"file has too many parts ({e}), built to stall a decoder") from None
    return None


def _check_jpeg(layout: probe.JpegLayout | None) -> probe.JpegLayout:
    """Refuse scan floods and headers that claim more pixels than the data can hold."""
    if layout is None:  # no frame header: nothing libjpeg could decode (Pillow would
        raise ImageError(CORRUPT)  # still read 20 MB of fill bytes one at a time)
    if (
        layout.scans > MAX_SCANS
        or layout.progressive
        and layout.scans * layout.padded > MAX_BLOCK_SCANS
    ):
        raise ImageError(
            f"JPEG has {layout.scans:,} scans of {layout.width:,} x {layout.height:,} pixels, "
            "too slow to decode (a photo has about 10)"
        )
    if layout.huffman and layout.scan_bytes < layout.least_scan_bytes:
        raise ImageError(
            f"JPEG holds data for only part of its {layout.width:,} x {layout.height:,} "
            "pixels (truncated, or a forged header)"
        )
    return layout


def _check_budget_or_thumbnail(
    img: Image.Image,
    fmt: str,
    layout: probe.JpegLayout | None,
    full: tuple[int, int],
    size: int | None,
) -> None:
    """The budget check; a HEIC photo over it (24 MP iPhones) falls back to its embedded
    thumbnail when that still serves the model (the display copy is then smaller)."""
    try:
        _check_budget(img, fmt, layout)
    except ImageError:
        if fmt != "HEIF" or size is None or not img.draft(None, _needed_size(full, size, 0)):
            raise
        _check_budget(img, fmt, layout)


def _check_budget(img: Image.Image, fmt: str, layout: probe.JpegLayout | None) -> None:
    """Refuse an image whose decoding would allocate more than DECODE_BUDGET bytes, or
    decode more than MAX_DECODE_PIXELS pixels."""
    w, h = img.size
    per_pixel = _BYTES_PER_PIXEL.get(img.mode, 4)  # Pillow stores every other mode in 4 bytes
    codec = img.tile[0][0] if img.tile else ""
    copies = _DECODER_COPIES.get(codec, _DECODER_COPIES.get(fmt, 0))
    need = w * h * per_pixel * (1 + copies)
    need += layout.coefficient_bytes if layout else 0
    if need > DECODE_BUDGET:
        w0, h0 = (layout.width, layout.height) if layout else img.size
        hint = "; share it as JPEG" if fmt == "HEIF" else ""
        raise ImageError(
            f"image too large to decode: {w0:,} x {h0:,} {img.mode} pixels need "
            f"{_human_bytes(need)} (limit {_human_bytes(DECODE_BUDGET)}){hint}"
        )
    if w * h > MAX_DECODE_PIXELS:
        raise ImageError(
            f"image too large to decode: {w:,} x {h:,} pixels "
            f"(limit {MAX_DECODE_PIXELS / 1e6:g} megapixels)"
        )


def _check_gif_frame(img: Image.Image, fmt: str) -> None:
    """A GIF canvas of 88 megapixels around a one-pixel frame is a bomb, not a picture."""
    if fmt != "GIF" or not img.tile:
        return
    x0, y0, x1, y1 = img.tile[0][1]
    canvas = img.size[0] * img.size[1]
    if canvas > 4_000_000 and (x1 - x0) * (y1 - y0) * 16 < canvas:
        raise ImageError(
            f"GIF's first frame ({x1 - x0:,} x {y1 - y0:,}) fills a speck of its "
            f"{img.size[0]:,} x {img.size[1]:,} canvas"
        )


def _needed_size(full: tuple[int, int], size: int, display: int = DISPLAY_MAX) -> tuple[int, int]:
    """The least size that still serves the model (`size` short side) and the display."""
    w, h = full
    scale = min(1.0, max(size / min(w, h), display / max(w, h)))
    return max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))


def _factor(shape: tuple[int, int], size: int | None) -> int:
    """The integer box-shrink factor that keeps at least `_needed_size`."""
    if size is None:
        return 1
    w, h = shape
    return max(1, min(w // _needed_size(shape, size)[0], h // _needed_size(shape, size)[1]))


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation; a broken EXIF block leaves the image as stored."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) else 1


# ------------------------------------------------------------------- shrinking


def _shrink(img: Image.Image, factor: int) -> Image.Image:
    """RGB at 1/`factor` of the size, made band by band: no other full-size copy exists.

    Each band is converted to RGB (or, for 16-bit, 32-bit and float grey, to I or F, whose
    range is mapped once the whole image is small) and box-averaged; compositing alpha
    over white before averaging gives what averaging premultiplied colours would.
    """
    wide = img.mode in _WIDE_MODES
    out_mode = ("F" if img.mode == "F" else "I") if wide else "RGB"
    w, h = img.size
    out = Image.new(out_mode, (math.ceil(w / factor), math.ceil(h / factor)))
    rows = max(1, BAND_BYTES // (4 * w * factor)) * factor
    for top in range(0, h, rows):
        band = img.crop((0, top, w, min(h, top + rows)))
        band = band.convert(out_mode) if wide else _to_rgb(band)
        out.paste(band.reduce(factor) if factor > 1 else band, (0, top // factor))
    return Image.fromarray(_wide_to_uint8(out, img.mode)).convert("RGB") if wide else out


def _to_rgb(img: Image.Image) -> Image.Image:
    """Every narrow mode to RGB: alpha composited over white, CIELab colour-managed."""
    try:
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


def _wide_to_uint8(img: Image.Image, mode: str) -> np.ndarray:
    """16-bit, 32-bit and float grey to uint8, mapping the range the file was written for."""
    a = np.asarray(img).astype(np.float64)
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    lo, hi = _value_range(mode, lo, hi)
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
            return f"{n / step:.3g} {unit}"
    return f"{n} bytes"
