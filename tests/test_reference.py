"""The seeds' published figures: well-formed, mapped to real model families."""

from __future__ import annotations

import dataclasses

import pytest

from tinyviz import models, reference


def test_every_family_is_a_model_or_transfer():
    known = set(models.names()) | {reference.TRANSFER}
    assert set(reference.families()) <= known


def test_numbers_are_fractions():
    for r in reference.REFERENCES:
        for value in (r.val_top1, r.val_top5):
            assert value is None or 0 <= value <= 1, r
        if r.val_top1 is not None and r.val_top5 is not None:
            assert r.val_top5 >= r.val_top1


def test_every_seed_is_present_and_rows_are_frozen():
    assert {r.seed for r in reference.REFERENCES} == {"000", "001", "002", "003", "004"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        reference.REFERENCES[0].val_top1 = 1.0  # type: ignore[misc]


def test_seed_002_says_no_figure_was_given():
    (row,) = reference.for_family("googlenet_like")
    assert row.seed == "002" and row.val_top1 is None and "no accuracy" in row.notes
    assert reference.best("googlenet_like") is row


def test_lookups():
    assert [r.val_top1 for r in reference.for_family("logreg")] == [0.062]
    assert reference.best("inception_v3_like").val_top1 == 0.522
    assert reference.best("transfer").val_top1 == 0.767
    assert reference.best("resnet18") is None
    assert reference.family_of("tv_resnet50") == reference.TRANSFER
    assert reference.family_of("effnet_lite0") == reference.TRANSFER
    assert reference.family_of("vgg_bn") == "vgg_bn"
    assert len(reference.for_model("simple_cnn")) == 3


def test_table_is_plain_dicts():
    rows = reference.table()
    assert len(rows) == len(reference.REFERENCES)
    assert set(rows[0]) == {"seed", "source", "model", "family", "val_top1", "val_top5",
                            "notes"}
    assert all(r["family"] == "vgg_bn" for r in reference.table("vgg_bn"))
