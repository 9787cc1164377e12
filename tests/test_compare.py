"""Two runs side by side: counts on hand-made outputs."""

from __future__ import annotations

import numpy as np
import pytest

from tinyviz.explain import compare
from tinyviz.explain.analysis import ValOutputs


def outputs(preds, labels, classes=3) -> ValOutputs:
    preds, labels = np.array(preds), np.array(labels)
    logp = np.full((len(preds), classes), np.log(0.1), np.float32)
    logp[np.arange(len(preds)), preds] = np.log(0.8)
    return ValOutputs(logp, np.zeros((len(preds), 2), np.float16), labels, preds)


LABELS = [0, 0, 1, 1, 2, 2, 2]
A = outputs([0, 0, 1, 0, 2, 1, 1], LABELS)  # right: 0, 1, 2, 4
B = outputs([0, 1, 0, 0, 2, 2, 1], LABELS)  # right: 0, 4, 5


def test_agreement_matrix_and_same_answers():
    c = compare.compare(A, B)
    assert c.n == 7
    # both right: 0, 4; a only: 1, 2; b only: 5; both wrong: 3, 6
    assert c.matrix.tolist() == [[2, 2], [1, 2]]
    assert c.same_answer == pytest.approx(4 / 7)  # images 0, 3, 4, 6
    assert c.same_wrong == 2  # 3 (both say 0) and 6 (both say 1)
    assert c.only_right("a").tolist() == [1, 2] and c.only_right("b").tolist() == [5]


def test_classes_where_one_wins():
    c = compare.compare(A, B)
    acc_a, acc_b, count = c.per_class()
    assert acc_a.tolist() == pytest.approx([1.0, 0.5, 1 / 3]) and count.tolist() == [2, 2, 3]
    assert acc_b.tolist() == pytest.approx([0.5, 0.0, 2 / 3])
    a_wins, b_wins = c.wins()
    assert a_wins.tolist() == [0, 1] and b_wins.tolist() == [2]


def test_mcnemar():
    c = compare.compare(A, B)
    assert c.p_value == pytest.approx(1.0)  # 2 against 1: nothing to see
    many = compare.compare(outputs([0] * 40, [0] * 40), outputs([1] * 40, [0] * 40))
    assert many.p_value < 1e-9
    assert compare.compare(A, A).p_value == 1.0


def test_top_k_and_refusals():
    classes, probs = compare.top_k(A, 3, k=2)
    assert classes[0] == 0 and probs[0] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="different validation labels"):
        compare.compare(A, outputs([0] * 7, [1] * 7))
    with pytest.raises(ValueError, match="different classes"):
        compare.check_comparable(["n1", "n2"], ["n2", "n1"])


def test_a_small_probability_is_not_shown_as_zero():
    """Two models' top-5 once said "reel 0%" beside "sewing machine 99%"."""
    from pages._text import probability

    assert [probability(p) for p in (0.99, 0.014, 0.004, 0.0004)] == ["99%", "1%", "0.4%", "<0.1%"]


def test_a_difference_that_rounds_to_zero_has_no_sign():
    from pages._text import signed

    assert [signed(x) for x in (-0.001, 0.0, 0.004, -0.3, 1.256)] == [
        "0.00", "0.00", "0.00", "-0.30", "+1.26"
    ]  # fmt: skip
