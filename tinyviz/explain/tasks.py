"""Background tasks of the explain pages: a `tinyviz` command run as its own process.

The sanity check of a run's saliency methods takes minutes to hours on a CPU; a page's
script run must never pay for it, and a closed tab must not lose it. So the page starts
`python -m tinyviz sanity RUN ...` as a separate process (its own session: it outlives the
script run, the tab and the server), niced, and reads its progress back from files in the
run's analysis folder, named after the task:

- `<task>.lock`: the task's `runtime.background.Lock`, taken by the launcher and held by
  the process for its whole life (the kernel drops it when the process dies, so a killed
  task never leaves a stale lock, and two sessions asking at once launch one process);
- `<task>.launch`: what was launched (pid, start, command line);
- `<task>.progress.json`: the fraction done, a message, when it started, the last error;
- `<task>.log`: the process's output.

What a task computes is the caller's business: it knows where its result is cached and
calls the task "done" when that is there.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import io
from ..errors import CheckpointError, JobError
from ..runs.folder import RunFolder
from ..runtime import background
from . import mirror

WRITE_EVERY = 1.0  # seconds between progress writes
NICE = 10


@dataclass(frozen=True)
class TaskState:
    """What a page shows about a task: "running", "starting", "failed", "stopped", "none"."""

    state: str
    fraction: float = 0.0
    message: str = ""
    started: float | None = None
    error: str = ""

    @property
    def active(self) -> bool:
        return self.state in ("running", "starting")

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the speed so far (None before there is any progress)."""
        if self.state != "running" or not self.started or self.fraction <= 0.01:
            return None
        spent = time.time() - self.started
        return spent * (1 - self.fraction) / self.fraction


def _paths(run_dir: Path, task: str) -> dict[str, Path]:
    base = mirror.writable(RunFolder(Path(run_dir)).analysis, Path(run_dir))  # shipped: mirror
    return {part: base / f"{task}.{part}" for part in ("lock", "launch", "log")} | {
        "progress": base / f"{task}.progress.json"
    }


def files(run_dir: Path, task: str) -> background.JobFiles:
    paths = _paths(run_dir, task)
    return background.JobFiles(paths["lock"], paths["launch"], paths["log"])


# ------------------------------------------------------------- inside the task


@contextlib.contextmanager
def running(run_dir: Path, task: str) -> Iterator[Callable[[float, str], None]]:
    """Hold the task's lock while the body works; yields a progress callback that writes
    the progress file (at most once a second). Raises `JobError` if another process holds
    the lock. An exception in the body is recorded in the progress file, then re-raised."""
    paths = _paths(run_dir, task)
    with background.Lock(paths["lock"]).hold() as holding:
        if not holding:
            raise JobError(f"another process is already computing {task}")
        started, last = time.time(), [0.0]

        def report(fraction: float, message: str, force: bool = False) -> None:
            now = time.monotonic()
            if force or now - last[0] >= WRITE_EVERY:
                last[0] = now
                _write(paths, started, fraction, message)

        report(0.0, "starting", True)
        try:
            yield report
        except BaseException as e:
            _write(paths, started, 0.0, "failed", error=str(e).splitlines()[0] if str(e) else "")
            raise
        report(1.0, "done", True)


def _write(paths, started: float, fraction: float, message: str, error: str = "") -> None:
    record = {
        "pid": os.getpid(),
        "started": started,
        "updated": time.time(),
        "fraction": round(float(min(max(fraction, 0.0), 1.0)), 4),
        "message": message,
        "error": error,
    }
    with contextlib.suppress(OSError):
        io.write_json(paths["progress"], record)


# ---------------------------------------------------------------- from a page


def state(run_dir: Path, task: str) -> TaskState:
    """The task's state as its files and lock say now."""
    paths, job = _paths(run_dir, task), files(run_dir, task)
    info = _read(paths["progress"])
    started = info.get("started") if isinstance(info.get("started"), int | float) else None
    fraction = float(info.get("fraction", 0.0) or 0.0)
    message = str(info.get("message", ""))
    if job.running():  # held from the launch on: "starting" until the process reports
        if background.pid_alive(info.get("pid")):
            return TaskState("running", fraction, message, started)
        return TaskState("starting", 0.0, "starting", job.launched().started)
    if info.get("error"):
        return TaskState("failed", fraction, message, started, str(info["error"]))
    if info and message != "done":
        return TaskState("stopped", fraction, message, started)
    return TaskState("none")


def start(run_dir: Path, task: str, args: list[str]) -> TaskState:
    """Launch `python -m tinyviz ARGS` for the task unless it is running or starting."""
    with contextlib.suppress(background.Busy):  # running already: one process per task
        files(run_dir, task).launch([sys.executable, "-m", "tinyviz", *args], nice=NICE)
    return state(run_dir, task)


def log_tail(run_dir: Path, task: str, n: int = 3) -> list[str]:
    """The last `n` non-blank lines the task's process wrote."""
    return files(run_dir, task).log_tail(n)


def _read(path: Path) -> dict:
    try:
        info = io.read_json(path)
    except CheckpointError:
        return {}
    return info if isinstance(info, dict) else {}
