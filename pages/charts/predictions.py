"""Charts of a model's answer: its top-5 as bars."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

HIT, TRUE, OTHER = "#1c6fd1", "#2e9d4a", "#a9b4c2"
INSIDE_FROM = 0.78  # a probability this high is written inside its bar, in white

# One block of rules per answer (a few hundred bytes): the snippet stands on its own,
# wherever a page puts it.
_CSS = (
    "<style>.tv-top5{display:grid;grid-template-columns:minmax(0,max-content) 1fr;"
    "gap:6px 8px;align-items:center;margin:4px 0 12px;font-size:13px}"
    ".tv-top5 .n{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:190px;"
    "text-align:right}"
    ".tv-top5 .t{position:relative;height:20px}"
    ".tv-top5 .b{position:absolute;left:0;top:0;bottom:0;border-radius:0 3px 3px 0}"
    ".tv-top5 .p{position:absolute;top:0;line-height:20px;white-space:nowrap}"
    ".tv-top5 .p.in{color:#fff;font-weight:bold;transform:translateX(-100%);"
    "margin-left:-4px}</style>"
)


def top5_html(
    pred,
    full_names: dict[str, str] | None = None,
    *,
    true_class: int | None = None,
    shown: Callable[[str], str] = str,
) -> str:
    """Horizontal bars of a `Prediction`, most probable on top, as HTML for `st.html`; full
    names and WordNet ids on hover. With `true_class`, its bar is green and the others grey
    (else the top bar is blue). `shown`: how a page writes a name that came from elsewhere
    (`tinyviz.io.shown_name`); then it is escaped.

    Plain HTML, not a chart library: Classify draws one per model for every visitor's photo,
    and a Vega chart cost each visitor's browser about 25 ms of script per answer, and its
    code a download and a compile on the first (at a crowded poster those browsers may
    share the server's CPU, or be old phones). Names are escaped: they come from the run.
    """
    full_names = full_names or {}
    names = [shown(n) for n in pred.names]
    rows = []
    for i, (name, key, p, c) in enumerate(
        zip(names, pred.wnids, pred.probs, pred.classes, strict=True)
    ):
        wnid = shown(key)
        label = name if names.count(name) == 1 else f"{name} ({wnid})"
        hit = (c == true_class) if true_class is not None else i == 0
        colour = (TRUE if true_class is not None else HIT) if hit else OTHER
        share = min(max(float(p), 0.0), 1.0) * 100
        where = "in" if p >= INSIDE_FROM else "out"
        at = f"{share:.1f}%" if where == "in" else f"calc({share:.1f}% + 4px)"
        full = shown(full_names.get(key, pred.names[i]))
        tip = escape(f"{full} ({wnid}): {p:.1%}")
        rows.append(
            f'<div class="n" title="{tip}">{escape(label)}</div>'
            f'<div class="t" title="{tip}" data-p="{float(p):.6f}">'
            f'<div class="b" style="width:{share:.1f}%;background:{colour}"></div>'
            f'<span class="p {where}" style="left:{at}">'
            f"{p:.1%}</span></div>"
        )
    return f'{_CSS}<div class="tv-top5">{"".join(rows)}</div>'


# A model's answer to a photo as one block of HTML, not five Markdown elements: each
# element is a React subtree the visitor's browser renders again at every rerun (and a
# Markdown one is parsed again there), and Classify reruns its answers for every new photo.
_HEAD_CSS = (
    "<style>.tv-ans{margin:0;line-height:1.45}.tv-ans>*{margin:0;white-space:nowrap;"
    "overflow:hidden;text-overflow:ellipsis}.tv-ans .name{font-weight:600}"
    ".tv-ans .dim{color:rgba(49,51,63,.6)}"
    ".tv-ans .say{font-weight:600;line-height:1.3;padding:.9rem 0 .6rem;font-size:1.75rem}"
    ".tv-ans .say.small{font-size:1.3rem}.tv-ans .say.faint{color:rgba(49,51,63,.6)}"
    ".tv-cap{font-size:.875rem;color:rgba(49,51,63,.6);margin:0 0 .4rem;line-height:1.5}</style>"
)


def answer_head_html(
    name: str, about: str, headline: str, detail: str, *, bold: bool, small: bool, tip: str = ""
) -> str:
    """The head of one model's answer: its name, what it is, its verdict (large; grey unless
    `bold`: not sure, or the photo looks like none of its classes; `tip` on hover) and the
    verdict's detail. Every text is escaped."""
    say = "say" + (" small" if small else "") + ("" if bold else " faint")
    hover = f' title="{escape(tip)}"' if tip else ""
    return (
        f'{_HEAD_CSS}<div class="tv-ans"><p class="name">{escape(name)}</p>'
        f'<p class="dim">{escape(about)}</p><p class="{say}"{hover}>{escape(headline)}</p>'
        f'<p class="dim">{escape(detail) or "&nbsp;"}</p></div>'
    )


def captions_html(*lines: str) -> str:
    """Small grey lines under an answer (what `st.caption` shows), escaped, in one block."""
    return "".join(f'<p class="tv-cap">{escape(line)}</p>' for line in lines)
