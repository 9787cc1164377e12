"""Run folders that cannot be used are listed on the Models page with why, read with bounds,
and two runs of one name in two roots say which folder holds them (issue 19.4)."""

from __future__ import annotations

import shutil
import time

import pytest
import tampered
from pagetest import open_page

from tinyviz import runs
from tinyviz.runs import leaderboard, roots

NEW_CASES = [
    "config names 5,000 classes",
    "evals of 10^6 entries",
    "evals of 20,000 numbers",
    "metrics 200 MB",
    "config a loop of links",
    "run folder a loop of links",
    "snapshots a file",
    "analysis a file",
    "epochs a file",
]


def test_the_new_cases_are_in_the_corpus():
    assert set(NEW_CASES) <= set(tampered.CASES)


def test_a_scan_with_every_new_case_is_quick_and_lists_each(tiny_run, tmp_path):
    root = tmp_path / "runs"
    for i, name in enumerate(NEW_CASES):
        run = root / f"victim{i}"
        shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analysis"))
        tampered.CASES[name][0](run)
    start = time.monotonic()
    found = runs.scan([root])
    assert time.monotonic() - start < 5  # bounded reads: no 200 MB parse, no 10^6 entries
    assert not found.runs and len(found.broken) == len(NEW_CASES)
    rows = leaderboard.broken_rows(found.broken)
    assert all(r["why"] and "\n" not in r["why"] and r["in"] for r in rows)
    assert str(tmp_path) not in " ".join(r["in"] + r["why"] for r in rows)


def test_where_never_shows_a_full_server_path(tmp_path):
    assert roots.where(roots.PROJECT_ROOT / "checkpoints" / "x") == "checkpoints"
    shown = roots.where(tmp_path / "lab" / "runs" / "x")
    assert shown == "…/lab/runs"


@pytest.mark.slow
def test_models_page_lists_broken_runs_with_their_reason(app_env, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    shutil.copytree(app_env["run"], root / "good", ignore=shutil.ignore_patterns("analysis"))
    for name, case in (
        ("five-thousand", "config names 5,000 classes"),
        ("loop", "snapshots a file"),
    ):
        shutil.copytree(app_env["run"], root / name, ignore=shutil.ignore_patterns("analysis"))
        tampered.CASES[case][0](root / name)
    monkeypatch.setenv("TINYVIZ_RUNS", str(root))
    at = open_page("pages/models.py")
    assert not at.exception, [e.value for e in at.exception]
    assert any("2 run folder(s) cannot be used" in e.label for e in at.expander)
    table = next(d.value for d in at.dataframe if "why" in d.value.columns)
    why = dict(zip(table["run"], table["why"], strict=True))
    assert "5,000 classes" in why["five-thousand"] and "should be a folder" in why["loop"]


@pytest.mark.slow
def test_two_runs_of_one_name_say_which_folder_holds_them(app_env, tmp_path, monkeypatch):
    a, b = tmp_path / "lab" / "runs", tmp_path / "home" / "runs"
    for root in (a, b):
        shutil.copytree(app_env["run"], root / "same", ignore=shutil.ignore_patterns("analysis"))
    monkeypatch.setenv("TINYVIZ_RUNS", f"{a}:{b}")
    at = open_page("pages/models.py")
    picker = at.sidebar.selectbox(key="tv_run")
    shown = [o for o in picker.options if o.startswith("same")]  # options as shown
    assert len(shown) == 2 and len(set(shown)) == 2, shown
    assert any("in …/lab/runs" in s for s in shown) and any("in …/home/runs" in s for s in shown)
