"""Heat maps as colours, and over images: what the explain pages and Classify draw.

Colour maps are built in (perceptual "inferno", and blue-white-red for signed maps), so a
server needs no matplotlib; any matplotlib name works where it is installed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

# 17 evenly spaced samples of matplotlib's "inferno" (linear interpolation between them is
# within 6/255 of the original) and ColorBrewer's RdBu, reversed (blue, white, red).
_ANCHORS = {
    "inferno": (
        "000004 0b0724 210c4a 3d0965 57106e 71196e 8a226a a32c61 bc3754 d04545 "
        "e35933 f1711f f98c0a fcaa0f f9c932 f2e865 fcffa4"
    ),
    "RdBu_r": "053061 2166ac 4393c3 92c5de d1e5f0 f7f7f7 fddbc7 f4a582 d6604d b2182b 67001f",
}


def heat_to_rgb(heat: np.ndarray, cmap: str | None = None, *, signed: bool = False) -> np.ndarray:
    """A heatmap alone as `H x W x 3` uint8 at its own resolution (see `overlay`)."""
    return _colorize(_normalise(_as_2d(heat), signed), _cmap_name(cmap, signed))


def overlay(
    rgb: np.ndarray,
    heat: np.ndarray,
    alpha: float = 0.5,
    cmap: str | None = None,
    *,
    signed: bool = False,
    weighted: bool = False,
) -> np.ndarray:
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


def colour_stops(
    cmap: str | None = None,
    *,
    signed: bool = False,
    n: int = 17,
    alpha: float = 1.0,
    weighted: bool = False,
) -> list[str]:
    """`n` colours, low heat to high, as "#rrggbb": what `overlay` with these settings
    draws over white (with the defaults, the colour map itself, as `heat_to_rgb` draws it).

    For a page's colour scale: the legend then shows exactly the colours a visitor sees,
    including that a `weighted` overlay leaves cold pixels as they are.
    """
    if n < 2:
        raise ValueError(f"a colour scale needs at least 2 stops, not {n}")
    ramp = np.linspace(-1 if signed else 0, 1, n, dtype=np.float32)[None, :]
    white = np.full((1, n, 3), 255, np.uint8)
    strip = overlay(white, ramp, alpha, cmap, signed=signed, weighted=weighted)[0]
    return ["#" + bytes(c).hex() for c in strip]


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
            raise ValueError(
                f"colormap {name!r} needs matplotlib; built in: {', '.join(_ANCHORS)}"
            ) from None
        except KeyError:
            raise ValueError(f"unknown colormap {name!r}") from None
    lut = np.round(table).astype(np.uint8)
    lut.flags.writeable = False
    return lut
