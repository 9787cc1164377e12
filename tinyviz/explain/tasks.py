"""Background tasks of the explain pages: a `tinyviz` command run as its own process.

The sanity check of a run's saliency methods takes minutes to hours on a CPU; a page's
script run must never pay for it, and a closed tab must not lose it. So the page starts
`python -m tinyviz sanity RUN ...` as a separate process (its own session: it outlives the
script run, the tab and the server), niced, and reads its progress back from files in the
run's analysis folder, named after the task:

- `<task>.lock`: the process holds an exclusive `flock` on it while it works (the kernel
  drops it when the process dies, so a killed task never leaves a stale lock);
- `<task>.progress.json`: the fraction done, a message, when it started, the last error;
- `<task>.log`: the process's output.

`start` is serialised by a second lock (`<task>.launch`), so two sessions asking at once
launch one process. What a task computes is the caller's business: it knows where its
result is cached and calls the task "done" when that is there.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import io
from ..errors import CheckpointError, JobError
from ..runs.folder import RunFolder
from ..runs.jobs import spawn

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: tasks run, without the cross-process lock
    fcntl = None  # type: ignore[assignment]

STARTING_GRACE = 120.0  # seconds a launched process may take to import torch and lock
WRITE_EVERY = 1.0  # seconds between progress writes
NICE = 10
_CHILDREN: dict[int, subprocess.Popen] = {}  # polled, so finished children never linger


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
    base = RunFolder(Path(run_dir)).analysis
    return {part: base / f"{task}.{part}" for part in ("lock", "launch", "log")} | {
        "progress": base / f"{task}.progress.json"
    }


# ------------------------------------------------------------- inside the task


@contextlib.contextmanager
def running(run_dir: Path, task: str) -> Iterator[Callable[[float, str], None]]:
    """Hold the task's lock while the body works; yields a progress callback that writes
    the progress file (at most once a second). Raises `JobError` if another process holds
    the lock. An exception in the body is recorded in the progress file, then re-raised."""
    paths = _paths(run_dir, task)
    paths["lock"].parent.mkdir(parents=True, exist_ok=True)
    with open(paths["lock"], "a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobError(f"another process is already computing {task}") from None
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
    paths = _paths(run_dir, task)
    info = _read(paths["progress"])
    started = info.get("started") if isinstance(info.get("started"), int | float) else None
    fraction = float(info.get("fraction", 0.0) or 0.0)
    message = str(info.get("message", ""))
    if _locked(paths["lock"]):
        return TaskState("running", fraction, message, started)
    launched = _read(paths["launch"])
    pid, when = launched.get("pid"), launched.get("started")
    fresh = isinstance(when, int | float) and time.time() - when < STARTING_GRACE
    if isinstance(pid, int) and fresh and _alive(pid):
        return TaskState("starting", 0.0, "starting", when)
    if info.get("error"):
        return TaskState("failed", fraction, message, started, str(info["error"]))
    if info and message != "done":
        return TaskState("stopped", fraction, message, started)
    return TaskState("none")


def start(run_dir: Path, task: str, args: list[str]) -> TaskState:
    """Launch `python -m tinyviz ARGS` for the task unless it is running or starting."""
    paths = _paths(run_dir, task)
    paths["launch"].parent.mkdir(parents=True, exist_ok=True)
    with _launch_guard(paths["launch"].with_suffix(".launch.lock")):
        now = state(run_dir, task)
        if now.active:
            return now
        cmd = [sys.executable, "-m", "tinyviz", *args]
        proc = spawn(cmd, paths["log"], nice=NICE)
        _CHILDREN[proc.pid] = proc
        io.write_json(paths["launch"], {"pid": proc.pid, "started": time.time(), "command": cmd})
    return state(run_dir, task)


def log_tail(run_dir: Path, task: str, n: int = 3) -> list[str]:
    """The last `n` non-blank lines the task's process wrote."""
    try:
        with open(_paths(run_dir, task)["log"], "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8000))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [ln.rstrip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-n:]


def _read(path: Path) -> dict:
    try:
        info = io.read_json(path)
    except CheckpointError:
        return {}
    return info if isinstance(info, dict) else {}


def _locked(lock: Path) -> bool:
    """Whether some process holds the task's lock (we can't take it without waiting)."""
    if fcntl is None or not lock.exists():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@contextlib.contextmanager
def _launch_guard(path: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
