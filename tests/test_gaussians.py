"""The Gaussians part of the unfamiliar-photo score (issue 21 item 1): the low-rank
Mahalanobis distance, its file, and the score that uses it once `tinyviz analyse` fitted it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_familiar import photos

from tinyviz.cli import main
from tinyviz.errors import CheckpointError
from tinyviz.explain import familiar, gaussians
from tinyviz.runs.folder import open_run
from tinyviz.runs.weights import load_model


def blobs(rng, per_class: int, centres: np.ndarray, spread: float = 0.05):
    labels = np.repeat(np.arange(len(centres)), per_class)
    return centres[labels] + rng.normal(0, spread, (len(labels), centres.shape[1])), labels


def test_the_distance_is_the_mahalanobis_distance_of_the_low_rank_covariance():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (5, 12))
    x, labels = blobs(rng, 40, centres, 0.2)
    g = gaussians.Gaussians.fit(x, labels, rank=4)
    v, lam = g.basis.astype(np.float64), g.variances.astype(np.float64)
    cov = v.T @ np.diag(lam) @ v + g.rest * (np.eye(12) - v.T @ v)
    inv = np.linalg.inv(cov)
    q = rng.normal(0, 1, (7, 12))
    unit = q / np.linalg.norm(q, axis=1, keepdims=True)
    d = unit[:, None] - g.means.astype(np.float64)[None]
    brute = np.sqrt(np.einsum("ncd,de,nce->nc", d, inv, d).min(1))
    assert g.distance(q) == pytest.approx(brute, rel=1e-3)
    assert g.basis.shape == (4, 12) and (np.diff(g.variances) >= 0).all()


def test_held_out_images_of_the_classes_are_near_and_others_far():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (10, 32))
    g = gaussians.Gaussians.fit(*blobs(rng, 20, centres), rank=8)
    same, _ = blobs(rng, 5, centres)
    others, _ = blobs(rng, 5, rng.normal(0, 1, (10, 32)))
    assert g.distance(same).max() < g.distance(others).min()


def test_every_class_needs_training_images():
    rng = np.random.default_rng(2)
    x, labels = blobs(rng, 5, rng.normal(0, 1, (3, 8)))
    with pytest.raises(CheckpointError, match="every class"):
        gaussians.Gaussians.fit(x[labels != 1], labels[labels != 1])


def fitted_file(tmp_path, rng, classes=3, dims=8, images=30):
    x, labels = blobs(rng, 10, rng.normal(0, 1, (classes, dims)))
    g = gaussians.Gaussians.fit(x, labels, rank=4).with_calibration(np.arange(6), x[:6])
    path = tmp_path / gaussians.FILE
    g.save(path)
    return g, path


def test_the_file_is_read_back_and_one_that_does_not_fit_is_refused(tmp_path):
    rng = np.random.default_rng(3)
    g, path = fitted_file(tmp_path, rng)
    back = gaussians.Gaussians.load(path, classes=3, dims=8, images=30)
    assert back.rest == g.rest and np.array_equal(back.val_rows, g.val_rows)
    q = rng.normal(0, 1, (4, 8))
    assert back.distance(q) == pytest.approx(g.distance(q))
    for classes, dims, images, why in ((4, 8, 30, "shapes"), (3, 9, 30, "shapes"),
                                       (3, 8, 5, "validation images")):  # fmt: skip
        with pytest.raises(CheckpointError, match=why):
            gaussians.Gaussians.load(path, classes, dims, images)
    arrays = dict(np.load(path))
    np.savez(path.with_suffix(".rows.npz"), **{**arrays, "val_rows": arrays["val_rows"] + 0.5})
    with pytest.raises(CheckpointError, match="shapes"):  # rows that cannot index the images
        gaussians.Gaussians.load(path.with_suffix(".rows.npz"), 3, 8, 30)
    arrays["variances"][0] = np.nan
    np.savez(path.with_suffix(".bad.npz"), **arrays)
    with pytest.raises(CheckpointError, match="not finite"):
        gaussians.Gaussians.load(path.with_suffix(".bad.npz"), 3, 8, 30)
    path.write_bytes(b"not an npz")
    with pytest.raises(CheckpointError, match="cannot be read"):
        gaussians.Gaussians.load(path, 3, 8, 30)


@pytest.fixture
def run(tiny_run, tmp_path):
    copy = tmp_path / "runs" / tiny_run.name
    shutil.copytree(tiny_run, copy)
    return copy


def analyse(run, tiny_zip, capsys) -> dict:
    assert main(["analyse", str(run), "--data", str(tiny_zip), "--quiet", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_analyse_fits_them_once_and_the_score_then_has_three_parts(run, tiny_zip, capsys):
    from sklearn.metrics import roc_auc_score

    before = familiar.checker(run)
    assert before.gaussians is None and before.calibration.method == familiar.METHOD
    stamp = familiar.stamp(before.folder, run)
    said = analyse(run, tiny_zip, capsys)
    assert said["gaussians"].endswith(gaussians.FILE)
    assert familiar.stamp(before.folder, run) != stamp  # the pages' caches see them
    checker = familiar.checker(run)
    cal = checker.calibration
    assert checker.gaussians is not None and cal.method == familiar.WITH_GAUSSIANS
    assert cal.images == len(checker.gaussians.val_rows) and cal.flagged <= 0.05 + 1 / cal.images
    assert json.loads((checker.folder / familiar.FILE).read_text())["method"] == cal.method
    model = load_model(open_run(run))
    from tinyviz.demo import predict

    known, noise = photos(np.random.default_rng(7))
    scores = [predict.familiarity(model, x, checker).score for x in known + noise]
    assert roc_auc_score([0] * len(known) + [1] * len(noise), scores) >= 0.95
    assert analyse(run, tiny_zip, capsys)["gaussians"] == "stored"  # not fitted again


def test_a_damaged_file_leaves_the_score_without_them(run, tiny_zip, capsys):
    analyse(run, tiny_zip, capsys)
    folder = familiar.find_analysis(run)
    (folder / gaussians.FILE).write_bytes(b"\x00" * 100)
    checker = familiar.checker(run)
    assert checker.gaussians is None and checker.calibration.method == familiar.METHOD


def test_a_shipped_run_gets_them_in_its_mirror(tiny_run, tiny_zip, tmp_path, monkeypatch, capsys):
    shipped = tmp_path / "checkpoints"
    shutil.copytree(tiny_run, shipped / tiny_run.name)
    monkeypatch.setenv("TINYVIZ_CHECKPOINTS", str(shipped))
    monkeypatch.setenv("TINYVIZ_CACHE", str(tmp_path / "cache"))
    before = sorted(p.relative_to(shipped) for p in shipped.rglob("*"))
    said = analyse(shipped / tiny_run.name, tiny_zip, capsys)
    assert sorted(p.relative_to(shipped) for p in shipped.rglob("*")) == before
    assert str(tmp_path / "cache") in said["gaussians"]
    assert familiar.checker(shipped / tiny_run.name).gaussians is not None


def test_the_classify_page_names_the_third_part(run, tiny_zip, monkeypatch, capsys):
    from pagetest import page
    from test_familiar import png

    analyse(run, tiny_zip, capsys)
    monkeypatch.setenv("TINYVIZ_DATA", str(tiny_zip))
    monkeypatch.setenv("TINYVIZ_RUNS", str(run.parent))
    _, noise = photos(np.random.default_rng(11), 1)
    at = page("pages/classify.py", run, tv_cls_runs=[str(run)])
    at.file_uploader(key="tv_cls_files").set_value([("noise.png", png(noise[0]), "image/png")])
    at.run()
    said = " ".join(c.value for c in at.caption)
    assert not at.exception and [w for w in at.warning if w.value == familiar.UNFAMILIAR]
    assert "typical of its nearest class" in said
