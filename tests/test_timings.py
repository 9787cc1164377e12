"""The server's own timing of each page's script run (`TINYVIZ_TIMINGS`, read by
bench/crowd.py): written only where asked, with how each run ended."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tinyviz.runtime import timings


def test_nothing_is_written_unless_asked(tmp_path, monkeypatch):
    monkeypatch.delenv(timings.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with timings.timed("Models"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_each_run_is_one_line_and_says_how_it_ended(tmp_path, monkeypatch):
    where = tmp_path / "timings.jsonl"
    monkeypatch.setenv(timings.ENV, str(where))
    with timings.timed("Classify"):
        pass
    with pytest.raises(KeyboardInterrupt), timings.timed("Confusion"):
        raise KeyboardInterrupt  # as Streamlit's stop of a script run: not an Exception
    threads = [
        threading.Thread(target=timings.record, args=("Saliency", 0.5), kwargs={"ended": "end"})
        for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    where.write_text(where.read_text() + '{"page": "torn')  # a line cut off mid-write
    rows = timings.read(where)
    assert [(r["page"], r["ended"]) for r in rows[:2]] == [
        ("Classify", "end"),
        ("Confusion", "KeyboardInterrupt"),
    ]
    assert len(rows) == 22 and all(r["seconds"] >= 0 for r in rows)


def test_a_block_inside_a_run_is_part_of_it_and_alone_is_a_run_of_its_own(tmp_path, monkeypatch):
    """Classify's photos are a fragment timed inside the page: once per whole run of the
    page, and once per run of the fragment alone (a new photo)."""
    where = tmp_path / "timings.jsonl"
    monkeypatch.setenv(timings.ENV, str(where))
    with timings.timed("Classify"), timings.timed("Classify"):  # the whole page
        pass
    with timings.timed("Classify"):  # the fragment alone
        pass
    with pytest.raises(ValueError), timings.timed("Saliency"), timings.timed("inner"):
        raise ValueError
    with timings.timed("Models"):  # a run after one that failed is timed again
        pass
    rows = timings.read(where)
    assert [(r["page"], r["ended"]) for r in rows] == [
        ("Classify", "end"), ("Classify", "end"), ("Saliency", "ValueError"), ("Models", "end")
    ]  # fmt: skip


def test_app_py_runs_as_a_spawned_processs_main_module(tmp_path):
    """After a page test, app.py is the test process's main module, and a process pool
    started then (the data set's decoders) runs it again, outside any server, in each new
    process: it must get through (the timing of a page without a title included)."""
    root = Path(__file__).resolve().parents[1]
    # then straight out, as a pool's worker never ends its interpreter with app.py's warm-up
    # threads mid-import (a C++ thread torn down at exit aborts the process now and then)
    code = "import os, runpy; runpy.run_path('app.py', run_name='__mp_main__'); os._exit(0)"
    env = {**os.environ, timings.ENV: str(tmp_path / "timings.jsonl")}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
