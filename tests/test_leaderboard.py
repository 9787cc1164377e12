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


def test_leaderboards_are_per_data_set_not_per_class_list(tmp_path):
    """Tiny ImageNet's 200 classes at 32 px, or scored on a folder of a few of their images,
    are other data sets: their own leaderboard, named, never ranked with Tiny ImageNet's
    (issue 21.8); a row names its data set too."""
    import json

    official = _copy(tmp_path, "official")
    small = _copy(tmp_path, "at-32px", size=32)
    folder = _copy(tmp_path, "few-images", val=400, source="/data/my-tiny-copy")
    groups = leaderboard.data_sets([runs.open_run(p) for p in (small, official, folder)])
    assert [g.tiny_imagenet for g in groups] == [True, False, False]
    assert [[r.name for r in g.runs] for g in groups][0] == ["official"]
    assert groups[0].label == leaderboard.TINY_IMAGENET
    labels = {g.runs[0].name: g.label for g in groups}
    assert "32 px" in labels["at-32px"] and "Tiny ImageNet's 200 classes" in labels["at-32px"]
    assert labels["few-images"].startswith("my-tiny-copy (")
    assert "400 validation images" in labels["few-images"]
    assert leaderboard.row(runs.open_run(official))["data"] == leaderboard.TINY_IMAGENET
    assert {r["data"] for r in leaderboard.seed_rows()} == {leaderboard.TINY_IMAGENET}
    assert json.loads((small / "config.json").read_text())["data"]["size"] == 32


def _copy(tmp_path, name: str, **data):
    """The shipped logreg run (Tiny ImageNet's classes), its data record changed by `data`."""
    import json

    from pagetest import SHIPPED

    folder = shutil.copytree(SHIPPED / "logreg-seed001", tmp_path / name)
    config = json.loads((folder / "config.json").read_text())
    config["data"].update(data)
    (folder / "config.json").write_text(json.dumps(config))
    return folder
