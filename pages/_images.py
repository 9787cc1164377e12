"""Images on a page: the photo uploader with its rules, enlarged pictures, grids, and the
colour strip of the heat maps."""

from __future__ import annotations

import hashlib
import html

import numpy as np
import streamlit as st
from PIL import Image

from tinyviz.demo import heatmaps

UPLOAD_TYPES = "JPEG, PNG, WEBP, GIF, BMP, TIFF or HEIC"


# The browser refuses a file that is too large or of another type before it is sent, and
# says why only on hover: the rules stay under the uploader, and each refused file's chip
# shows its reason in red.
# The drop zone's own line ("32MB per file", the browser's limit, set above ours so that a
# file a little too large arrives and is refused in words) is hidden: the caption under the
# uploader states the limit a file is held to (20 MB) and the types.
_UPLOAD_CSS = (
    "<style>[data-testid=stFileChip] [role=alert]{position:static;width:auto;height:auto;"
    "clip:auto;clip-path:none;overflow:visible;white-space:normal;margin-left:.5rem;"
    "color:#b91c1c;font-size:.8rem}"
    "[data-testid=stFileUploaderDropzoneInstructions]{display:none}</style>"
)


# Image captions never break inside a word ("barbersh/op"): Streamlit's captions wrap with
# overflow-wrap: break-word, which cuts a word wider than its image. Here a caption is its
# own container and its letters shrink with it (cqi: a hundredth of its width), so a
# class name's longest word (13 letters, "confectionery") fits a 64 px thumbnail whole;
# from about 100 px on, captions keep their usual size.
CAPTION_CSS = (
    "<style>[data-testid=stImageCaption]{container-type:inline-size}"
    "[data-testid=stImageCaption] [data-testid=stCaptionContainer] p{overflow-wrap:normal;"
    "word-break:normal;font-size:min(0.875rem, 15cqi);line-height:1.25}</style>"
)


def page_style() -> None:
    """The app's own layout rules (`CAPTION_CSS`), once per script run (app.py), in the
    sidebar: nothing is added to a page's own elements."""
    with st.sidebar:
        st.html(CAPTION_CSS)


def image_uploader(label: str, key: str, *, multiple: bool = False, where=None):
    """A file uploader for photos (`st.file_uploader`, typed), with its rules written under it.

    Its types end in MIME types, so Streamlit leaves the check of a file's name to us: a
    crafted request can deliver a file of any name, which Streamlit would refuse with an
    exception, drawn as a traceback box; `load_upload` reads the content, which no name can
    fake, and refuses it in one line.
    """
    from tinyviz.demo import images

    where = where or st
    images.prepare()  # a decoder worker starts while the visitor picks a photo
    st.html(_UPLOAD_CSS)
    files = where.file_uploader(
        label,
        type=list(images.UPLOAD_TYPES),
        accept_multiple_files=multiple,
        key=key,
        max_upload_size=images.BROWSER_MAX_MIB,
    )
    where.caption(
        f"Up to {images.describe_size(images.MAX_BYTES)} a file: {UPLOAD_TYPES}. "
        "A file marked in red was not taken: too large, or another type."
    )
    return files


def decode_each(files: list, key: str, size: int = 64):
    """Yield (file, its UploadedImage or the ImageError that refused it) for each upload in
    turn, each decoded once per session (kept under `key` by content, for the files given
    only); `size`: the models' input size (`load_upload`).

    A new photo reruns the answers to every photo shown, and each decode is a round trip
    to the decoder's process: with five photos up, four decodes of each new one's rerun
    were repeats, and a refused file (up to seconds before its budget stops it) was tried
    again on every rerun; Saliency decoded its image again at every tick of a method (a
    second each for a 12-megapixel HEIC). One at a time: the first file's answer is drawn
    before the next is decoded.
    """
    from tinyviz.demo import images, sandbox

    kept = st.session_state.setdefault(key, {})
    digests = [(hashlib.blake2b(f.getvalue(), digest_size=16).digest(), size) for f in files]
    for gone in set(kept) - set(digests):  # a removed file's pictures go with it
        del kept[gone]
    for f, seen in zip(files, digests, strict=True):
        if seen in kept:
            yield f, kept[seen]
            continue
        try:
            kept[seen] = up = images.load_upload(f.getvalue(), size=size)
        except images.ImageError as e:
            up = e.with_traceback(None)  # no frames kept alive with it
            if str(e) != sandbox.NO_WORKER:  # the server's trouble, not the file's: try again
                kept[seen] = up
        yield f, up


def enlarge(rgb, px: int = 128):
    """A small image scaled up for display (bicubic), so 64 x 64 pictures are not tiny."""
    return Image.fromarray(np.asarray(rgb, np.uint8)).resize((px, px), Image.Resampling.BICUBIC)


def big(rgb: np.ndarray, size: int = 192) -> np.ndarray:
    """A small image enlarged with square pixels, so 64 x 64 stays honest on screen."""
    return np.asarray(
        Image.fromarray(np.asarray(rgb, np.uint8)).resize((size, size), Image.Resampling.NEAREST)
    )


def image_grid(images, captions: list[str], per_row: int = 8, px: int = 128) -> None:
    """Images (H x W x 3 uint8) in rows of `per_row`, each with a small caption."""
    for start in range(0, len(images), per_row):
        cols = st.columns(per_row)
        for col, img, cap in zip(
            cols, images[start : start + per_row], captions[start : start + per_row], strict=False
        ):
            col.image(enlarge(img, px), caption=cap, width="stretch")


def heat_scale(low: str = "low", high: str = "high", **blend) -> None:
    """The colour scale of the heat maps drawn next to it: a strip of the very colours
    (`heatmaps.colour_stops(**blend)`, the same blending as the maps), `low` to `high`."""
    stops = ", ".join(heatmaps.colour_stops(**blend))
    st.html(
        '<div style="display:flex;align-items:center;gap:.5em;font-size:.8rem;color:#555">'
        f"<span>{html.escape(low)}</span>"
        '<div style="flex:1;min-width:60px;height:12px;border-radius:3px;'
        f'border:1px solid #ddd;background:linear-gradient(to right, {stops})"></div>'
        f"<span>{html.escape(high)}</span></div>"
    )
