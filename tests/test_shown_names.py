"""File names are shown with what would hide or reorder text escaped (issue 19.6)."""

from __future__ import annotations

import unicodedata

import pytest
from pagetest import ok, open_page, png

from tinyviz.io import HIDDEN_CATEGORIES, SHOWN_NAME_MAX, shown_name

HOSTILE_NAMES = {
    "right-to-left override": ("invoice\u202egnp.exe.png", "invoice\\u202egnp.exe.png"),
    "bell and escape": ("a\x07b\x1b[31mred.png", "a\\x07b\\x1b[31mred.png"),
    "newline": ("two\nlines.png", "two\\nlines.png"),
    "line separator": ("a\u2028b.png", "a\\u2028b.png"),
    "paragraph separator": ("a\u2029b.png", "a\\u2029b.png"),
    "zero-width joiner and BOM": ("a\u200d\ufeffb.png", "a\\u200d\\ufeffb.png"),
    "private use": ("a\ue000b.png", "a\\ue000b.png"),
    "lone surrogate": ("a\ud800b.png", "a\\ud800b.png"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_hidden_characters_are_written_as_escapes(case):
    raw, shown = HOSTILE_NAMES[case]
    assert shown_name(raw) == shown
    assert not any(unicodedata.category(c) in HIDDEN_CATEGORIES for c in shown_name(raw))


def test_ordinary_names_stay_as_they_are_and_long_ones_are_cut_in_the_middle():
    for name in ("photo.jpg", "Fotó von Zoë.heic", "猫の写真.png", "**bold** $x$.png"):
        assert shown_name(name) == name
    long = "a" * 200 + ".jpeg"
    cut = shown_name(long)
    assert len(cut) == SHOWN_NAME_MAX and cut.endswith("a.jpeg") and "…" in cut


def test_classify_shows_an_upload_name_escaped(app_env, tiny_run):
    at = ok(open_page("pages/classify.py", tiny_run, tv_cls_runs=[str(tiny_run)]), errors=True)
    at.file_uploader(key="tv_cls_files").set_value(
        [
            ("cat\u202egnp.exe.png", png(), "image/png"),
            ("bad\x07\u2028.png", b"not an image", "image/png"),
        ]
    )
    ok(at.run(), errors=True)
    shown = " ".join(s.value for s in at.subheader) + " ".join(e.value for e in at.error)
    assert "\u202e" not in shown and "\x07" not in shown and "\u2028" not in shown
    heading = next(s.value for s in at.subheader if "cat" in s.value)
    assert heading.replace("\\\\", "\\").startswith("cat\\u202egnp")
    assert any("bad" in e.value and "x07" in e.value for e in at.error)
