"""Photos of none of the classes (issue 21): the score, its calibration, `tinyviz classify`,
and the sentence on the Classify page."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import tinydata
from PIL import Image

from tinyviz.cli import main
from tinyviz.demo import images, predict
from tinyviz.explain import familiar
from tinyviz.runs.folder import open_run
from tinyviz.runs.weights import load_model


def bank_of(points: np.ndarray) -> familiar.Bank:
    """A bank of plain points: identity components, zero mean."""
    d = points.shape[1]
    return familiar.Bank.from_compact(points, np.eye(d), np.zeros(d))


def clusters(rng, n: int, centres: np.ndarray) -> np.ndarray:
    return centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.3, (n, centres.shape[1]))


def test_an_image_is_not_its_own_neighbour():
    bank = bank_of(np.array([[1.0, 0], [1.0, 0.01], [0, 1.0]]))
    alone = bank.kth_distance(bank.vectors, 1, leave_out=True)
    assert alone[0] == pytest.approx(alone[1]) and 0 < alone[0] < 0.02
    assert alone[2] == pytest.approx(np.sqrt(2 - 2 * 0.01 / np.hypot(1, 0.01)), rel=1e-3)
    assert bank.kth_distance(bank.vectors, 1)[2] == pytest.approx(0, abs=1e-3)  # itself


def test_the_calibration_flags_five_percent_of_its_images_and_of_new_ones_alike():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (20, 16))
    bank = bank_of(clusters(rng, 4000, centres))
    cal = familiar.calibrate(bank, 10)
    assert 0.04 <= cal.flagged <= 0.05 and cal.images == 4000 and cal.k == 10
    checker = familiar.Checker(bank, cal, folder=None)
    fresh = checker.scores(clusters(rng, 2000, centres)) > cal.threshold
    assert 0.02 <= fresh.mean() <= 0.09  # new images of the same classes: about 5% as well
    strangers = checker.scores(clusters(rng, 500, rng.normal(0, 1, (5, 16))))
    assert (strangers > cal.threshold).mean() >= 0.9


def test_k_stays_within_a_class():
    assert familiar.k_for(10_000, 200) == familiar.K
    assert familiar.k_for(24, 4) == 1 and familiar.k_for(2, 1) == 1


@pytest.fixture
def run(tiny_run, tmp_path):
    """A copy of the tiny run with its analysis: the calibration is written beside it."""
    copy = tmp_path / "runs" / tiny_run.name
    shutil.copytree(tiny_run, copy)
    return copy


def photos(rng, n: int = 30):
    known = [tinydata.class_image(i % 4, rng) for i in range(n)]
    noise = [rng.integers(0, 256, (64, 64, 3), np.uint8) for _ in range(n)]
    return known, noise


def test_the_score_tells_the_classes_from_noise(run):
    from sklearn.metrics import roc_auc_score

    checker = familiar.checker(run)
    model = load_model(open_run(run))
    known, noise = photos(np.random.default_rng(7))
    said = [predict.familiarity(model, x, checker) for x in known + noise]
    scores = [f.score for f in said]
    assert roc_auc_score([0] * len(known) + [1] * len(noise), scores) >= 0.95
    assert not any(f.familiar for f in said[len(known) :])  # every noise image is flagged
    assert np.mean([not f.familiar for f in said[: len(known)]]) <= 0.25
    assert said[-1].sentence == familiar.UNFAMILIAR and said[-1].as_json()["familiar"] is False


def test_the_calibration_is_stored_once_and_read_back(run):
    checker = familiar.checker(run)
    path = checker.folder / familiar.FILE
    saved = json.loads(path.read_text())
    assert saved["images"] == 24 and saved["k"] == 1 and saved["flagged"] <= 0.05 + 1 / 24
    saved["threshold"] = 123.0  # a stored calibration is read, not computed again
    path.write_text(json.dumps(saved))
    assert familiar.checker(run).calibration.threshold == 123.0
    path.write_text('{"format": 1}')  # one that does not fit is computed again
    assert familiar.checker(run).calibration == checker.calibration
    assert json.loads(path.read_text())["threshold"] == pytest.approx(checker.calibration.threshold)


def test_a_shipped_run_is_calibrated_in_its_mirror(tiny_run, tmp_path, monkeypatch):
    shipped = tmp_path / "checkpoints"
    shutil.copytree(tiny_run, shipped / tiny_run.name)
    monkeypatch.setenv("TINYVIZ_CHECKPOINTS", str(shipped))
    before = sorted(p.relative_to(shipped) for p in shipped.rglob("*"))
    checker = familiar.checker(shipped / tiny_run.name)
    assert (
        checker is not None and sorted(p.relative_to(shipped) for p in shipped.rglob("*")) == before
    )
    assert familiar.checker(shipped / tiny_run.name).calibration == checker.calibration


def test_without_an_analysis_there_is_no_verdict(run):
    shutil.rmtree(run / "analysis")
    assert familiar.find_analysis(run) is None and familiar.checker(run) is None
    model = load_model(open_run(run))
    assert predict.familiarity(model, np.zeros((64, 64, 3), np.uint8), None) is None


# ------------------------------------------------------------------ tinyviz classify


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def test_classify_gives_a_line_per_photo_and_one_error_line_per_bad_file(run, tmp_path, capsys):
    known, noise = photos(np.random.default_rng(3), 1)
    (tmp_path / "stripes.png").write_bytes(png(known[0]))
    (tmp_path / "noise.png").write_bytes(png(noise[0]))
    (tmp_path / "notes.png").write_text("just some text")
    names = ["stripes.png", "notes.png", "noise.png", "missing.jpg"]
    rc = main(["classify", *[str(tmp_path / n) for n in names], "--run", str(run), "--top", "3"])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert rc == 1 and [line["file"].rsplit("/", 1)[1] for line in lines] == names[::2]
    for line in lines:
        ps = [t["p"] for t in line["top"]]
        assert len(ps) == 3 and ps == sorted(ps, reverse=True) and 0 <= ps[-1] <= ps[0] <= 1
        assert line["run"] == run.name and isinstance(line["sure"], bool)
        assert isinstance(line["familiar_score"], float) and line["familiar_threshold"] > 0
    assert lines[0]["top"][0]["class"] == open_run(run).class_names[0]  # class 0's stripes
    assert lines[1]["familiar"] is False
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    assert "notes.png" in errors[0] and "missing.jpg" in errors[1]
    assert main(["classify", str(tmp_path / "stripes.png"), "--run", str(run)]) == 0


def test_classify_opens_the_dashboards_run_and_keeps_the_upload_limits(
    run, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("TINYVIZ_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.setenv("TINYVIZ_RUNS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("TINYVIZ_RUNS", str(run.parent))
    photo = tmp_path / "stripes.png"
    photo.write_bytes(png(photos(np.random.default_rng(4), 1)[0][0]))
    assert main(["classify", str(photo)]) == 0
    assert json.loads(capsys.readouterr().out)["run"] == run.name
    monkeypatch.setattr(images, "MAX_BYTES", photo.stat().st_size - 1)
    assert main(["classify", str(photo), str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "larger than" in err[0] and "not a file" in err[1]


# ------------------------------------------------------------------ the Classify page


@pytest.mark.slow
def test_classify_page_says_when_a_photo_is_unfamiliar(run, tiny_zip, monkeypatch):
    from pagetest import page

    monkeypatch.setenv("TINYVIZ_DATA", str(tiny_zip))
    monkeypatch.setenv("TINYVIZ_RUNS", str(run.parent))
    checker, model = familiar.checker(run), load_model(open_run(run))
    known, noise = photos(np.random.default_rng(11), 5)
    fine = next(x for x in known if predict.familiarity(model, x, checker).familiar)
    at = page("pages/classify.py", run, tv_cls_runs=[str(run)])
    shown = []
    for name, rgb in (("noise.png", noise[0]), ("stripes.png", fine)):
        at.file_uploader(key="tv_cls_files").set_value([(name, png(rgb), "image/png")])
        at.run()
        assert not at.exception
        shown.append([w.value for w in at.warning if w.value == familiar.UNFAMILIAR])
    assert shown == [[familiar.UNFAMILIAR], []]
