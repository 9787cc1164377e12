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


def logits_for(doubts: np.ndarray, classes: int = 20) -> np.ndarray:
    """Logits whose top softmax probability is 1 - doubt (the rest spread evenly)."""
    d = np.clip(np.asarray(doubts, np.float64), 1e-6, (classes - 1) / classes)
    probs = np.repeat((d / (classes - 1))[:, None], classes, 1)
    probs[:, 0] = 1 - d
    return np.log(probs)


def test_the_calibration_flags_five_percent_of_its_images_and_of_new_ones_alike():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (20, 16))
    bank = bank_of(clusters(rng, 4000, centres))
    cal = familiar.calibrate(bank, rng.uniform(0.1, 0.5, 4000), k=10)
    assert 0.04 <= cal.flagged <= 0.05 and cal.images == 4000 and cal.k == 10
    assert cal.doubt_mean == pytest.approx(0.3, abs=0.01) and cal.distance_sd > 0
    checker = familiar.Checker(bank, cal, folder=None)
    fresh = checker.scores(clusters(rng, 2000, centres), logits_for(rng.uniform(0.1, 0.5, 2000)))
    assert 0.02 <= (fresh > cal.threshold).mean() <= 0.09  # new images of the classes: ~5%
    far = clusters(rng, 500, rng.normal(0, 1, (5, 16)))
    strangers = checker.scores(far, logits_for(rng.uniform(0.1, 0.5, 500)))
    assert (strangers > cal.threshold).mean() >= 0.9  # far from every class, however sure


def test_both_parts_count_a_far_photo_and_a_doubtful_one_are_both_flagged():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (20, 16))
    bank = bank_of(clusters(rng, 4000, centres))
    checker = familiar.Checker(
        bank, familiar.calibrate(bank, rng.uniform(0.1, 0.5, 4000), k=10), folder=None
    )
    near = centres[:1] + rng.normal(0, 0.3, (1, 16))
    sure = logits_for(np.array([0.3]))
    assert checker.judge(near[0], sure[0]).familiar
    lost = checker.judge(near[0], np.zeros(20))  # a flat softmax: 1/20 on every class
    assert not lost.familiar and lost.confidence == pytest.approx(0.05)
    confident_stranger = checker.judge(-8 * centres[0], logits_for(np.array([0.01]))[0])
    assert not confident_stranger.familiar and confident_stranger.confidence > 0.98
    assert familiar.doubt(np.array([0.0, 0.0]))[0] == pytest.approx(0.5)


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
    # the tiny model is unsure of one class in four (top probability about 0.4 against 0.6 to
    # 0.8 for the others), and its images are flagged: at most that class
    assert np.mean([not f.familiar for f in said[: len(known)]]) <= 0.3
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


WEAK = familiar.Measured(auroc=0.5, caught=0.08, photos=240, textures=0.3, noise=0.1)
GOOD = familiar.Measured(auroc=0.88, caught=0.37, photos=240, textures=0.87, noise=0.85)


def test_the_benchs_measurement_is_kept_with_its_calibration_and_a_weak_one_gives_no_verdict(
    run,
):
    checker = familiar.checker(run)
    assert checker.measured is None  # not measured: the verdict stands
    model = load_model(open_run(run))
    noise = photos(np.random.default_rng(5), 1)[1][0]
    unmeasured = predict.familiarity(model, noise, checker)
    assert unmeasured.verdict is False and unmeasured.as_json()["auroc"] is None
    familiar.store_measured(checker.folder, checker.calibration, WEAK, run)
    weak = familiar.checker(run)
    assert weak.measured == WEAK and weak.calibration == checker.calibration
    said = predict.familiarity(model, noise, weak)
    assert said.score == pytest.approx(unmeasured.score) and not said.familiar
    assert said.verdict is None and said.sentence == "" and not said.can_tell
    assert said.as_json() == {**unmeasured.as_json(), "familiar": None, "auroc": 0.5}
    familiar.store_measured(checker.folder, checker.calibration, GOOD, run)
    assert predict.familiarity(model, noise, familiar.checker(run)).verdict is False
    # a measurement belongs to its calibration: recomputed, the calibration drops it
    path = checker.folder / familiar.FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": 1}))
    assert familiar.checker(run).measured is None
    broken = {**checker.calibration.as_json(), "measured": {"auroc": "high", "photos": 3}}
    path.write_text(json.dumps(broken))
    assert familiar.checker(run).measured is None


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
        assert line["familiar_auroc"] is None  # not measured by the bench
    assert lines[0]["top"][0]["class"] == open_run(run).class_names[0]  # class 0's stripes
    assert lines[1]["familiar"] is False
    errors = err.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    assert "notes.png" in errors[0] and "missing.jpg" in errors[1]
    assert main(["classify", str(tmp_path / "stripes.png"), "--run", str(run)]) == 0


def test_classify_says_null_where_the_model_cannot_tell(run, tmp_path, capsys):
    checker = familiar.checker(run)
    familiar.store_measured(checker.folder, checker.calibration, WEAK, run)
    (tmp_path / "noise.png").write_bytes(png(photos(np.random.default_rng(6), 1)[1][0]))
    assert main(["classify", str(tmp_path / "noise.png"), "--run", str(run)]) == 0
    out, err = capsys.readouterr()
    line = json.loads(out)
    assert line["familiar"] is None and line["familiar_auroc"] == 0.5
    assert line["familiar_score"] > line["familiar_threshold"]  # the score is still given
    assert err.startswith(f"note: {run.name} cannot tell") and len(err.splitlines()) == 1


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
    assert main(["classify", str(photo), "--run", run.name]) == 0  # the name it printed
    assert json.loads(capsys.readouterr().out)["run"] == run.name
    assert main(["classify", str(photo), "--run", "no-such-run"]) == 1
    assert capsys.readouterr().err.startswith("error: no run folder no-such-run")
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
    # where the bench found the score no use on this model, no verdict: it says it cannot tell
    familiar.store_measured(checker.folder, checker.calibration, WEAK, run)
    at = page("pages/classify.py", run, tv_cls_runs=[str(run)])
    at.file_uploader(key="tv_cls_files").set_value([("noise.png", png(noise[0]), "image/png")])
    at.run()
    said = " ".join(c.value for c in at.caption)
    assert not at.exception and not [w for w in at.warning if w.value == familiar.UNFAMILIAR]
    assert "This model cannot tell" in said and "flagged only 8%" in said


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "source", "uploader"),
    [
        ("pages/saliency.py", {"tv_sal_source": "upload"}, "tv_sal_file"),
        ("pages/embeddings.py", {}, "tv_emb_upload"),
    ],
)
def test_uploads_on_saliency_and_embeddings_say_when_unfamiliar(
    run, tiny_zip, monkeypatch, path, source, uploader
):
    from pagetest import page

    monkeypatch.setenv("TINYVIZ_DATA", str(tiny_zip))
    monkeypatch.setenv("TINYVIZ_RUNS", str(run.parent))
    checker, model = familiar.checker(run), load_model(open_run(run))
    known, noise = photos(np.random.default_rng(11), 5)
    fine = next(x for x in known if predict.familiarity(model, x, checker).familiar)
    at = page(path, run, **source)
    shown = []
    for name, rgb in (("noise.png", noise[0]), ("stripes.png", fine)):
        at.file_uploader(key=uploader).set_value([(name, png(rgb), "image/png")])
        at.run()
        assert not at.exception
        warned = [w.value for w in at.warning if w.value == familiar.UNFAMILIAR]
        said = " ".join(c.value for c in at.caption)
        shown.append((warned, "Unfamiliarity" in said))
    assert shown == [([familiar.UNFAMILIAR], True), ([], False)]
