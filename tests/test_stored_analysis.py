"""A stored analysis that does not fit is treated as missing, and a shipped run stays as shipped.

Issue 19.3: a truncated file, arrays of the wrong shape, NaN or inf: one line saying so, and
the analysis is computed again (never Streamlit's error box). Issue 19.5: whatever the pages
derive from a shipped (or read-only) run goes to the cache (`explain.mirror`), keyed by the
weights, and the run folder stays byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import tampered

from tinyviz.errors import CheckpointError
from tinyviz.explain import analysis, embed, familiar, mirror, sanity, speed, tasks, train_features


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (links too) with a digest of its bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "link:" + str(p.readlink())
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


@pytest.fixture
def own_run(tmp_path, tiny_run) -> Path:
    """A copy of the tiny run with its analysis (as the trainer left it), in a plain root."""
    run = tmp_path / "runs" / "tiny-own"
    shutil.copytree(tiny_run, run)
    return run


@pytest.fixture
def shipped_run(tmp_path, tiny_run, monkeypatch) -> Path:
    """A copy of the tiny run with its analysis, inside the checkpoints root: shipped."""
    run = tmp_path / "checkpoints" / "tiny-shipped"
    shutil.copytree(tiny_run, run)
    monkeypatch.setenv("TINYVIZ_CHECKPOINTS", str(run.parent))
    monkeypatch.delenv(mirror.WRITE_SHIPPED, raising=False)
    shutil.rmtree(mirror.home(run), ignore_errors=True)  # same weights, same mirror: a fresh one
    return run


# ------------------------------------------------------------------ 19.3: bad files


@pytest.mark.parametrize("name", sorted(tampered.ANALYSIS_CASES))
def test_a_bad_stored_analysis_counts_as_missing_with_one_line(own_run, tiny_data, name):
    folder = analysis.cache_dir(own_run, tiny_data)
    assert analysis.is_complete(folder) and analysis.problem(folder) is None
    tampered.ANALYSIS_CASES[name](folder)
    why = analysis.problem(folder)
    assert why and "\n" not in why and len(why) < 200, why
    assert not analysis.is_complete(folder)
    assert analysis.available(own_run, tiny_data) is None
    with pytest.raises(CheckpointError):
        analysis.read(folder)
    note = analysis.rejected(own_run, tiny_data)
    assert note and why in note and "computed again" in note
    # computing it again replaces the bad files, and the note goes
    analysis.compute(own_run, tiny_data)
    assert analysis.is_complete(folder) and analysis.rejected(own_run, tiny_data) is None
    assert len(analysis.read(folder).outputs) == len(tiny_data.val.labels)


def test_a_good_analysis_is_checked_once_per_version_of_its_files(own_run, tiny_data, monkeypatch):
    folder = analysis.cache_dir(own_run, tiny_data)
    calls = []
    real = analysis._load_checked
    monkeypatch.setattr(analysis, "_load_checked", lambda f: calls.append(f) or real(f))
    analysis._PROBLEMS.clear()
    for _ in range(3):
        assert analysis.problem(folder) is None
    assert len(calls) == 1


# -------------------------------------------------------- 19.5: shipped runs stay as shipped


def test_a_run_in_the_checkpoints_root_or_not_writable_is_shipped(
    own_run, shipped_run, monkeypatch
):
    assert mirror.shipped(shipped_run) and not mirror.shipped(own_run)
    assert mirror.home(own_run) == own_run
    home = mirror.home(shipped_run)
    assert home.parent == mirror.cache_root() / mirror.MIRRORS
    assert home.name.startswith("tiny-shipped-") and len(home.name.split("-")[-1]) == 16
    monkeypatch.setattr(mirror.os, "access", lambda path, mode: False)  # root writes anywhere
    assert mirror.shipped(own_run)
    monkeypatch.undo()
    monkeypatch.setenv("TINYVIZ_CHECKPOINTS", str(shipped_run.parent))
    monkeypatch.setenv(mirror.WRITE_SHIPPED, "1")  # whoever refreshes what ships
    assert not mirror.shipped(shipped_run)


def test_what_is_derived_from_a_shipped_run_goes_to_the_cache(shipped_run, tiny_data):
    for shipped in shipped_run.rglob(familiar.FILE):  # copied from a run an earlier test of
        shipped.unlink()  # this worker calibrated: a shipped calibration is read in place
    before = snapshot(shipped_run)
    folder = analysis.cache_dir(shipped_run, tiny_data)
    assert folder.parent == shipped_run / "analysis"  # the shipped analysis is read in place
    an = analysis.read(folder)
    emb = embed.cached_embedding(shipped_run, tiny_data, "pca", 2, source=an)
    assert embed.stored_in(folder, "pca", 2) and len(emb.coords) == len(an.outputs)
    home = mirror.home(shipped_run)
    assert list(home.rglob("embed-pca2d-*.json"))
    speed.record(shipped_run, speed.Speed(0.5, 1.0, kind="cuda"))
    assert speed.measured(shipped_run, "cuda").forward == 0.5
    assert speed.measured(shipped_run, "cpu") is not None  # the shipped entry is still read
    train_features.compute(shipped_run, tiny_data, [0])
    assert train_features.cached_classes(shipped_run, tiny_data) == [0]
    assert len(train_features.features(shipped_run, tiny_data, [0])[0])
    assert familiar.checker(shipped_run) is not None  # its calibration is stored once
    assert list(home.rglob(familiar.FILE))
    assert tasks.files(shipped_run, "sanity").lock.parent == home / "analysis"
    assert sanity.report_path(shipped_run).parent == shipped_run / "analysis"
    assert snapshot(shipped_run) == before


def test_a_shipped_run_on_other_data_computes_into_its_mirror(shipped_run, tiny_data):
    shutil.rmtree(shipped_run / "analysis")
    (shipped_run / "analysis").mkdir()
    before = snapshot(shipped_run)
    folder = analysis.compute(shipped_run, tiny_data)
    assert mirror.home(shipped_run) in folder.parents
    assert analysis.available(shipped_run, tiny_data) == folder
    assert analysis.read(folder).outputs.top1 >= 0
    assert snapshot(shipped_run) == before


def test_a_bad_shipped_analysis_is_recomputed_in_the_mirror(shipped_run, tiny_data):
    folder = analysis.cache_dir(shipped_run, tiny_data)
    tampered.ANALYSIS_CASES["preds of half the images"](folder)
    before = snapshot(shipped_run)
    assert "computed again" in analysis.rejected(shipped_run, tiny_data)
    fresh = analysis.compute(shipped_run, tiny_data)
    assert fresh != folder and mirror.home(shipped_run) in fresh.parents
    assert analysis.available(shipped_run, tiny_data) == fresh
    assert np.asarray(analysis.read(fresh).outputs.preds).shape == tiny_data.val.labels.shape
    assert snapshot(shipped_run) == before


# ------------------------------------------------------------------ the pages


EXPLAIN_PAGES = [
    "pages/confusion.py",
    "pages/channels.py",
    "pages/saliency.py",
    "pages/embeddings.py",
    "pages/compare.py",
]


@pytest.fixture
def shipped_env(app_env, shipped_run, tmp_path, monkeypatch):
    """The app with the shipped-like run as its only run."""
    (tmp_path / "none").mkdir()
    monkeypatch.setenv("TINYVIZ_RUNS", str(tmp_path / "none"))
    monkeypatch.setenv("TINYVIZ_RUNS_DIR", str(tmp_path / "none"))
    return shipped_run


@pytest.mark.slow
def test_visiting_every_explain_page_leaves_a_shipped_run_as_it_was(shipped_env):
    from pagetest import ok, open_page

    before = snapshot(shipped_env)
    for path in EXPLAIN_PAGES:
        at = ok(open_page(path, shipped_env), errors=True)
        ok(at.run(), errors=True)  # a second run draws the deferred sections
    _stop_tasks(shipped_env)
    assert snapshot(shipped_env) == before
    assert list(mirror.home(shipped_env).rglob("embed-*.json"))  # the maps went to the cache


@pytest.mark.slow
@pytest.mark.parametrize("path", ["pages/confusion.py", "pages/embeddings.py"])
def test_a_bad_stored_analysis_gets_a_line_not_an_error_box(shipped_env, tiny_data, path):
    from pagetest import ok, open_page, wait_for_analysis

    folder = analysis.cache_dir(shipped_env, tiny_data)
    tampered.ANALYSIS_CASES["preds of half the images"](folder)
    at = ok(open_page(path, shipped_env))
    warned = [w.value for w in at.warning]
    assert any("stored analysis cannot be used" in w and "computed again" in w for w in warned)
    wait_for_analysis(shipped_env, tiny_data)  # the background job, into the cache
    at = ok(open_page(path, shipped_env))
    assert not any("cannot be used" in w.value for w in at.warning)


def _stop_tasks(run: Path) -> None:
    """Stop the background tasks the pages may have started (they write to the mirror)."""
    import contextlib

    from tinyviz.runtime import background

    for task in ("sanity", "train-features"):
        with contextlib.suppress(OSError, ValueError):
            background.terminate(tasks.files(run, task).launched().pid)
