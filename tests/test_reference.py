"""The seeds' published figures: well-formed, mapped to real model families."""

from __future__ import annotations

from tinyviz import models
from tinyviz.runs import reference


def test_every_family_is_a_model_or_transfer():
    known = set(models.names()) | {reference.TRANSFER}
    assert {r.family for r in reference.REFERENCES} <= known


def test_numbers_are_fractions():
    for r in reference.REFERENCES:
        for value in (r.val_top1, r.val_top5):
            assert value is None or 0 <= value <= 1, r
        if r.val_top1 is not None and r.val_top5 is not None:
            assert r.val_top5 >= r.val_top1


def test_every_seed_is_present_with_its_best_figures():
    assert {r.seed for r in reference.REFERENCES} == {"000", "001", "002", "003", "004"}
    best = {}
    for r in reference.REFERENCES:
        if r.val_top1 is not None:
            best[r.family] = max(best.get(r.family, 0), r.val_top1)
    # the seeds' best from scratch (004's ensemble) and with transfer (004's 10-crop)
    assert best["inception_v3_like"] == 0.522 and best["transfer"] == 0.767
    assert best["logreg"] == 0.062


def test_seed_002_says_no_figure_was_given():
    (row,) = [r for r in reference.REFERENCES if r.family == "googlenet_like"]
    assert row.seed == "002" and row.val_top1 is None and "no accuracy" in row.notes
