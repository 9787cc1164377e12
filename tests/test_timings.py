"""The server's own timing of each page's script run (`TINYVIZ_TIMINGS`, read by
bench/crowd.py): written only where asked, with how each run ended."""

from __future__ import annotations

import threading

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
