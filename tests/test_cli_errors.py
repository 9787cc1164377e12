"""Every careless command of tests/badcommands.py: one line, a non-zero exit, no work done."""

from __future__ import annotations

import shutil

import badcommands
import pytest

from tinyviz.cli import main


@pytest.fixture
def places(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analysis"))
    (tmp_path / "file.txt").write_text("not a folder")
    return {"run": str(run), "file": str(tmp_path / "file.txt"), "new": str(tmp_path / "new")}


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own refusals
        return int(e.code)


def test_there_are_at_least_30():
    assert len(badcommands.COMMANDS) >= 30


@pytest.mark.parametrize("command", badcommands.COMMANDS, ids=" ".join)
def test_a_bad_command_gets_one_line(command, places, capsys, tmp_path):
    argv = [part.format(**places) for part in command]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc = run_cli(argv)
    out, err = capsys.readouterr()
    assert rc != 0 and out == "", (argv, rc, out)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    if argv[0] != "data":  # refused before the data set was even looked at
        assert "/nonexistent" not in lines[0], (argv, err)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, argv  # nothing written
