"""Two runs side by side on the same validation images (e.g. from scratch against transfer).

Built on both runs' cached validation outputs (`analysis.val_outputs`): where they agree,
where one is right and the other wrong, and the classes where one wins most. Two accuracies
0.4 points apart on 10,000 images may be chance, so the comparison carries McNemar's exact
test on the images where exactly one of the two is right (the standard paired test for two
classifiers on one test set): `p_value` is the chance of a split at least this uneven if
both were equally good.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .analysis import ValOutputs


@dataclass(frozen=True, eq=False)
class Comparison:
    """Run a against run b on the same `n` validation images (`images`: their indices)."""

    images: np.ndarray  # (n,) validation indices both runs have outputs for
    labels: np.ndarray  # (n,)
    pred_a: np.ndarray  # (n,)
    pred_b: np.ndarray  # (n,)
    classes: int

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def right_a(self) -> np.ndarray:
        return self.pred_a == self.labels

    @property
    def right_b(self) -> np.ndarray:
        return self.pred_b == self.labels

    @property
    def matrix(self) -> np.ndarray:
        """2 x 2 counts: rows a right / a wrong, columns b right / b wrong."""
        ra, rb = self.right_a, self.right_b
        return np.array(
            [[np.sum(ra & rb), np.sum(ra & ~rb)], [np.sum(~ra & rb), np.sum(~ra & ~rb)]],
            np.int64,
        )

    @property
    def same_answer(self) -> float:
        """Share of the images on which both give the same class (right or wrong)."""
        return float(np.mean(self.pred_a == self.pred_b)) if self.n else 0.0

    @property
    def same_wrong(self) -> int:
        """Images both get wrong WITH THE SAME wrong class."""
        return int(np.sum((self.pred_a == self.pred_b) & ~self.right_a))

    @property
    def p_value(self) -> float:
        """McNemar's exact test (two-sided) on the images exactly one of the two gets right."""
        only_a, only_b = int(self.matrix[0, 1]), int(self.matrix[1, 0])
        if only_a + only_b == 0:
            return 1.0
        return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)

    def per_class(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(accuracy of a, accuracy of b, images) per class; classes without images get 0."""
        count = np.bincount(self.labels, minlength=self.classes)
        acc_a = np.bincount(self.labels, self.right_a, self.classes) / np.maximum(count, 1)
        acc_b = np.bincount(self.labels, self.right_b, self.classes) / np.maximum(count, 1)
        return acc_a, acc_b, count

    def wins(self, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(classes where a beats b most, classes where b beats a most), largest gap first."""
        acc_a, acc_b, count = self.per_class()
        gap = np.where(count > 0, acc_a - acc_b, 0.0)
        order = np.argsort(-gap, kind="stable")
        a_wins = [c for c in order if gap[c] > 0][:k]
        b_wins = [c for c in order[::-1] if gap[c] < 0][:k]
        return np.array(a_wins, np.int64), np.array(b_wins, np.int64)

    def only_right(self, which: str) -> np.ndarray:
        """Validation indices that run `which` ("a" or "b") gets right and the other wrong."""
        if which not in ("a", "b"):
            raise ValueError(f"which must be 'a' or 'b', not {which!r}")
        mask = self.right_a & ~self.right_b if which == "a" else self.right_b & ~self.right_a
        return self.images[mask]


def check_comparable(wnids_a: list[str], wnids_b: list[str]) -> None:
    """Two runs can be compared only on the same classes, in the same order."""
    if list(wnids_a) != list(wnids_b):
        raise ValueError(
            f"the runs were trained on different classes ({len(wnids_a)} and "
            f"{len(wnids_b)}, or in another order): their answers cannot be compared"
        )


def compare(a: ValOutputs, b: ValOutputs, classes: int | None = None) -> Comparison:
    """The comparison of two runs' outputs on the validation images both have."""
    img_a, img_b = _images(a), _images(b)
    common, ia, ib = np.intersect1d(img_a, img_b, assume_unique=True, return_indices=True)
    if not len(common):
        raise ValueError("the two runs have no validation image in common")
    labels_a, labels_b = np.asarray(a.labels)[ia], np.asarray(b.labels)[ib]
    if not np.array_equal(labels_a, labels_b):
        raise ValueError("the two runs' outputs were computed on different validation labels")
    classes = classes or int(max(np.asarray(a.logp).shape[1], labels_a.max() + 1))
    return Comparison(
        common.astype(np.int64),
        labels_a.astype(np.int64),
        np.asarray(a.preds)[ia].astype(np.int64),
        np.asarray(b.preds)[ib].astype(np.int64),
        classes,
    )


def _images(out: ValOutputs) -> np.ndarray:
    """The validation index of each row (row i is image i unless the outputs say otherwise)."""
    indices = getattr(out, "indices", None)
    return np.arange(len(out.labels)) if indices is None else np.asarray(indices, np.int64)


def top_k(out: ValOutputs, image: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(classes, probabilities) of a run's top-k on validation image `image`, best first."""
    rows = np.flatnonzero(_images(out) == image)
    if not len(rows):
        raise ValueError(f"no output for validation image {image}")
    logp = np.asarray(out.logp[rows[0]], np.float32)
    k = min(k, len(logp))
    top = np.argpartition(-logp, k - 1)[:k]
    top = top[np.argsort(-logp[top], kind="stable")]
    return top.astype(np.int64), np.exp(logp[top])
