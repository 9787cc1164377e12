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

import base64
import io
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO")
DISPLAY_MAX = 512
NOT_AN_IMAGE = "not an image, or a format we do not read (JPEG, PNG, WEBP, GIF, BMP, TIFF)"
CORRUPT = "image file is truncated or corrupt"
# What a broken file can make Pillow's decoders raise (UnidentifiedImageError is caught first).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
                  struct.error, zlib.error)
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


class ImageError(Exception):
    """An upload we cannot use, described in one line for the user."""


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


def load_upload(data: bytes, *, max_bytes: int = 20_000_000,
                size: int | None = 64) -> UploadedImage:
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


def to_model_input(rgb: np.ndarray) -> torch.Tensor:
    """`H x W x 3` (or `N x H x W x 3`) uint8 to a `1 x 3 x H x W` (`N x ...`) float in [0, 1].

    Models normalise internally, so this is only layout and scale.
    """
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim not in (3, 4) or a.shape[-1] != 3:
        raise ValueError(f"expected H x W x 3 uint8, got {a.dtype} {a.shape}")
    batch = a[None] if a.ndim == 3 else a
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2), np.float32) / 255)


def thumbnail_data_uri(rgb: np.ndarray, size: int = 64, fmt: str = "PNG") -> str:
    """A `data:` URI of the image fitted into `size x size`, for chart tooltips."""
    fmt = fmt.upper()
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"fmt must be PNG or JPEG, not {fmt}")
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 85} if fmt == "JPEG" else {"optimize": True}))
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode()}"


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


# ------------------------------------------------------------------------ heatmaps

# 17 evenly spaced samples of matplotlib's "inferno" (linear interpolation between them is
# within 6/255 of the original) and ColorBrewer's RdBu, reversed (blue, white, red).
_ANCHORS = {
    "inferno": ("000004 0b0724 210c4a 3d0965 57106e 71196e 8a226a a32c61 bc3754 d04545 "
                "e35933 f1711f f98c0a fcaa0f f9c932 f2e865 fcffa4"),
    "RdBu_r": "053061 2166ac 4393c3 92c5de d1e5f0 f7f7f7 fddbc7 f4a582 d6604d b2182b 67001f",
}


def heat_to_rgb(heat: np.ndarray, cmap: str | None = None, *, signed: bool = False) -> np.ndarray:
    """A heatmap alone as `H x W x 3` uint8 at its own resolution (see `overlay`)."""
    return _colorize(_normalise(_as_2d(heat), signed), _cmap_name(cmap, signed))


def overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str | None = None,
            *, signed: bool = False, weighted: bool = False) -> np.ndarray:
    """Blend a heatmap of any size over `rgb` (`H x W x 3` uint8), returning the same shape.

    The heatmap is normalised (min..max; or, if `signed`, -max|h|..max|h| so that 0 is the
    white centre of a blue-white-red map), resized bilinearly to the image, coloured with a
    perceptual map ("inferno" by default; other names need matplotlib) and blended with
    weight `alpha`; with `weighted`, with weight `alpha` times the pixel's heat (its distance
    from 0 if `signed`), so that cold pixels keep the image (for sparse maps).
    """
    image = np.asarray(rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected H x W x 3 uint8, got {image.dtype} {image.shape}")
    norm = _normalise(_as_2d(heat), signed)
    h, w = image.shape[:2]
    if norm.shape != (h, w):
        norm = np.asarray(Image.fromarray(norm).resize((w, h), Image.Resampling.BILINEAR))
    color = _colorize(norm, _cmap_name(cmap, signed)).astype(np.float32)
    a = alpha * (np.abs(norm - 0.5) * 2 if signed else norm)[..., None] if weighted else alpha
    blended = (1 - a) * image.astype(np.float32) + a * color
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def _as_2d(heat) -> np.ndarray:
    a = np.asarray(heat, dtype=np.float32)
    a = a.reshape(a.shape[-2:]) if a.ndim > 2 and int(np.prod(a.shape[:-2])) == 1 else a
    if a.ndim != 2:
        raise ValueError(f"expected an H x W heatmap, got shape {a.shape}")
    return a


def _normalise(heat: np.ndarray, signed: bool) -> np.ndarray:
    """To float32 0..1; signed maps put 0 at 0.5."""
    a = np.nan_to_num(heat, nan=0.0, posinf=0.0, neginf=0.0)
    if signed:
        scale = float(np.abs(a).max())
        return (0.5 + 0.5 * a / scale if scale > 0 else np.full_like(a, 0.5)).astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)).astype(np.float32)


def _cmap_name(cmap: str | None, signed: bool) -> str:
    return cmap or ("RdBu_r" if signed else "inferno")


def _colorize(norm: np.ndarray, cmap: str) -> np.ndarray:
    index = np.clip(np.round(norm * 255), 0, 255).astype(np.intp)
    return _lut(cmap)[index]


@lru_cache(maxsize=8)
def _lut(name: str) -> np.ndarray:
    """256 x 3 uint8 colours: built in for the defaults, from matplotlib for other names."""
    if name in _ANCHORS:
        anchors = np.array([list(bytes.fromhex(c)) for c in _ANCHORS[name].split()], float)
        x, t = np.linspace(0, 1, len(anchors)), np.linspace(0, 1, 256)
        table = np.stack([np.interp(t, x, anchors[:, c]) for c in range(3)], axis=1)
    else:
        try:
            import matplotlib
            table = matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255
        except ImportError:
            raise ValueError(f"colormap {name!r} needs matplotlib; built in: "
                             f"{', '.join(_ANCHORS)}") from None
        except KeyError:
            raise ValueError(f"unknown colormap {name!r}") from None
    lut = np.round(table).astype(np.uint8)
    lut.flags.writeable = False
    return lut
