"""The confusion matrix of a run on the validation set, and what the Confusion page shows.

Built on the cached outputs of `tinyviz.explain.analysis`: the matrix, its most-confused
pairs, per-class accuracy, and orders of the classes that put related classes together (a
200 x 200 matrix is only readable ordered).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
from scipy.spatial.distance import pdist, squareform

from ..runs import evaluate
from . import wordnet
from .analysis import ValOutputs

ORDERS = ("confusion", "wordnet", "feature", "name")


@dataclass(frozen=True)
class Pair:
    """A cell of the confusion matrix off the diagonal; `rate` is of the true class's images."""

    true: int
    pred: int
    count: int
    rate: float


@dataclass(frozen=True, eq=False)
class Confusion:
    """The confusion matrix and what the Confusion page shows about it."""

    matrix: np.ndarray  # (C, C) int64, matrix[true, predicted]
    totals: np.ndarray  # (C,) images per true class
    per_class: np.ndarray  # (C,) accuracy per class (0 for a class without images)
    order: np.ndarray  # (C,) a permutation of the classes that keeps related classes together
    order_by: str
    pairs: tuple[Pair, ...]  # the most confused pairs, largest count first
    best: np.ndarray  # class indices, most accurate first
    worst: np.ndarray  # class indices, least accurate first

    @property
    def rates(self) -> np.ndarray:
        """Row-normalised matrix: the share of each true class's images given each label."""
        return self.matrix / np.maximum(self.totals, 1)[:, None]


def confusion(
    outputs: ValOutputs,
    class_names: list[str],
    *,
    order_by: str = "confusion",
    wnids: list[str] | None = None,
    top_pairs: int = 30,
    k: int = 10,
) -> Confusion:
    """The confusion matrix of `outputs`, ordered by `order_by` (one of `ORDERS`).

    `confusion`: classes often mistaken for each other together (clustering of the matrix);
    `wordnet`: depth first through the WordNet tree (`wnids` needed); `feature`: classes whose
    mean penultimate features are alike together; `name`: alphabetical.
    """
    c = len(class_names)
    cm = evaluate.confusion_matrix(outputs.labels, outputs.preds, c).astype(np.int64)
    totals = cm.sum(1)
    acc = evaluate.per_class_accuracy(cm)
    pairs = tuple(
        Pair(t, p, n, n / max(int(totals[t]), 1))
        for t, p, n in evaluate.most_confused(cm, top_pairs)
    )
    present = np.flatnonzero(totals > 0)
    ranked = present[np.argsort(-acc[present], kind="stable")]
    order = class_order(order_by, cm=cm, outputs=outputs, class_names=class_names, wnids=wnids)
    return Confusion(cm, totals, acc, order, order_by, pairs, ranked[:k], ranked[::-1][:k])


def class_order(
    order_by: str,
    *,
    cm: np.ndarray,
    outputs: ValOutputs,
    class_names: list[str],
    wnids: list[str] | None = None,
) -> np.ndarray:
    """A permutation of the classes; see `confusion` for the methods."""
    if order_by == "confusion":
        return confusion_order(cm)
    if order_by == "feature":
        return feature_order(outputs.features, outputs.labels, len(class_names))
    if order_by == "name":
        return np.argsort([n.lower() for n in class_names], kind="stable")
    if order_by == "wordnet":
        if wnids is None:
            raise ValueError("order_by='wordnet' needs the classes' wnids")
        return wordnet.order(wnids)
    raise ValueError(f"order_by must be one of {ORDERS}, not {order_by!r}")


def confusion_order(cm: np.ndarray) -> np.ndarray:
    """Average-linkage clustering of `1 - (r + r.T) / max`, r the row-normalised matrix.

    Symmetrising makes "a taken for b" and "b taken for a" both pull a and b together;
    optimal leaf ordering then makes neighbours in the order as similar as the tree allows.
    """
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    sim = rates + rates.T
    np.fill_diagonal(sim, 0)
    top = sim.max()
    dist = 1 - sim / top if top > 0 else np.ones_like(sim)
    np.fill_diagonal(dist, 0)
    return _leaf_order(squareform(dist, checks=False))


def feature_order(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Clustering of the class means of the features by cosine distance: look-alikes together."""
    feats = np.asarray(features, np.float32)
    sums = np.zeros((num_classes, feats.shape[1]), np.float64)
    np.add.at(sums, labels, feats)
    means = sums / np.maximum(np.bincount(labels, minlength=num_classes), 1)[:, None]
    return _leaf_order(np.nan_to_num(pdist(means, "cosine"), nan=1.0))


def _leaf_order(condensed: np.ndarray) -> np.ndarray:
    n = int(round((1 + np.sqrt(1 + 8 * len(condensed))) / 2))
    if n < 3:
        return np.arange(n)
    z = linkage(condensed, "average")
    return leaves_list(optimal_leaf_ordering(z, condensed)).astype(np.int64)


def images_of_cell(
    outputs: ValOutputs, true_class: int, pred_class: int, limit: int = 24
) -> np.ndarray:
    """Validation images of `true_class` predicted as `pred_class`, most confident first."""
    idx = np.flatnonzero((outputs.labels == true_class) & (outputs.preds == pred_class))
    conf = outputs.logp[idx, pred_class]
    return idx[np.argsort(-conf, kind="stable")][:limit]


def per_class_table(conf: Confusion, class_names: list[str], wnids: list[str]) -> list[dict]:
    """One row per class for a sortable table: accuracy, and what it is most often taken for."""
    off = conf.matrix.copy()
    np.fill_diagonal(off, -1)
    position = np.empty(len(conf.order), np.int64)
    position[conf.order] = np.arange(len(conf.order))
    rows = []
    for c, name in enumerate(class_names):
        other = int(off[c].argmax())
        wrong = int(off[c, other])
        rows.append(
            {
                "class": c,
                "wnid": wnids[c],
                "name": name,
                "images": int(conf.totals[c]),
                "correct": int(conf.matrix[c, c]),
                "accuracy": float(conf.per_class[c]),
                "confused_with": class_names[other] if wrong > 0 else "",
                "confused_count": max(wrong, 0),
                "position": int(position[c]),
            }
        )
    return rows
