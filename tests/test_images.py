"""Uploads (`tinyviz.demo.images`): every mode and format we accept, everything we refuse;
and heat maps (`tinyviz.demo.heatmaps`)."""

from __future__ import annotations

import base64
import contextlib
import io
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from tinyviz.data.batches import to_model_input
from tinyviz.demo import sandbox
from tinyviz.demo.heatmaps import heat_to_rgb, overlay
from tinyviz.demo.images import (
    CORRUPT,
    NOT_AN_IMAGE,
    ImageError,
    UploadedImage,
    from_reply,
    load_upload,
)
from tinyviz.explain.embed import thumbnail_data_uri

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="module")
def patient_pool():
    """The real decoder pool, with a deadline a loaded test machine cannot reach: these
    tests judge pixels and messages; the deadline is tested in test_hostile_uploads.py."""
    old = sandbox.set_pool(sandbox.Pool(seconds=120))
    yield
    sandbox.set_pool(old).close()


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(w: int = 80, h: int = 60) -> Image.Image:
    return Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8))


def solid(colour, size=(48, 32)) -> Image.Image:
    return Image.new("RGB", size, colour)


def assert_model_ready(up: UploadedImage, size: int = 64) -> None:
    assert isinstance(up, UploadedImage)
    assert up.rgb.shape == (size, size, 3) and up.rgb.dtype == np.uint8
    assert up.original.mode == "RGB" and max(up.original.size) <= 512


def near(pixel, colour, tol: int = 12) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(colour, int)) <= tol))


# ------------------------------------------------------------------ modes and formats


def _palette_with_transparency() -> bytes:
    img = Image.new("P", (40, 30), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 20, 30))
    return encode(img, "PNG", transparency=0)  # left half blue, right half (red) transparent


def _pa() -> bytes:
    img = Image.new("PA", (40, 30))
    img.putpalette([0, 0, 255] * 256)
    img.putalpha(128)
    return encode(img, "TIFF")


MODE_CASES = {
    "1": lambda: encode(noise().convert("1"), "PNG"),
    "L": lambda: encode(noise().convert("L"), "PNG"),
    "LA": lambda: encode(noise().convert("LA"), "PNG"),
    "P": lambda: encode(noise().convert("P"), "PNG"),
    "P-transparency": _palette_with_transparency,
    "PA": _pa,
    "RGB": lambda: encode(noise(), "PNG"),
    "RGBA": lambda: encode(noise().convert("RGBA"), "PNG"),
    "CMYK-JPEG": lambda: encode(noise().convert("CMYK"), "JPEG"),
    "CMYK-TIFF": lambda: encode(noise().convert("CMYK"), "TIFF"),
    "I;16-PNG": lambda: encode(
        Image.fromarray(RNG.integers(0, 65536, (60, 80), dtype=np.uint16)), "PNG"
    ),
    "I-TIFF": lambda: encode(
        Image.fromarray(RNG.integers(-5000, 100_000, (60, 80), dtype=np.int32)), "TIFF"
    ),
    "F-TIFF": lambda: encode(Image.fromarray(RNG.random((60, 80), dtype=np.float32)), "TIFF"),
    "YCbCr-TIFF": lambda: encode(noise().convert("YCbCr"), "TIFF"),
    "LAB-TIFF": lambda: encode(Image.new("LAB", (40, 30), (255, 128, 128)), "TIFF"),
}

FORMAT_CASES = {
    "JPEG": lambda: encode(noise(), "JPEG"),
    "PNG": lambda: encode(noise(), "PNG"),
    "WEBP": lambda: encode(noise(), "WEBP"),
    "GIF": lambda: encode(noise(), "GIF"),
    "BMP": lambda: encode(noise(), "BMP"),
    "TIFF": lambda: encode(noise(), "TIFF"),
    "MPO": lambda: encode(noise(), "MPO", save_all=True, append_images=[noise()]),
}


@pytest.mark.parametrize("case", sorted(MODE_CASES))
def test_every_mode(case):
    assert_model_ready(load_upload(MODE_CASES[case]()))


@pytest.mark.parametrize("fmt", sorted(FORMAT_CASES))
def test_every_format(fmt):
    up = load_upload(FORMAT_CASES[fmt]())
    assert_model_ready(up)
    assert up.format == fmt and up.original_size == (80, 60)


def test_wide_modes_are_scaled_not_clipped():
    ramp16 = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    up = load_upload(encode(Image.fromarray(ramp16), "PNG"))
    np.testing.assert_allclose(up.rgb[32, :, 0], ramp16[0] / 257, atol=3)
    floats = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    up = load_upload(encode(Image.fromarray(floats), "TIFF"))
    np.testing.assert_allclose(up.rgb[32, :, 1], floats[0] * 255, atol=3)
    big = np.tile(np.linspace(-1e6, 1e6, 64).astype(np.int32), (64, 1))  # own min..max
    up = load_upload(encode(Image.fromarray(big), "TIFF"))
    assert up.rgb[32, 0, 0] < 5 and up.rgb[32, -1, 0] > 250 and 100 < up.rgb[32, 32, 0] < 155


def test_alpha_is_composited_over_white():
    clear = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    assert near(load_upload(encode(clear, "PNG")).rgb[32, 32], (255, 255, 255), 0)
    half = Image.new("LA", (40, 30), (0, 128))
    assert near(load_upload(encode(half, "PNG")).rgb[32, 32], (127, 127, 127), 2)
    up = load_upload(_palette_with_transparency(), size=None)
    assert near(up.rgb[15, 5], (0, 0, 255), 0) and near(up.rgb[15, 35], (255, 255, 255), 0)


def test_colours_survive_conversions():
    cyan = Image.new("CMYK", (40, 30), (255, 0, 0, 0))
    assert near(load_upload(encode(cyan, "TIFF")).rgb[5, 5], (0, 255, 255), 2)
    lab_red = Image.new("LAB", (40, 30), (138, 209, 198))  # sRGB (255, 0, 0) in Pillow's LAB
    assert near(load_upload(encode(lab_red, "TIFF")).rgb[5, 5], (255, 0, 0), 8)
    ycc = solid((0, 200, 0)).convert("YCbCr")
    assert near(load_upload(encode(ycc, "TIFF")).rgb[5, 5], (0, 200, 0), 4)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_first_frame(fmt):
    frames = [solid((255, 0, 0)), solid((0, 0, 255))]
    data = encode(
        frames[0],
        fmt,
        save_all=True,
        append_images=frames[1:],
        duration=100,
        loop=0,
        **({"lossless": True} if fmt == "WEBP" else {}),
    )
    with Image.open(io.BytesIO(data)) as check:
        assert getattr(check, "n_frames", 1) == 2
    assert near(load_upload(data).rgb[32, 32], (255, 0, 0), 4)


def test_exif_orientation_is_applied():
    img = solid((0, 128, 0), (40, 20))
    img.paste((255, 0, 0), (0, 0, 8, 8))  # a red marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = encode(img, "JPEG", exif=exif, quality=95)
    up = load_upload(data, size=None)
    assert up.rgb.shape == (40, 20, 3) and up.original_size == (20, 40)
    assert near(up.rgb[3, 16], (255, 0, 0), 40)  # now top-right
    assert near(up.rgb[3, 3], (0, 128, 0), 40) and near(up.rgb[36, 16], (0, 128, 0), 40)
    assert up.original.size == (20, 40)
    assert_model_ready(load_upload(data))


def test_resize_is_shorter_side_then_centre_crop():
    img = Image.new("RGB", (200, 100), (0, 255, 0))
    img.paste((255, 0, 0), (0, 0, 50, 100))
    img.paste((0, 0, 255), (150, 0, 200, 100))
    up = load_upload(encode(img, "PNG"))
    assert up.rgb.shape == (64, 64, 3)
    assert all(near(p, (0, 255, 0), 6) for p in up.rgb[:, 3:61].reshape(-1, 3))
    small = load_upload(encode(solid((9, 9, 9), (20, 10)), "PNG"), size=32)
    assert small.rgb.shape == (32, 32, 3)
    full = load_upload(encode(img, "PNG"), size=None)
    assert full.rgb.shape == (100, 200, 3) and not full.rgb.flags.writeable


def test_big_photo_display_copy_and_reduced_decode():
    data = encode(noise(3000, 2000), "JPEG", quality=90)
    reply, stats = sandbox.pool().decode_with_stats(data, 64)
    up = from_reply(reply)
    assert_model_ready(up)
    assert up.original.size == (512, 341) and up.original_size == (3000, 2000)
    assert stats.peak_bytes < 20_000_000  # decoded at 1/2 scale: 1500 x 1000, not 6 MP
    assert load_upload(data, size=None).rgb.shape == (2000, 3000, 3)


# --------------------------------------------------------------------------- refusals


def _png(width: int, height: int) -> bytes:
    """A real, complete 1-bit PNG of a blank `width x height` image, built without Pillow."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\0" * (1 + (width + 7) // 8)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def test_png_builder_makes_real_pngs():
    with Image.open(io.BytesIO(_png(300, 200))) as img:
        img.load()
        assert img.size == (300, 200) and img.mode == "1"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [10_000, 20_000])  # above the limit, above twice the limit
def test_decompression_bomb_is_refused_before_decoding(side):
    data = _png(side, side)
    assert len(data) < 100_000 and side * side > Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match=rf"image too large: {side * side:,} pixels \(limit"):
        load_upload(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is a text file\n" * 10,
        b"PK\x03\x04" + b"\0" * 100,
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<rect width="10" height="10"/></svg>',
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
    ],
    ids=["empty", "text", "zip", "svg", "pdf", "eps"],
)
def test_non_images_are_refused(data):
    with pytest.raises(ImageError) as e:
        load_upload(data)
    assert str(e.value) in (NOT_AN_IMAGE, "the file is empty")


@pytest.mark.parametrize("fmt", ["PCX", "TGA", "ICO", "PPM", "DIB"])
def test_formats_outside_the_whitelist_are_refused(fmt):
    data = encode(noise(32, 32), fmt)
    with Image.open(io.BytesIO(data)) as img:  # Pillow itself would read it
        img.load()
    with pytest.raises(ImageError, match="not an image"):
        load_upload(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "TIFF"])
def test_truncated_files_are_refused(fmt):
    data = encode(noise(256, 256), fmt)
    with pytest.raises(ImageError, match=CORRUPT):
        load_upload(data[: len(data) * 2 // 3])


def test_size_limit():
    with pytest.raises(ImageError, match=r"^too large \(20,000,001 bytes, at most 20 MB\)$"):
        load_upload(b"\0" * 20_000_001)
    with pytest.raises(ImageError, match=r"^too large \(20.5 MB, at most 20 MB\)$"):
        load_upload(b"\0" * 20_500_000)
    with pytest.raises(ImageError, match=r"^too large \(21 MB, at most 20 MB\)$"):
        load_upload(b"\0" * (20 * 2**20 + 1))  # 20 MiB + 1 byte
    data = encode(noise(), "PNG")
    with pytest.raises(ImageError, match=r"^too large \(.* KB, at most 1 KB\)$"):
        load_upload(data, max_bytes=1000)
    assert_model_ready(load_upload(data, max_bytes=len(data)))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_global_pillow_state_is_untouched():
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    data = encode(noise(256, 256), "JPEG")
    for blob in (data, data[:2000], _png(10_000, 10_000), b"junk", _pa()):
        with contextlib.suppress(ImageError):
            load_upload(blob)
    after = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    assert after == before and before[:2] == (89_478_485, False)


def test_messages_are_one_line():
    for blob in (b"", b"junk", _png(20_000, 20_000), encode(noise(), "JPEG")[:500]):
        with pytest.raises(ImageError) as e:
            load_upload(blob)
        assert "\n" not in str(e.value) and str(e.value)


# --------------------------------------------------------------------- model and views


def test_to_model_input():
    up = load_upload(encode(noise(), "PNG"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a read-only array must not make torch warn
        x = to_model_input(up.rgb)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32 and x.is_contiguous()
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert float(x[0, 2, 10, 20]) == pytest.approx(up.rgb[10, 20, 2] / 255)
    assert to_model_input(np.stack([up.rgb, up.rgb])).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError):
        to_model_input(up.rgb.astype(np.float32))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_thumbnail_data_uri(fmt):
    rgb = np.asarray(noise(128, 96))
    uri = thumbnail_data_uri(rgb, size=48, fmt=fmt)
    prefix = f"data:image/{fmt.lower()};base64,"
    assert uri.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :]))) as img:
        assert img.format == fmt and img.size == (48, 36)


def test_overlay_any_heat_size():
    rgb = np.full((64, 64, 3), 100, np.uint8)
    heat = np.zeros((8, 8), np.float32)
    heat[:4, :4] = 1.0
    out = overlay(rgb, heat)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[5, 5], rgb[5, 5]) and out[5, 5].mean() > rgb[5, 5].mean()
    assert out[60, 60].mean() < out[5, 5].mean()  # low heat is dark in inferno
    assert overlay(rgb, torch.rand(1, 1, 7, 7)).shape == (64, 64, 3)


def test_overlay_signed_centres_zero_on_white():
    rgb = np.zeros((16, 16, 3), np.uint8)
    heat = np.zeros((16, 16), np.float32)
    heat[0, 0], heat[-1, -1] = -2.0, 1.0
    out = overlay(rgb, heat, alpha=1.0, signed=True)
    assert near(out[8, 8], (247, 247, 247), 1)
    assert out[0, 0, 2] > out[0, 0, 0] and out[-1, -1, 0] > out[-1, -1, 2]


def test_heat_to_rgb_and_flat_maps():
    out = heat_to_rgb(np.linspace(0, 1, 100).reshape(10, 10))
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    assert near(out[0, 0], (0, 0, 4), 0) and near(out[-1, -1], (252, 255, 164), 0)
    assert heat_to_rgb(np.full((4, 4), 3.0)).shape == (4, 4, 3)
    assert heat_to_rgb(np.full((4, 4), np.nan), signed=True).shape == (4, 4, 3)
    with pytest.raises(ValueError):
        heat_to_rgb(np.zeros((2, 3, 4)))


def test_builtin_colormaps_match_matplotlib():
    matplotlib = pytest.importorskip("matplotlib")
    t = np.linspace(0, 1, 256)
    for ours, theirs in (("inferno", "inferno"), ("RdBu_r", "RdBu_r")):
        mine = heat_to_rgb(t[None, :], ours)[0].astype(int)
        ref = np.round(matplotlib.colormaps[theirs](t)[:, :3] * 255).astype(int)
        assert np.abs(mine - ref).max() <= 7
    assert heat_to_rgb(t[None, :], "viridis").shape == (1, 256, 3)
    with pytest.raises(ValueError, match="unknown colormap"):
        heat_to_rgb(t[None, :], "no-such-map")
