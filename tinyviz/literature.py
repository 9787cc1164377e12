"""The five reports on Tiny ImageNet whose models and figures tinyviz reproduces.

Code and data refer to a report by a short key ("004"): the model registry's `source`, the
published figures (`runs.reference`), comments. A visitor does not know those keys, so
whatever a page, a tooltip or the command line shows names the report as the report names
itself: its title, and its author where it gives one ("The Power of Inception (Milani)").
This module is the one place those names are written, with no imports, so the config's help
texts can use it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Report:
    """One report, named as its first page names it."""

    key: str  # the code's identifier, never shown
    title: str  # the full title
    author: str  # as the report gives it; "" where it gives none
    surname: str  # for a citation; "" where there is no author
    short: str  # the title as cited (up to its subtitle)
    kind: str  # what it is, in words

    @property
    def cite(self) -> str:
        """ "The Power of Inception (Milani)"; the title alone where there is no author."""
        return f"{self.short} ({self.surname})" if self.surname else self.short

    @property
    def label(self) -> str:
        """The shortest unambiguous name, for a table cell or a chart label: the author's
        surname, or the short title."""
        return self.surname or self.short

    @property
    def full(self) -> str:
        """Title, author and kind: the whole reference."""
        who = f", {self.author}" if self.author else ""
        return f"{self.title}{who} ({self.kind})"


REPORTS: dict[str, Report] = {
    r.key: r
    for r in (
        Report(
            "000",
            "Tiny ImageNet Challenge Image Classification Benchmarking",
            "Alexei Bastidas",
            "Bastidas",
            "Tiny ImageNet Challenge Image Classification Benchmarking",
            "Stanford CS231N poster",
        ),
        Report(
            "001",
            "Tiny Imagenet: Image Classification",
            "Tatiana Matejovicova",
            "Matejovicova",
            "Tiny Imagenet: Image Classification",
            "University of Cambridge report, 2018",
        ),
        Report(
            "002",
            "Tiny ImageNet Challenge - Scaling of Inception Layers for Reduced Scale "
            "Classification",
            "",
            "",
            "Scaling of Inception Layers for Reduced Scale Classification",
            "Stanford CS231N poster",
        ),
        Report(
            "003",
            "Tiny ImageNet Classification using Deep Learning",
            "Narayana Sudheer Vishal Basutkar",
            "Basutkar",
            "Tiny ImageNet Classification using Deep Learning",
            "presentation, 2023",
        ),
        Report(
            "004",
            "The Power of Inception: Tackling the Tiny ImageNet Challenge",
            "Pedro M. Milani",
            "Milani",
            "The Power of Inception",
            "Stanford CS231N report, 2017",
        ),
    )
}
KEY = re.compile(r"\d{3}")


def report(key: str) -> Report:
    """The report of `key`; a KeyError names the known ones."""
    try:
        return REPORTS[key]
    except KeyError:
        raise KeyError(f"no report {key!r}; known: {', '.join(REPORTS)}") from None


def cite(*keys: str) -> str:
    """The reports of `keys` as a visitor reads them: "A (X)", "A (X) and B (Y)"."""
    names = [report(k).cite for k in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def names(*keys: str) -> str:
    """The same with their short labels ("Bastidas and Milani"), for tight places."""
    labels = [report(k).label for k in keys]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def shown_source(source: str) -> str:
    """A model's `source` as shown: its report keys ("000, 004") as citations; any other
    text ("ImageNet-pretrained (torchvision)", an imported file's name) unchanged."""
    keys = [part.strip() for part in str(source).split(",")]
    if keys and all(KEY.fullmatch(k) and k in REPORTS for k in keys):
        return cite(*keys)
    return str(source)
