"""Colours of the Embeddings map: a colour per class, or per WordNet group when there are
too many classes to tell apart (the groups come from `tinyviz.explain.wordnet`)."""

from __future__ import annotations

import numpy as np
import plotly.express as px

MANY = 20  # above this many classes on the map, colour by group


def class_colours(names: list[str], shown: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
    """(the colour group of each class: its name, the groups on the map in legend order,
    their colours) for the classes `shown` (repeating the palette beyond 26 classes)."""
    domain = sorted({names[k] for k in np.unique(shown)})
    palette = px.colors.qualitative.T10 if len(domain) <= 10 else px.colors.qualitative.Alphabet
    return np.array(names), domain, [palette[i % len(palette)] for i in range(len(domain))]
