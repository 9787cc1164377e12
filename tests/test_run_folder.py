"""Tampered run folders (tests/tampered.py): each is a listed, explained run, never a crash.

Every case must give a one-line reason, quickly (no FIFO hangs, no endless /dev/zero), without
reading anything outside the folder; good runs beside a broken one are still listed, and the
command line refuses the broken run with one line and exit status 1.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import tampered

from tinyviz import runs
from tinyviz.cli import main
from tinyviz.errors import CheckpointError

NAMES = sorted(tampered.CASES)


@pytest.fixture(scope="module")
def good(tiny_run) -> Path:
    return tiny_run


def broken_copy(good: Path, tmp_path: Path, name: str) -> Path:
    run = tmp_path / "runs" / "victim"
    shutil.copytree(good, run, ignore=shutil.ignore_patterns("analysis"))
    tampered.CASES[name][0](run)
    return run


def _files(run: Path) -> dict[str, object]:
    """Each entry of a run folder and what it is: its bytes, or its kind."""
    out: dict[str, object] = {}
    if run.is_symlink():  # the folder itself replaced by a link
        return {".": "link"}
    for p in sorted(run.rglob("*")):
        rel = p.relative_to(run).as_posix()
        if p.is_symlink() or not p.is_file():
            out[rel] = "link" if p.is_symlink() else "dir" if p.is_dir() else "special"
        else:
            out[rel] = p.read_bytes()
    return out


def test_every_case_breaks_something_and_every_parsed_file_is_broken(good, tmp_path):
    """A case that changed nothing would pass the test above for the wrong reason; a file
    `open_run` or `load_model` reads that no case touches would go untested."""
    plain = tmp_path / "plain"
    shutil.copytree(good, plain, ignore=shutil.ignore_patterns("analysis"))  # as broken_copy
    before, touched = _files(plain), set()
    for i, name in enumerate(NAMES):
        run = broken_copy(good, tmp_path / str(i), name)
        after = _files(run)
        changed = {f for f in before.keys() | after.keys() if before.get(f) != after.get(f)}
        assert changed, f"{name!r} leaves the run as it was"
        touched |= changed
        run.unlink() if run.is_symlink() else shutil.rmtree(run)
    parsed = {
        runs.RunFolder.CONFIG,
        runs.RunFolder.METRICS,
        runs.RunFolder.WEIGHTS,
        runs.RunFolder.EVALS,
        f"{runs.RunFolder.SNAPSHOTS}/{runs.RunFolder.INDEX}",
    }
    assert parsed <= touched, parsed - touched


@pytest.mark.parametrize("name", NAMES)
def test_a_tampered_run_is_explained_in_one_line(good, tmp_path, name):
    run = broken_copy(good, tmp_path, name)
    shutil.copytree(
        good, tmp_path / "runs" / "neighbour", ignore=shutil.ignore_patterns("analysis")
    )
    where = tampered.CASES[name][1]
    start = time.monotonic()
    found = runs.scan([tmp_path / "runs"])
    if where == "scan":
        assert [b.name for b in found.broken] == ["victim"], name
        reason = found.broken[0].reason
        assert str(tmp_path) not in reason  # the sidebar shows it to visitors: no server path
        assert [r.name for r in found.runs] == ["neighbour"]  # the rest goes on
    else:
        assert sorted(r.name for r in found.runs) == ["neighbour", "victim"]
        with pytest.raises(CheckpointError) as e:
            runs.load_model(run)
        reason = str(e.value)
    assert reason and "\n" not in reason and len(reason) < 400, reason
    assert time.monotonic() - start < 30  # a FIFO or /dev/zero would hang or run for minutes


@pytest.mark.parametrize(
    "name", [n for n in NAMES if "FIFO" in n or "dev/zero" in n or "passwd" in n or "outside" in n]
)
def test_the_command_line_refuses_it_in_one_line(good, tmp_path, name, capsys):
    run = broken_copy(good, tmp_path, name)
    assert main(["evaluate", str(run), "--data", "/nonexistent"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in err and "root:" not in err  # nothing of /etc/passwd is shown


def test_non_float_weights_are_named(good, tmp_path):
    run = broken_copy(good, tmp_path, "weights as int64")
    with pytest.raises(CheckpointError, match="is torch.int64, the model wants torch.float32"):
        runs.load_model(run)


def test_snapshot_names_never_leave_the_folder(good):
    folder = runs.RunFolder(good)
    for bad in ("../x.safetensors", "/etc/passwd", "a/b.safetensors", ".hidden", ""):
        with pytest.raises(CheckpointError, match="not a snapshot file name"):
            folder.snapshot(bad)


def test_the_scan_fingerprint_changes_with_every_file_a_run_is_made_of(tiny_run, tmp_path):
    """Pages reuse the last scan while the fingerprint is unchanged (`pages/_state`): every
    change that would give another scan must change it."""
    from tinyviz import io

    root = tmp_path / "runs"
    run = root / "r"
    shutil.copytree(tiny_run, run)
    marks = [runs.scan_fingerprint([root])]
    assert runs.scan_fingerprint([root]) == marks[0]  # nothing changed
    folder = runs.RunFolder(run)
    io.write_json(folder.evals, [])  # rewritten by renaming a new file into place
    marks.append(runs.scan_fingerprint([root]))
    with folder.metrics.open("a") as f:  # appended to, as training does
        f.write("\n")
    marks.append(runs.scan_fingerprint([root]))
    shutil.copytree(run, root / "another")
    marks.append(runs.scan_fingerprint([root]))
    shutil.copy(folder.weights, tmp_path / "w")
    os.replace(tmp_path / "w", folder.weights)  # new weights, same size
    marks.append(runs.scan_fingerprint([root]))
    assert len(set(marks)) == len(marks)
