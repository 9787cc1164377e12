"""A training run SIGKILLed at every one of its file writes, then resumed, ends as if
nothing had happened: the same weights as an uninterrupted run, every epoch logged once,
no temporary file left, a run folder that opens.

The kill comes just before a write of the run folder's training records is published (its
temporary file written and synced, the rename not yet done), which is also just after the
previous one was published. (Progress reports and the analysis have tests of their own.)
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinyviz import runs
from tinyviz.cli import main

pytestmark = pytest.mark.slow


def counted(name: str, run: str) -> bool:
    """A write of the run folder's training records: not its analysis, not a progress report
    (`name` is an absolute path, `run` the run folder's with a trailing separator)."""
    analysed = name.startswith(run + "analysis" + os.sep)
    return name.startswith(run) and not analysed and os.path.basename(name) != "progress.json"


KILLER = (
    """
import os, signal, sys
k = int(sys.argv[1])
run = os.path.abspath(sys.argv[sys.argv.index("--out") + 1]) + os.sep
real, count = os.replace, [0]
"""
    + inspect.getsource(counted)
    + """
def replace(src, dst):
    if counted(os.path.abspath(os.fspath(dst)), run):
        count[0] += 1
        if count[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)

os.replace = replace
from tinyviz.cli import main
rc = main(sys.argv[2:])
print(f"WRITES {count[0]}", file=sys.stderr)
sys.exit(rc)
"""
)


def writes_of_a_whole_run(*args: str) -> int:
    """`tinyviz train *args` run to the end in this process, on one thread as the children
    are: the writes it made that `KILLER` counts (no interpreter to start, unlike theirs)."""
    run = os.path.abspath(args[args.index("--out") + 1]) + os.sep
    real, count, threads = os.replace, [0], torch.get_num_threads()

    def replace(src, dst):
        count[0] += counted(os.path.abspath(os.fspath(dst)), run)
        real(src, dst)

    os.replace = replace
    torch.set_num_threads(1)
    try:
        assert main(list(args)) == 0
    finally:
        os.replace = real
        torch.set_num_threads(threads)
    return count[0]


def tinyviz(*args: str, kill_at: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", KILLER, str(kill_at), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def train_args(data: Path, out: Path) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--model",
        "logreg",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "0.01",
        "--snapshots",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]


@pytest.fixture(scope="module")
def reference(tiny_zip, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    return out, writes_of_a_whole_run(*train_args(tiny_zip, out))


@pytest.fixture
def one_thread():
    """The same arithmetic in this process as in the children (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def kill_points(writes: int, spread: int = 6) -> list[int]:
    """Which writes to kill a run at: `spread` of them, evenly over all (the first and the
    last included), so CI stays within its time; TINYVIZ_ALL_KILLS=1 kills at every one
    (`bench/hardening.py --kills` does too)."""
    if os.environ.get("TINYVIZ_ALL_KILLS") == "1" or writes <= spread:
        return list(range(1, writes + 1))
    return sorted({round(1 + i * (writes - 1) / (spread - 1)) for i in range(spread)})


def test_every_write_survives_a_kill(tiny_zip, tmp_path, reference, capsys, one_thread):
    ref, writes = reference
    assert writes >= 10  # config, metrics, and per epoch: weights, snapshot, index, ...
    want = runs.load_weights(ref / "model.safetensors")
    for k in kill_points(writes):
        out = tmp_path / f"kill{k:02d}"
        killed = tinyviz(*train_args(tiny_zip, out), kill_at=k)
        assert killed.returncode == -9, (k, killed.stderr[-500:])
        # the recovery runs in this process: one interpreter start per kill, not two
        rc = main(["train", "--resume", str(out), "--data", str(tiny_zip), "--quiet"])
        err = capsys.readouterr().err
        if rc != 0:  # killed before the first epoch was saved
            assert "nothing to resume" in err and "train --out" in err, (k, err)
            rc = main([*train_args(tiny_zip, out), "--overwrite"])
        assert rc == 0, (k, capsys.readouterr().err[-500:])
        run = runs.open_run(out)
        assert [m.epoch for m in run.metrics] == [1, 2], k
        got = runs.load_weights(out / "model.safetensors")
        assert all(torch.allclose(want[n], got[n], atol=1e-6) for n in want), k
        assert not [p for p in out.rglob("*.tmp")], (k, sorted(out.rglob("*.tmp")))
        assert json.loads((out / "progress.json").read_text())["status"] == "done"
