"""Read what an image file claims about itself from its bytes, before Pillow parses it.

Pillow's headers tell the size and mode, but some traps need the file's structure itself:

- A progressive JPEG may repeat a scan thousands of times (libjpeg decodes every one of
  them, minutes of CPU for a small file); count the scans.
- A JPEG may claim 9000 x 9000 pixels while holding data for 400 x 300 (libjpeg fills the
  missing blocks with grey and only warns, so Pillow accepts it). Compare the entropy-coded
  bytes with the least any Huffman encoder can write for the claimed size: a sequential
  scan codes every block's DC and AC part (at least one bit each), and a progressive
  file's first DC scan at least one bit per block.
- Pillow reads JPEG segments, PNG chunks and GIF blocks one Python call each, so a file
  of a million empty ones holds a decoder for seconds; count them, stopping at a cap.

This module only parses bytes (no Pillow), and is cheap on a 20 MB file: JPEG scan data and
fill bytes are skipped with regular expressions, and every walk stops at its cap.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

# Segments, chunks or blocks a walk counts before it gives up: real files have dozens (a
# PNG split into 8 KB IDAT chunks, 2,500), and each costs Pillow a Python call.
MAX_PIECES = 10_000

_FILL = re.compile(rb"\xff+")
# Entropy-coded data: anything but 0xFF, stuffed zeros and restart markers (RST0-7). Runs
# are taken at a time and nothing follows the loop, so it never backtracks: linear.
_ENTROPY = re.compile(rb"(?:[^\xff]+|\xff[\x00\xd0-\xd7])*")
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_SOF_HUFFMAN_DCT = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive
_SOF_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Flood(ValueError):
    """A file of more segments, chunks or blocks than MAX_PIECES (a stall, not a picture)."""

    def __init__(self, what: str):
        super().__init__(f"{what}: over {MAX_PIECES:,}")
        self.what = what


@dataclass(frozen=True)
class JpegLayout:
    """The primary image of a JPEG (or the first of an MPO), from its markers.

    `blocks` counts the 8x8 blocks of every component at full size; `padded` the same padded
    to whole MCUs, as the decoder allocates them. `huffman` is False for arithmetic or
    lossless coding, whose least size we do not bound. `segments` counts every marker
    segment read (the walk stops past MAX_PIECES).
    """

    width: int
    height: int
    blocks: int
    padded: int
    progressive: bool
    huffman: bool
    scans: int
    scan_bytes: int
    segments: int

    @property
    def least_scan_bytes(self) -> int:
        """The fewest entropy-coded bytes a Huffman JPEG of this size can have."""
        bits_per_block = 1 if self.progressive else 2
        return self.blocks * bits_per_block // 8

    @property
    def coefficient_bytes(self) -> int:
        """What libjpeg holds for a progressive file: every block's 64 coefficients, int16."""
        return self.padded * 64 * 2 if self.progressive else 0


_Frame = tuple[int, int, int, int, bool, bool]


def jpeg_layout(data: bytes) -> JpegLayout | None:
    """The layout of the first image in `data` (a JPEG), or None if it has no frame header.

    Raises Flood for a file of more than MAX_PIECES segments.
    """
    pos, n = 2, len(data)
    frame: _Frame | None = None
    scans = scan_bytes = segments = 0
    while segments <= MAX_PIECES and (at := _next_marker(data, pos)) is not None:
        pos = at + 1
        marker = data[at]
        segments += 1
        if marker == 0:  # a stuffed zero outside a scan is junk: skip it like libjpeg
            continue
        if marker == 0xD9:  # EOI: the first image ends (an MPO's next one follows)
            break
        if marker in _STANDALONE:
            continue
        if pos + 2 > n:
            break
        (length,) = struct.unpack_from(">H", data, pos)
        if marker in _SOF and frame is None:
            frame = _frame(marker, data[pos + 2 : pos + length])
        pos += max(length, 2)
        if marker == 0xDA:  # SOS: the entropy-coded data runs to the next real marker
            scans += 1
            end = _ENTROPY.match(data, pos).end()
            scan_bytes += end - pos
            pos = end
    if segments > MAX_PIECES:
        raise Flood("JPEG segments")
    if frame is None:
        return None
    return JpegLayout(*frame, scans, scan_bytes, segments)


def _next_marker(data: bytes, pos: int) -> int | None:
    """Where the code byte of the next marker is: past any junk and 0xFF fill."""
    start = data.find(b"\xff", pos)
    if start < 0:
        return None
    end = _FILL.match(data, start).end()
    return end if end < len(data) else None


def _frame(marker: int, seg: bytes) -> _Frame | None:
    """Size, block counts (plain and MCU-padded) and coding of a SOFn segment."""
    if len(seg) < 6:
        return None
    _, height, width, count = struct.unpack_from(">BHHB", seg)
    comps = [(b >> 4, b & 15) for b in seg[7 : 6 + 3 * count : 3]]
    if not comps or width == 0 or height == 0:
        return None
    hmax, vmax = max(max(h for h, _ in comps), 1), max(max(v for _, v in comps), 1)
    mcus_x, mcus_y = _ceil(width, 8 * hmax), _ceil(height, 8 * vmax)
    blocks = sum(
        _ceil(_ceil(width * h, hmax), 8) * _ceil(_ceil(height * v, vmax), 8) for h, v in comps
    )
    padded = sum(mcus_x * h * mcus_y * v for h, v in comps)
    return width, height, blocks, padded, marker in _SOF_PROGRESSIVE, marker in _SOF_HUFFMAN_DCT


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def check_png(data: bytes) -> None:
    """Raise Flood if a PNG has more than MAX_PIECES chunks."""
    if _png_chunks(data) > MAX_PIECES:
        raise Flood("PNG chunks")


def check_gif(data: bytes) -> None:
    """Raise Flood if more than MAX_PIECES blocks come before a GIF's first image."""
    if _gif_blocks(data) > MAX_PIECES:
        raise Flood("GIF blocks")


def _png_chunks(data: bytes) -> int:
    """How many chunks a PNG has (stops counting past MAX_PIECES)."""
    pos, count, n = len(PNG_SIGNATURE), 0, len(data)
    while pos + 8 <= n and count <= MAX_PIECES:
        (length,) = struct.unpack_from(">I", data, pos)
        count += 1
        if data[pos + 4 : pos + 8] == b"IEND":
            break
        pos += 12 + length
    return count


def _gif_blocks(data: bytes) -> int:
    """How many blocks and sub-blocks come before a GIF's first image (stops past the cap)."""
    if len(data) < 13:
        return 0
    flags = data[10]
    pos, count, n = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0), 0, len(data)
    while pos < n and count <= MAX_PIECES:
        kind = data[pos]
        if kind != 0x21:  # an image descriptor, the trailer, or junk: Pillow stops here
            break
        pos += 2  # introducer and label, then sub-blocks up to an empty one
        while pos < n and count <= MAX_PIECES:
            count += 1
            size = data[pos]
            pos += 1 + size
            if size == 0:
                break
    return count
