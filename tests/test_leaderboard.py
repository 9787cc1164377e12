"""Leaderboard rows say what each figure was measured on."""

from __future__ import annotations

import shutil

from tinyviz import runs
from tinyviz.runs import leaderboard


def test_rows_from_a_trained_run(tiny_run, tiny_zip):
    run = runs.open_run(tiny_run)
    row = leaderboard.row(run)
    assert row["model"] == "resnet18" and row["epochs"] == 4
    assert 0 <= row["top1"] <= 1 and "last epoch" in row["measured_on"]
    assert row["params"] > 0 and row["images_per_s"] > 0
    curves = leaderboard.curves([run])
    assert {c["split"] for c in curves} == {"train", "val"} and len(curves) == 8


def test_recorded_evaluations_take_precedence(tiny_run, tiny_data, tmp_path):
    from tinyviz.runs.evaluate import evaluate_run

    copy = shutil.copytree(tiny_run, tmp_path / "run")
    evaluate_run(copy, tiny_data)
    evaluate_run(copy, tiny_data, tta="flip", ensemble_size=2)
    run = runs.open_run(copy)
    row = leaderboard.row(run)
    assert row["measured_on"] == "val, 24 images, single model"
    assert row["best_with"] == "val, 24 images, flip TTA, ensemble of 2 snapshots"
    ens = leaderboard.ensemble_curves([run])
    assert [e["members"] for e in ens] == [1, 2]


def test_seed_rows_cover_published_figures():
    seeds = leaderboard.seed_rows()
    milani = "The Power of Inception (Milani)"
    assert any(r["source"] == milani and r["top1"] == 0.522 for r in seeds)
    assert not any("seed" in str(v).lower() for r in seeds for v in r.values())
    assert all(r["top1"] is None or 0 < r["top1"] < 1 for r in seeds)
