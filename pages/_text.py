"""Names and labels drawn as plain text.

Names of files, runs and classes come from someone else: they are drawn as text, never
interpreted. A file called `**x**![](http://...)` must not fetch anything, so everything
a page writes into Markdown goes through `plain` (every Markdown, HTML and LaTeX
character escaped) or, for file and run names, `file_name`.
"""

from __future__ import annotations

import re

from tinyviz.io import shown_name

# Where Streamlit's Markdown would make a link of escaped text too (GFM autolinks:
# "http://", "www.", "a@b.c"): an invisible word joiner after these breaks the link.
_AUTOLINK = re.compile(r"(?i)www(?=\.)|@|\\:(?=//)")


def plain(text: str) -> str:
    """`text` made safe for `st.markdown`: every Markdown, HTML and LaTeX character escaped,
    and URLs and e-mail addresses shown as text, not links."""
    out = str(text).replace("\\", "\\\\")
    for ch in "`*_{}[]<>#!|$~:":
        out = out.replace(ch, "\\" + ch)
    out = _AUTOLINK.sub(lambda m: m.group(0) + "\u2060", out)
    return " ".join(out.split())


def file_name(name) -> str:
    """A file or run folder name for `st.markdown`: characters that hide or reorder text
    written as escapes (`tinyviz.io.shown_name`, as everywhere a name is shown), then `plain`."""
    return plain(shown_name(name))


def probability(p: float) -> str:
    """A class probability as a visitor reads it: whole percents from 1%, one decimal below,
    "<0.1%" below that (never "0%" for a class the model gave a share to)."""
    if p >= 0.01:
        return f"{p:.0%}"
    return f"{p:.1%}" if p >= 0.0005 else "<0.1%"


def signed(x: float, digits: int = 2) -> str:
    """A difference with its sign, and no sign where it rounds to zero ("0.00", not the
    "-0.00" that a tiny negative one prints as)."""
    text = f"{x:+.{digits}f}"
    return text[1:] if float(text) == 0 else text
