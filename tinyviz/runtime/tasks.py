"""Background tasks: one piece of slow work, named, done once by a process of its own, that
every session, every reload and the command line find through files.

A task lives in a folder as four files named after it (`Task.files`):

- `<name>.lock`: the `background.Lock` held by the process doing the work for its whole
  life (taken by the launcher and handed to the child, so it is held from the child's first
  instruction; the kernel drops it when the process dies, so it is never stale);
- `<name>.launch`: what was launched (pid, start, command line);
- `<name>.log`: the process's output;
- `<name>.progress.json`: how far it is (`TaskState`: a fraction, a message, when it started,
  the worker's own estimate of the time left, the error it ended with).

Whoever does the work, a launched process, a worker of a `background.Queue` or a command
typed by hand, does it inside `Task.working()`: it holds the lock (or waits for it, `wait`)
and reports through the callback it is given. Whoever wants the work done calls
`Task.start(cmd)` (a second caller, or one while the work runs, launches nothing) and reads
`Task.state()`. A request waiting in a queue is no process yet: its place is the queue's to
say (`explain.work.status` builds its "waiting" state).

What a task computes, and where its result lies, is the caller's business: it knows when
the result is there and does not ask the task then.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import io
from ..errors import CheckpointError, JobError
from . import background

WRITE_EVERY = 1.0  # seconds between progress writes (a forced one is written at once)
# Background work (heavy explanations, maps, analyses, training) takes the lowest CPU
# priority: the server comes first, and so does any browser on the same machine (the
# poster's own screen; in bench/crowd.py, the visitors' browsers, niced to 19 as well). At
# 10 the queue's worker outweighed those browsers seven to one, and a visitor's top-5
# waited for its own browser to be given the CPU.
NICE = 19
_now = time.time  # the clock of progress files (tests replace it)


class Report:
    """The progress callback a task's body gets: `report(fraction, message, ...)`."""

    def __init__(self, task: Task, started: float) -> None:
        self._task, self.started, self._last = task, started, float("-inf")

    def __call__(
        self,
        fraction: float,
        message: str = "",
        force: bool = False,
        *,
        seconds_left: float | None = None,
    ) -> None:
        """Record how far the work is (at most every `WRITE_EVERY` unless `force`).
        `seconds_left`: the worker's own estimate, when it knows better than the rate so
        far (a decode knows its images per second after the first chunk)."""
        now = time.monotonic()
        if force or now - self._last >= WRITE_EVERY:
            self._last = now
            self._task._write(self.started, fraction, message, seconds_left)


@dataclass(frozen=True)
class TaskState:
    """What a page shows about a task.

    `state`: "running", "waiting" (in a queue, for a worker; `place`: requests before it),
    "starting" (launched, no report yet), "failed" (`error` says why), "stopped" (killed
    or stopped before the end), "done" (the process said so; the caller checks its result)
    or "none" (never started, or its files were cleared).
    """

    state: str
    fraction: float = 0.0
    message: str = ""
    started: float | None = None
    updated: float | None = None
    error: str = ""
    place: int | None = None
    seconds_left: float | None = None  # the worker's own estimate, when it gave one

    @property
    def active(self) -> bool:
        return self.state in ("running", "waiting", "starting")

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left: the worker's estimate (counted down since it was written), else the
        rate so far (None before there is any progress to judge by)."""
        if self.state != "running":
            return None
        if self.seconds_left is not None:
            since = _now() - self.updated if self.updated else 0.0
            return max(self.seconds_left - max(since, 0.0), 0.0)
        if not self.started or self.fraction <= 0.01:
            return None
        spent = _now() - self.started
        return spent * (1 - self.fraction) / self.fraction


@dataclass(frozen=True)
class Task:
    """One task's files: `folder/<name>.lock`, `.launch`, `.log`, `.progress.json`."""

    folder: Path
    name: str

    @property
    def files(self) -> background.JobFiles:
        base = Path(self.folder) / self.name
        return background.JobFiles(
            base.with_name(f"{self.name}.lock"),
            base.with_name(f"{self.name}.launch"),
            base.with_name(f"{self.name}.log"),
        )

    @property
    def progress(self) -> Path:
        return Path(self.folder) / f"{self.name}.progress.json"

    # ------------------------------------------------------------- doing the work

    @contextlib.contextmanager
    def working(self, *, wait: bool = False) -> Iterator[Report]:
        """Hold the task's lock while the body works; yields its `Report`. Another holder
        means another process is doing this work: `JobError`, or with `wait`, wait for it
        to finish (the caller then finds the result and need not work). An exception in
        the body is recorded (its first line) and re-raised."""
        with background.Lock(self.files.lock).hold(wait) as holding:
            if not holding:
                raise JobError(f"another process is already working on {self.name}")
            report = Report(self, _now())
            report(0.0, "starting", force=True)
            try:
                yield report
            except BaseException as e:
                self.fail(str(e) or type(e).__name__, report.started)
                raise
            report(1.0, "done", force=True)

    def fail(self, why: str, started: float | None = None) -> None:
        """Record that the work failed, and why (its first line): what `state` says next,
        until the task is cleared. For a worker that saw another one die on this task too."""
        self._write(started or _now(), 0.0, "failed", None, error=why.splitlines()[0])

    def _write(self, started, fraction, message, seconds_left, error: str = "") -> None:
        record = {
            "pid": os.getpid(),
            "started": started,
            "updated": _now(),
            "fraction": round(float(min(max(fraction, 0.0), 1.0)), 4),
            "message": message,
            "seconds_left": None if seconds_left is None else round(float(seconds_left), 2),
            "error": error,
        }
        with contextlib.suppress(OSError):
            io.write_json(self.progress, record)

    # ---------------------------------------------------------- asking for it

    def start(self, cmd: list[str], *, nice: int = NICE) -> TaskState:
        """Launch `cmd` for this task unless a process holds its lock (it runs, or a command
        typed by hand does the same work): one process per task, however many ask."""
        with contextlib.suppress(background.Busy):
            self.files.launch(cmd, nice=nice)
        return self.state()

    def state(self) -> TaskState:
        """The task as its files and its lock say now."""
        info = self._read()
        started = _number(info.get("started"))
        updated = _number(info.get("updated"))
        fraction = _number(info.get("fraction")) or 0.0
        message = str(info.get("message", ""))
        left = _number(info.get("seconds_left"))
        if self.files.running():  # held from the launch on: "starting" until it reports
            ended = message == "done" or info.get("error")  # an earlier worker's last word
            if ended or not background.pid_alive(info.get("pid")):
                return TaskState("starting", 0.0, "starting", self._launched() or None)
            return TaskState("running", fraction, message, started, updated, "", None, left)
        if info.get("error"):
            return TaskState("failed", fraction, message, started, updated, str(info["error"]))
        if not info:
            failed = self.files.failed()  # died before its first report: say why if it did
            return TaskState("failed", error=failed) if failed else TaskState("none")
        if message == "done":
            return TaskState("done", 1.0, message, started, updated)
        return TaskState("stopped", fraction, message, started, updated)

    def _launched(self) -> float:
        return self.files.launched().started or 0.0

    def _read(self) -> dict:
        try:
            info = io.read_json(self.progress)
        except CheckpointError:
            return {}
        return info if isinstance(info, dict) else {}

    def stop(self, wait: float = 15.0) -> TaskState:
        """SIGTERM to the task's process group, if it runs."""
        self.files.stop(wait)
        return self.state()

    def log_tail(self, n: int = 3) -> list[str]:
        return self.files.log_tail(n)

    def clear(self) -> bool:
        """Remove the task's files unless it runs (its result is the caller's): True when
        nothing of it is left."""
        if self.files.running():
            return False
        for path in (self.progress, self.files.record, self.files.log, self.files.lock):
            with contextlib.suppress(OSError):
                path.unlink()
        return True


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


__all__ = ["NICE", "Report", "Task", "TaskState"]
