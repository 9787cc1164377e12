"""A corpus of hostile and odd image files, generated on demand (nothing binary is committed).

Each `Case` is one kind of file a visitor could upload: decompression bombs of every format
and mode, huge canvases, header lies, truncated and garbage files, polyglots, non-images,
EXIF orientations, animations, every colour mode. `judge` says whether an upload was
handled: accepted with sane pixels within the limits, or refused with one line.
Shared by tests/test_hostile_uploads.py and bench/hostile_uploads.py.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from tinyviz.demo import images, sandbox

SECONDS = sandbox.SECONDS  # the goal: decoded or refused within this
MEMORY = 300_000_000  # and at most this beyond the worker's idle size

RED, GREEN, BLUE, WHITE = (220, 20, 30), (20, 160, 40), (30, 40, 200), (255, 255, 255)


@dataclass(frozen=True)
class Case:
    """One kind of upload. `expect`: "accept", "refuse" or "either" (both are fine, as
    long as it is handled); `check` tests an accepted upload's pixels; `match` a refusal's
    message; `slow` marks kinds that take a second or more to make or decode."""

    kind: str
    make: Callable[[], bytes]
    expect: str = "accept"
    check: Callable[[images.UploadedImage], bool] | None = None
    match: str | None = None
    slow: bool = False
    name: str = ""

    @property
    def file_name(self) -> str:
        return self.name or f"{self.kind}.{self.kind.split('-')[0]}"


@dataclass(frozen=True)
class Outcome:
    upload: images.UploadedImage | None
    message: str | None
    stats: sandbox.Stats


def run(data: bytes, pool: sandbox.Pool | None = None) -> Outcome:
    """Decode `data` the way the app does (size check, the shared worker pool), with stats."""
    if len(data) > images.MAX_BYTES or not data:
        try:
            images.load_upload(data)
        except images.ImageError as e:
            return Outcome(None, str(e), sandbox.Stats(0.0, 0.0, 0, False))
    reply, stats = (pool or sandbox.pool()).decode_with_stats(data, 64)
    if isinstance(reply, images.ImageError):
        return Outcome(None, str(reply), stats)
    try:
        return Outcome(images.from_reply(reply), None, stats)
    except images.ImageError as e:
        return Outcome(None, str(e), stats)


def judge(case: Case, out: Outcome, *, cpu: bool = False) -> list[str]:
    """What is wrong with the outcome (nothing: handled). With `cpu`, time is the worker's
    CPU time (steady on a shared machine) instead of the wall clock."""
    problems = []
    spent = out.stats.cpu_seconds if cpu and not out.stats.killed else out.stats.seconds
    if spent > SECONDS + (0.5 if out.stats.killed else 0):  # a kill is at the deadline
        problems.append(f"took {spent:.2f} s")
    if out.stats.peak_bytes > MEMORY:
        problems.append(f"peak {out.stats.peak_bytes / 1e6:.0f} MB")
    if out.upload is not None:
        up = out.upload
        if up.rgb.shape != (64, 64, 3) or up.rgb.dtype != np.uint8 or up.rgb.flags.writeable:
            problems.append(f"model input {up.rgb.shape} {up.rgb.dtype}")
        if up.original.mode != "RGB" or max(up.original.size) > 512:
            problems.append(f"display copy {up.original.mode} {up.original.size}")
        if case.expect == "refuse":
            problems.append("accepted, should be refused")
        elif case.check is not None and not case.check(up):
            problems.append("accepted with wrong pixels")
    else:
        msg = out.message or ""
        if not msg or "\n" in msg or len(msg) > 200 or "Traceback" in msg:
            problems.append(f"refusal is not one line: {msg!r}")
        if case.expect == "accept":
            problems.append(f"refused, should be accepted: {msg}")
        elif case.match and not re.search(case.match, msg):
            problems.append(f"refused for another reason: {msg}")
    return problems


# ------------------------------------------------------------------------ builders


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def solid(colour, size=(80, 60), mode="RGB") -> Image.Image:
    return Image.new("RGB", size, colour).convert(mode)


def centre_is(colour, tol: int = 16) -> Callable[[images.UploadedImage], bool]:
    def check(up: images.UploadedImage) -> bool:
        return bool(np.all(np.abs(up.rgb[32, 32].astype(int) - colour) <= tol))

    return check


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(
    width: int,
    height: int,
    bits: int = 8,
    colour_type: int = 0,
    rows: bytes | None = None,
    before: bytes = b"",
    idat: bytes | None = None,
) -> bytes:
    """A PNG built by hand: blank rows (compressed as they are made) unless given."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
    if idat is None:
        if rows is None:  # blank rows: filter byte 0 and zero samples, all zeros
            idat = deflate_zeros(height * (1 + (width * channels * bits + 7) // 8))
        else:
            idat = zlib.compress(rows, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, 0)
    sig = b"\x89PNG\r\n\x1a\n"
    return sig + _chunk(b"IHDR", ihdr) + before + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def tiff(
    width: int,
    height: int,
    data: bytes,
    *,
    bits: int = 8,
    samples: int = 1,
    photometric: int = 1,
    fmt: int = 1,
    compression: int = 1,
    tiles: tuple[int, int] | None = None,
    count: int | None = None,
    offset: int | None = None,
) -> bytes:
    """A little-endian one-strip (or one-tile) TIFF built by hand, so its tags can lie."""
    head = 8
    tags = {
        256: (4, [width]),
        257: (4, [height]),
        258: (3, [bits] * samples),
        259: (3, [compression]),
        262: (3, [photometric]),
        277: (3, [samples]),
        339: (3, [fmt] * samples),
    }
    where, size = offset if offset is not None else head, count if count is not None else len(data)
    if tiles:
        tags |= {322: (4, [tiles[0]]), 323: (4, [tiles[1]]), 324: (4, [where]), 325: (4, [size])}
    else:
        tags |= {273: (4, [where]), 278: (4, [height]), 279: (4, [size])}
    ifd_at = head + len(data) + (len(data) & 1)
    extra = b""
    entries = []
    extra_at = ifd_at + 2 + 12 * len(tags) + 4
    for tag in sorted(tags):
        kind, values = tags[tag]
        fmt_char = "H" if kind == 3 else "I"
        packed = struct.pack(f"<{len(values)}{fmt_char}", *values)
        if len(packed) <= 4:
            entries.append(struct.pack("<HHI", tag, kind, len(values)) + packed.ljust(4, b"\0"))
        else:
            entries.append(struct.pack("<HHII", tag, kind, len(values), extra_at + len(extra)))
            extra += packed
    body = data + b"\0" * (len(data) & 1)
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", ifd_at) + body + ifd + extra


_STEP = 1 << 20


@cache
def _zero_blocks() -> tuple[bytes, bytes]:
    """The zlib header, and the deflate blocks of 1 MiB of zeros after a full flush (the
    same bytes every time, since a full flush forgets the history)."""
    z = zlib.compressobj(9)
    first = z.compress(bytes(_STEP)) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(bytes(_STEP)) + z.flush(zlib.Z_FULL_FLUSH)
    head = first[: len(first) - len(again)]
    assert first[len(head) :] == again
    return head, again


def deflate_zeros(n: int) -> bytes:
    """A zlib stream of `n` zero bytes, as `zlib.compress` would make, in milliseconds."""
    head, block = _zero_blocks()
    whole, rest = divmod(n, _STEP)
    tail = zlib.compressobj(9, wbits=-15)  # raw deflate: it follows a full flush
    end = tail.compress(bytes(rest)) + tail.flush()
    adler = (n % 65521) << 16 | 1  # Adler-32 of zeros: A stays 1, B counts the bytes
    return head + block * whole + end + struct.pack(">I", adler)


def gif(canvas: tuple[int, int], frame: tuple[int, int], at: tuple[int, int] = (0, 0)) -> bytes:
    """A GIF of one frame (LZW data for one red pixel) on a canvas of any size."""
    screen = struct.pack("<HHBBB", *canvas, 0x80, 0, 0) + b"\xff\x00\x00\x00\x00\xff"
    desc = b"," + struct.pack("<HHHHB", *at, *frame, 0)
    return b"GIF89a" + screen + desc + b"\x02\x02\x44\x01\x00;"


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """`data` (a JPEG) with its frame header claiming another size."""
    out = bytearray(data)
    sof = max(out.find(b"\xff\xc0"), out.find(b"\xff\xc2"))
    struct.pack_into(">HH", out, sof + 5, height, width)
    return bytes(out)


def repeat_last_scan(data: bytes, times: int) -> bytes:
    start, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[start:end] * times + data[end:]


def webp_canvas(data: bytes, width: int, height: int) -> bytes:
    """An extended (VP8X) WebP whose canvas claims `width x height` around `data`'s image."""
    body = data[12:]
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\0\0\0"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    payload = b"WEBP" + vp8x + body
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def with_orientation(o: int) -> bytes:
    img = solid(GREEN, (64, 48))
    img.paste(RED, (0, 0, 16, 16))  # a marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = o
    return encode(img, "JPEG", exif=exif, quality=95)


# where the stored top-left marker must appear once the photo is upright (x, y fractions)
_MARKER_AT = {
    1: (0, 0),
    2: (1, 0),
    3: (1, 1),
    4: (0, 1),
    5: (0, 0),
    6: (1, 0),
    7: (1, 1),
    8: (0, 1),
}


def upright(o: int) -> Callable[[images.UploadedImage], bool]:
    def check(up: images.UploadedImage) -> bool:
        w, h = up.original.size
        if (w, h) != ((48, 64) if o >= 5 else (64, 48)) or up.original_size != (w, h):
            return False
        fx, fy = _MARKER_AT[o]
        x, y = int(fx * (w - 1)), int(fy * (h - 1))
        marker = np.asarray(up.original.getpixel((abs(x - 3), abs(y - 3))), int)
        return bool(np.all(np.abs(marker - RED) < 60))

    return check


def _animated(fmt: str, **kw) -> bytes:
    frames = [solid(RED), solid(BLUE), solid(GREEN)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=80, **kw)


def _many_frames_gif() -> bytes:
    frames = [solid((i % 256, 0, 0), (16, 16)).convert("P") for i in range(500)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)


def _apng_many() -> bytes:
    frames = [solid(RED, (32, 32))] + [solid((0, 0, i % 256), (32, 32)) for i in range(300)]
    return encode(frames[0], "PNG", save_all=True, append_images=frames[1:])


def _png_chunk_flood() -> bytes:
    flood = _chunk(b"ruSt", b"") * 1_000_000  # 12 MB of empty private chunks
    return png(8, 8, before=flood)


def _png_idat_flood() -> bytes:
    ok = encode(solid(RED, (8, 8)), "PNG")
    i = ok.find(b"IDAT") - 4
    return ok[:i] + _chunk(b"IDAT", b"") * 1_000_000 + ok[i:]


def _jpeg_segment_flood() -> bytes:
    ok = encode(solid(RED), "JPEG")
    return ok[:2] + b"\xff\xfe\x00\x02" * 4_000_000 + ok[2:]  # empty comments


def _gif_extension_flood() -> bytes:
    ok = encode(solid(RED, (8, 8)), "GIF")
    header = 13 + 3 * 2 ** ((ok[10] & 7) + 1)
    return ok[:header] + b"\x21\xfe\x00" * 5_000_000 + ok[header:]  # empty comments


def _png_text_bomb() -> bytes:
    body = b"comment\0\0" + deflate_zeros(200_000_000)
    return png(64, 64, before=_chunk(b"zTXt", body))


def _png_iccp_bomb() -> bytes:
    return png(64, 64, before=_chunk(b"iCCP", b"icc\0\0" + deflate_zeros(200_000_000)))


def _png_idat_split() -> bytes:
    """A real 32x32 PNG whose image data comes one byte per IDAT chunk (3,000 chunks)."""
    whole = encode(solid(BLUE, (32, 32)), "PNG", compress_level=0)
    i = whole.find(b"IDAT") - 4
    (n,) = struct.unpack(">I", whole[i : i + 4])
    data = whole[i + 8 : i + 8 + n]
    split = b"".join(_chunk(b"IDAT", data[k : k + 1]) for k in range(len(data)))
    return whole[:i] + split + whole[i + 12 + n :]


def _png16_rgb() -> bytes:
    pixel = b"".join(struct.pack(">H", c * 257) for c in RED)
    return png(80, 60, 16, 2, rows=(b"\0" + pixel * 80) * 60)


def _png_palette_clear() -> bytes:
    img = Image.new("P", (80, 60), 0)
    img.putpalette([*RED, *BLUE])
    return encode(img, "PNG", transparency=0)


def _png_lie() -> bytes:
    rng = np.random.default_rng(1)
    rows = b"".join(b"\0" + rng.integers(0, 256, 400, dtype=np.uint8).tobytes() for _ in range(300))
    return png(9000, 9000, rows=rows)


def _jpeg_header_lie() -> bytes:
    return jpeg_with_size(encode(noise(400, 300), "JPEG", quality=85), 9000, 9000)


def _jpeg_scan_flood(times: int, size=(400, 300)) -> Callable[[], bytes]:
    def make() -> bytes:
        base = encode(solid((120, 60, 30), size), "JPEG", progressive=True)
        return repeat_last_scan(base, times)

    return make


def _jpeg_app_flood() -> bytes:
    base = encode(solid(BLUE), "JPEG")
    app = b"\xff\xe9" + struct.pack(">H", 65535) + b"\0" * 65533
    return base[:2] + app * 300 + base[2:]


def _jpeg_no_tables() -> bytes:
    data = bytearray(encode(solid(BLUE), "JPEG"))
    while (i := data.find(b"\xff\xc4")) >= 0:  # drop every Huffman table
        (n,) = struct.unpack_from(">H", data, i + 2)
        del data[i : i + 2 + n]
    return bytes(data)


def _jpeg_zero_height() -> bytes:
    return jpeg_with_size(encode(solid(BLUE), "JPEG"), 80, 0)


def _big_flat_jpeg() -> bytes:
    return encode(Image.new("L", (9000, 9000), 90), "JPEG", quality=80)


def _big_progressive() -> bytes:
    return encode(Image.new("L", (9000, 9000), 90), "JPEG", progressive=True)


def _mpo() -> bytes:
    return encode(solid(RED), "MPO", save_all=True, append_images=[solid(BLUE)])


def _polyglot_zip() -> bytes:
    zbuf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("payload.html", "<script>alert(1)</script>")
    return encode(solid(RED), "JPEG") + zbuf.getvalue()


def _gif_js_polyglot() -> bytes:
    return b"GIF89a/*" + b"\0" * 10 + b"*/=1;alert(document.domain);//" + b"\0" * 40


def _tiff_float_bomb() -> bytes:
    n = 9000 * 9000 * 4
    return tiff(9000, 9000, deflate_zeros(n), bits=32, fmt=3, compression=8)


def _tiff_lzw_bomb() -> bytes:
    return encode(Image.new("L", (6000, 6000)), "TIFF", compression="tiff_lzw")


def _tiff_tile_bomb() -> bytes:
    return tiff(64, 64, b"\0" * 4096, tiles=(60000, 60000))


def _tiff_lie() -> bytes:
    return tiff(9000, 9000, b"\x80" * 120_000)  # one uncompressed strip, mostly missing


def _tiff_past_end() -> bytes:
    return tiff(64, 64, b"\0" * 64, count=4096, offset=10_000_000)


def _tiff_multipage() -> bytes:
    return encode(solid(RED), "TIFF", save_all=True, append_images=[solid(BLUE)] * 3)


def _tiff_16_big_endian() -> bytes:
    a = np.full((60, 80), 40000, ">u2")
    return encode(Image.frombytes("I;16B", (80, 60), a.tobytes()), "TIFF")


def _bmp_rle_bomb() -> bytes:
    """An RLE8 BMP of 9400 x 9400: 37 runs and an end-of-line per row, 0.7 MB in all."""
    w = h = 9400
    row = b"".join(bytes([min(255, w - x), 0]) for x in range(0, w, 255)) + b"\0\0"
    pixels = row * h + b"\0\1"
    palette = b"\0\0\0\0" * 256
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return head + info + palette + pixels


def _bmp_lie() -> bytes:
    data = bytearray(encode(solid(RED, (40, 30)), "BMP"))
    struct.pack_into("<ii", data, 18, 30000, 30000)
    return bytes(data)


def _bmp_zero() -> bytes:
    data = bytearray(encode(solid(RED, (40, 30)), "BMP"))
    struct.pack_into("<i", data, 18, 0)
    return bytes(data)


def _bmp_top_down() -> bytes:
    data = bytearray(encode(solid(RED, (40, 30)), "BMP"))
    struct.pack_into("<i", data, 22, -30)
    return bytes(data)


def _webp_lie_vp8l() -> bytes:
    data = bytearray(encode(solid(RED), "WEBP", lossless=True))
    i = data.find(b"VP8L") + 9  # after the chunk header and the signature byte
    bits = (16383 - 1) | ((16383 - 1) << 14)  # width-1, height-1: 14 bits each
    struct.pack_into("<I", data, i, bits | (struct.unpack_from("<I", data, i)[0] & ~0xFFFFFFF))
    return bytes(data)


def _heic(img: Image.Image, **kw) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encode(img, "HEIF", quality=90, **kw)


def _heic_turned() -> bytes:
    img = solid(GREEN, (64, 48))
    img.paste(RED, (0, 0, 16, 16))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _heic(img, exif=exif.tobytes())


def _heic_lie() -> bytes:
    data = bytearray(_heic(solid(RED, (64, 64))))
    i = data.find(b"ispe") + 8  # version and flags, then width and height
    struct.pack_into(">II", data, i, 30000, 30000)
    return bytes(data)


def _eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n(x) run\nshowpage\n"


def _svg() -> bytes:
    return (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'width="10" height="10"><image xlink:href="http://example.invalid/x.png"/></svg>'
    )


CASES: tuple[Case, ...] = (
    # ---- decompression bombs: small files, huge once decoded
    Case("png-16bit-grey-9400", lambda: png(9400, 9400, 16), "refuse", match="too large to decode"),
    Case("png-rgb-9000", lambda: png(9000, 9000, 8, 2), "refuse", match="too large to decode"),
    Case("png-rgba16-8000", lambda: png(8000, 8000, 16, 6), "refuse", match="too large"),
    Case("png-1bit-10000", lambda: png(10_000, 10_000, 1), "refuse", match="pixels \\(limit"),
    Case("png-1bit-20000", lambda: png(20_000, 20_000, 1), "refuse", match="pixels \\(limit"),
    Case("png-1bit-9400", lambda: png(9400, 9400, 1), "refuse", match="megapixels"),
    Case(
        "png-palette-9400",
        lambda: png(9400, 9400, 8, 3, before=_chunk(b"PLTE", b"\x10\x20\x30")),
        "refuse",
        match="megapixels",
    ),
    Case("png-grey-6000", lambda: png(6000, 6000), "accept", centre_is((0, 0, 0), 0)),
    Case(  # the largest RGB the budget lets through: 23 MP, 92 MB decoded
        "png-rgb-4800", lambda: png(4800, 4800, 8, 2), "accept", centre_is((0, 0, 0), 0), slow=True
    ),
    Case("tiff-float-9000", _tiff_float_bomb, "refuse", match="too large to decode", slow=True),
    Case("tiff-lzw-grey-6000", _tiff_lzw_bomb, "accept", centre_is((0, 0, 0), 0), slow=True),
    Case(
        "tiff-deflate-grey-9400",
        lambda: tiff(9400, 9400, deflate_zeros(9400 * 9400), compression=8),
        "refuse",
        match="too large to decode",
        slow=True,
    ),
    Case("tiff-tile-60000", _tiff_tile_bomb, "refuse"),
    Case("gif-canvas-9400", lambda: gif((9400, 9400), (1, 1)), "refuse", match="GIF"),
    Case("gif-frame-off-canvas", lambda: gif((64, 64), (1, 1), (60000, 60000)), "either"),
    Case("bmp-rle8-9400", _bmp_rle_bomb, "refuse"),
    Case(
        "webp-vp8x-canvas-16383",
        lambda: webp_canvas(encode(solid(RED), "WEBP"), 16383, 16383),
        "refuse",
    ),
    Case("webp-vp8l-16383", _webp_lie_vp8l, "refuse"),
    Case("heic-ispe-30000", _heic_lie, "refuse"),
    Case(
        "jpeg-progressive-9000", _big_progressive, "refuse", match="too large to decode", slow=True
    ),
    # ---- decoder stalls
    Case("jpeg-scan-repeat-2000", _jpeg_scan_flood(2000), "refuse", match="scans"),
    Case(
        "jpeg-scan-repeat-90-4000x3000", _jpeg_scan_flood(90, (4000, 3000)), "refuse", match="scans"
    ),
    Case("jpeg-scan-repeat-20", _jpeg_scan_flood(20), "accept", centre_is((120, 60, 30))),
    Case("png-chunk-flood", _png_chunk_flood, "refuse", match="too many parts"),
    Case("png-empty-idat-flood", _png_idat_flood, "refuse", match="too many parts"),
    Case("jpeg-segment-flood", _jpeg_segment_flood, "refuse", match="too many parts"),
    Case("jpeg-fill-20mb", lambda: b"\xff\xd8" + b"\xff" * (images.MAX_BYTES - 2), "refuse"),
    Case("gif-extension-flood", _gif_extension_flood, "refuse", match="too many parts"),
    Case("png-ztxt-bomb", _png_text_bomb, "either", slow=True),
    Case("png-iccp-bomb", _png_iccp_bomb, "either", slow=True),
    Case("png-idat-1-byte-chunks", _png_idat_split, "accept", centre_is(BLUE)),
    Case("jpeg-app-flood", _jpeg_app_flood, "accept", centre_is(BLUE)),
    # ---- header lies, truncation, garbage
    Case("jpeg-header-lie-9000", _jpeg_header_lie, "refuse", match="only part"),
    Case("png-header-lie-9000", _png_lie, "refuse"),
    Case("tiff-header-lie-9000", _tiff_lie, "refuse"),
    Case("tiff-strip-past-end", _tiff_past_end, "refuse"),
    Case("bmp-header-lie-30000", _bmp_lie, "refuse"),
    Case("jpeg-truncated", lambda: encode(noise(256, 256), "JPEG")[:9000], "refuse"),
    Case("jpeg-no-eoi", lambda: encode(solid(RED), "JPEG")[:-2], "either"),
    Case("jpeg-no-huffman-tables", _jpeg_no_tables, "either"),
    Case("jpeg-only-soi", lambda: b"\xff\xd8\xff", "refuse"),
    Case("jpeg-soi-then-garbage", lambda: b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40, "refuse"),
    Case("png-truncated", lambda: encode(noise(256, 256), "PNG")[:30000], "refuse"),
    Case("png-no-iend", lambda: encode(solid(RED), "PNG")[:-12], "either"),
    Case(
        "png-bad-crc",
        lambda: encode(solid(RED), "PNG")[:-20] + b"\0\0\0\0" + encode(solid(RED), "PNG")[-16:],
        "either",
    ),
    Case("gif-truncated", lambda: encode(noise(96, 96), "GIF")[:4000], "refuse"),
    Case("gif-no-frame", lambda: gif((64, 64), (1, 1))[:19] + b";", "refuse"),
    Case("webp-truncated", lambda: encode(noise(256, 256), "WEBP")[:3000], "refuse"),
    Case("tiff-truncated", lambda: encode(noise(256, 256), "TIFF")[:60000], "refuse"),
    Case("heic-truncated", lambda: _heic(noise(64, 64))[:1500], "refuse"),
    Case("heic-brand-only", lambda: b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64, "refuse"),
    Case("png-zero-width", lambda: png(0, 10), "refuse"),
    Case("jpeg-zero-height", _jpeg_zero_height, "refuse"),
    Case("bmp-zero-width", _bmp_zero, "refuse"),
    Case("gif-zero-canvas", lambda: gif((0, 0), (0, 0)), "either"),
    # ---- not images (or not ours), whatever the name says
    Case("empty", lambda: b"", "refuse", match="empty", name="empty.png"),
    Case("one-byte", lambda: b"\xff", "refuse", name="one.jpg"),
    Case("text-named-png", lambda: b"hello\n" * 100, "refuse", match="not an image", name="a.png"),
    Case(
        "html-named-jpg", lambda: b"<html><script>alert(1)</script></html>", "refuse", name="a.jpg"
    ),
    Case("svg-external-href", _svg, "refuse", match="not an image", name="a.svg"),
    Case(
        "pdf",
        lambda: b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF",
        "refuse",
    ),
    Case("eps-no-ghostscript", _eps, "refuse", match="not an image", name="a.eps"),
    Case("zip", lambda: b"PK\x03\x04" + b"\0" * 200, "refuse", match="not an image"),
    Case("random-1mb", lambda: np.random.default_rng(5).bytes(1_000_000), "refuse", name="r.jpg"),
    Case("zeros-20mb", lambda: bytes(images.MAX_BYTES), "refuse", name="z.png"),
    Case("over-limit", lambda: bytes(images.MAX_BYTES + 1), "refuse", match="at most 20 MB"),
    Case("avif", lambda: encode(solid(RED), "AVIF"), "refuse", match="not an image"),
    Case("pcx", lambda: encode(solid(RED), "PCX"), "refuse", match="not an image"),
    Case("tga", lambda: encode(solid(RED), "TGA"), "refuse", match="not an image"),
    Case("ico", lambda: encode(solid(RED, (32, 32)), "ICO"), "refuse", match="not an image"),
    Case("qoi", lambda: encode(solid(RED), "QOI"), "refuse", match="not an image"),
    Case("gif-js-polyglot", _gif_js_polyglot, "refuse", name="a.gif"),
    Case("jpeg-zip-polyglot", _polyglot_zip, "accept", centre_is(RED)),
    Case(
        "png-named-jpg", lambda: encode(solid(BLUE), "PNG"), "accept", centre_is(BLUE), name="a.jpg"
    ),
    # ---- ordinary but odd: every format, mode, orientation and animation
    *(
        Case(f"jpeg-exif-orientation-{o}", (lambda o=o: with_orientation(o)), "accept", upright(o))
        for o in range(1, 9)
    ),
    Case(
        "jpeg-broken-exif",
        lambda: encode(solid(RED), "JPEG", exif=b"Exif\0\0II*\0\xff\xff\xff\x7f"),
        "accept",
        centre_is(RED),
    ),
    Case("jpeg-cmyk", lambda: encode(solid(RED, mode="CMYK"), "JPEG"), "accept", centre_is(RED)),
    Case(
        "jpeg-grey",
        lambda: encode(solid((90, 90, 90), mode="L"), "JPEG"),
        "accept",
        centre_is((90, 90, 90)),
    ),
    Case(
        "jpeg-progressive",
        lambda: encode(solid(RED, (2000, 1500)), "JPEG", progressive=True),
        "accept",
        centre_is(RED),
    ),
    Case("jpeg-flat-9000", _big_flat_jpeg, "accept", centre_is((90, 90, 90)), slow=True),
    Case(
        "jpeg-restart-markers",
        lambda: encode(solid(RED), "JPEG", restart_marker_blocks=1),
        "accept",
        centre_is(RED),
    ),
    Case("mpo", _mpo, "accept", centre_is(RED)),
    Case("png-interlaced", lambda: encode(solid(RED), "PNG", interlace=1), "either"),
    Case("png-16bit-rgb", _png16_rgb, "accept", centre_is(RED, 2)),
    Case(
        "png-i16-grey",
        lambda: encode(Image.fromarray(np.full((60, 80), 32896, np.uint16)), "PNG"),
        "accept",
        centre_is((128, 128, 128), 2),
    ),
    Case("png-1bit", lambda: encode(solid(WHITE, mode="1"), "PNG"), "accept", centre_is(WHITE, 0)),
    Case("png-palette-transparent", _png_palette_clear, "accept", centre_is(WHITE, 0)),
    Case(
        "png-la",
        lambda: encode(Image.new("LA", (80, 60), (0, 0)), "PNG"),
        "accept",
        centre_is(WHITE, 0),
    ),
    Case(
        "png-rgba-half",
        lambda: encode(Image.new("RGBA", (80, 60), (0, 0, 0, 128)), "PNG"),
        "accept",
        centre_is((127, 127, 127), 2),
    ),
    Case("apng-300-frames", _apng_many, "accept", centre_is(RED)),
    Case("gif-animated", lambda: _animated("GIF"), "accept", centre_is(RED, 40)),
    Case("gif-500-frames", _many_frames_gif, "accept"),
    Case(
        "gif-6000-full",
        lambda: encode(Image.new("L", (6000, 6000), 200), "GIF"),
        "accept",
        centre_is((200, 200, 200), 2),
        slow=True,
    ),
    Case("webp-lossy", lambda: encode(solid(RED), "WEBP"), "accept", centre_is(RED)),
    Case(
        "webp-lossless-alpha",
        lambda: encode(Image.new("RGBA", (80, 60), (255, 0, 0, 0)), "WEBP", lossless=True),
        "accept",
        centre_is(WHITE, 0),
    ),
    Case("webp-animated", lambda: _animated("WEBP", lossless=True), "accept", centre_is(RED, 4)),
    Case("bmp-rgb", lambda: encode(solid(RED), "BMP"), "accept", centre_is(RED, 0)),
    Case("bmp-1bit", lambda: encode(solid(WHITE, mode="1"), "BMP"), "accept", centre_is(WHITE, 0)),
    Case("bmp-top-down", _bmp_top_down, "accept", centre_is(RED, 0)),
    Case(
        "tiff-cmyk",
        lambda: encode(Image.new("CMYK", (80, 60), (255, 0, 0, 0)), "TIFF"),
        "accept",
        centre_is((0, 255, 255), 4),
    ),
    Case(
        "tiff-lab",
        lambda: encode(Image.new("LAB", (80, 60), (138, 209, 198)), "TIFF"),
        "accept",
        centre_is((255, 0, 0), 10),
    ),
    Case(
        "tiff-ycbcr",
        lambda: encode(solid(GREEN, mode="YCbCr"), "TIFF"),
        "accept",
        centre_is(GREEN, 6),
    ),
    Case(
        "tiff-float",
        lambda: encode(Image.fromarray(np.full((60, 80), 0.5, np.float32)), "TIFF"),
        "accept",
        centre_is((128, 128, 128), 2),
    ),
    Case(
        "tiff-int32",
        lambda: encode(Image.fromarray(np.full((60, 80), 200, np.int32)), "TIFF"),
        "accept",
        centre_is((200, 200, 200), 2),
    ),
    Case("tiff-16bit-big-endian", _tiff_16_big_endian, "accept", centre_is((156, 156, 156), 2)),
    Case("tiff-pa", lambda: encode(Image.new("PA", (80, 60), (0, 255)), "TIFF"), "accept"),
    Case(
        "tiff-jpeg-compressed",
        lambda: encode(solid(RED), "TIFF", compression="jpeg"),
        "accept",
        centre_is(RED),
    ),
    Case("tiff-multipage", _tiff_multipage, "accept", centre_is(RED, 0)),
    Case("heic", lambda: _heic(solid(RED, (128, 96))), "accept", centre_is(RED, 24)),
    Case("heic-exif-orientation-6", _heic_turned, "accept", upright(6)),
    Case(
        "heic-alpha",
        lambda: _heic(Image.new("RGBA", (128, 96), (255, 0, 0, 0))),
        "accept",
        centre_is(WHITE, 8),
    ),
)


@cache
def data_of(kind: str) -> bytes:
    """The bytes of one kind, made once per process."""
    return BY_KIND[kind].make()


BY_KIND = {c.kind: c for c in CASES}
