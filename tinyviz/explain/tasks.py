"""Background tasks of a run: a `tinyviz` command run as its own process for the pages.

The sanity check of a run's saliency methods takes minutes to hours on a CPU and training
features a minute; a page's script run must never pay for them, and a closed tab must not
lose them. So the page starts `python -m tinyviz sanity RUN ...` (or `train-features`) as a
`runtime.tasks.Task` named after it, whose files live beside the run's analysis (a shipped
run's in its mirror, `explain.mirror`): `<task>.lock`, `.launch`, `.log`, `.progress.json`.
The command does its work inside `running`, so a command typed by hand and one a page
launched are the same task: one process at a time, progress every page can read.

What a task computes is the caller's business: it knows where its result is cached and does
not ask the task once that is there.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import JobError
from ..runs.folder import RunFolder
from ..runtime import background, pids
from ..runtime.tasks import NICE, Report, Task, TaskState
from . import mirror

__all__ = [
    "JobError",
    "Task",
    "TaskState",
    "files",
    "launched_args",
    "log_tail",
    "running",
    "start",
    "state",
]


def task(run_dir: Path, name: str) -> Task:
    """The task `name` of the run (its files beside the run's analysis, or its mirror's)."""
    base = mirror.writable(RunFolder(Path(run_dir)).analysis, Path(run_dir))
    return Task(base, name)


def files(run_dir: Path, name: str) -> background.JobFiles:
    return task(run_dir, name).files


@contextlib.contextmanager
def running(run_dir: Path, name: str) -> Iterator[Report]:
    """Hold the task's lock while the body works; yields its progress callback
    `(fraction, message)`. `JobError` when another process is already doing it; an
    exception in the body is recorded in the progress file, then re-raised."""
    with task(run_dir, name).working() as report:
        yield report


def state(run_dir: Path, name: str) -> TaskState:
    """The task's state as its files and lock say now."""
    return task(run_dir, name).state()


def start(run_dir: Path, name: str, args: list[str]) -> TaskState:
    """Launch `python -m tinyviz ARGS` for the task unless it is running or starting."""
    return task(run_dir, name).start([sys.executable, "-m", "tinyviz", *args], nice=NICE)


def launched_args(run_dir: Path, name: str) -> tuple[str, ...]:
    """The `tinyviz` arguments of the process doing the task now, when `start` launched it
    (what the launcher wrote into the lock it holds); () when none runs, or when the
    process holding the task was started by hand: it takes the lock without writing into
    it, so the file still names an earlier launch, whose process has ended."""
    who = files(run_dir, name).holder()  # {} unless the lock is held now
    cmd, pid = who.get("command"), who.get("pid")
    if not isinstance(cmd, list) or not isinstance(pid, int) or not pids.alive(pid):
        return ()
    return tuple(map(str, cmd[3:]))  # after `python -m tinyviz`


def log_tail(run_dir: Path, name: str, n: int = 3) -> list[str]:
    """The last `n` non-blank lines the task's process wrote."""
    return task(run_dir, name).log_tail(n)
