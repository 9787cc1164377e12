"""Background work: the one way tinyviz runs a job outside a page's script run.

A page's script reruns on every click and is forgotten when its tab closes, so long work
(training, the analysis pass, the sanity check, training features) runs as a separate
`python -m tinyviz ...` process in its own session: it outlives the script run, the tab
and the server. Everything about a job lives in three files (`JobFiles`), so every session,
every reload and the command line find the same job:

- the **lock** (`Lock`): an open-file-description lock (Linux `F_OFD_SETLK`) held by the
  job's process for its whole life. The launcher takes it *before* it starts the process
  and hands the open file to the child (`pass_fds`), so there is no moment between
  "launched" and "locked" (no grace period) and two sessions clicking at once launch one
  job. The kernel drops it when the process dies: it is never stale. It is tested with
  `F_OFD_GETLK`, which never takes it, so a job starting during the test is not refused.
- the **record**: what the launcher started (`Launched`: pid, start time, command line).
- the **log**: the process's output; `log_tail` reads its last lines.

Our own children are kept as `Popen` objects and polled (`reap`), so a finished child never
lingers as a zombie; `pid_alive` is the one liveness test (a zombie is dead). A job's
priority is lowered by the child itself (`enter_child`, called by `tinyviz.cli.main`, reads
`NICE_ENV`), never with `preexec_fn`, which is unsafe in the threaded server.

`Queue` bounds how many heavy jobs run at once: a job waits for one of its slots, and a
waiting job knows its place.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import io
from ..errors import CheckpointError, JobError
from . import pids

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: jobs run, without the cross-process lock
    fcntl = None  # type: ignore[assignment]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NICE_ENV = "TINYVIZ_NICE"  # the child lowers its own priority by this much
HELD_ENV = "TINYVIZ_HELD_LOCK"  # the file descriptor of the lock the launcher took for it
LOG_TAIL_BYTES = 64_000  # enough for any number of lines a page shows

_OFD = fcntl is not None and hasattr(fcntl, "F_OFD_GETLK")  # Linux >= 3.15
_FLOCK = struct.Struct("hhqqi")  # struct flock: type, whence, start, len, pid
_FLOCK_SIZE = 32  # sizeof(struct flock) on 64-bit Linux (the kernel reads no more)


class Busy(JobError):
    """The job's lock is held: it is running (or starting) already."""


# ----------------------------------------------------------------------------- lock


class Lock:
    """A lock file held by the process doing the work, testable without taking it.

    Open-file-description locks conflict between any two opens of the file, also in one
    process (two threads, or a test and the code it tests), and follow the open file into
    a child started with it. Where the platform has none (macOS), `flock` is used, and
    `held` has to take the lock for a moment to test it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def held(self) -> bool:
        """Whether some open of the file holds the lock now (it is never taken here)."""
        if fcntl is None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:  # not there (yet, or any more): nobody holds it
            return False
        try:
            if _OFD:
                probe = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0).ljust(_FLOCK_SIZE, b"\0")
                got = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, probe)
                return _FLOCK.unpack_from(got)[0] != fcntl.F_UNLCK
            try:  # pragma: no cover - flock only: a test must take it
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # pragma: no cover
                return True
            return False  # pragma: no cover - closing fd releases it
        finally:
            os.close(fd)

    def take(self, wait: bool = False) -> int | None:
        """An open file descriptor holding the lock, or None when another holds it
        (`wait`: block until it is free). Closing the descriptor releases the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:  # pragma: no cover
            return fd
        try:
            if _OFD:
                cmd = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
                spec = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0).ljust(_FLOCK_SIZE, b"\0")
                fcntl.fcntl(fd, cmd, spec)
            else:  # pragma: no cover
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except (BlockingIOError, PermissionError):
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def hold(self, wait: bool = False) -> Iterator[bool]:
        """Hold the lock for the body; yields False (holding nothing) when another holds
        it and not `wait`. A lock the launcher took for this process is already held."""
        if _inherited(self.path):
            yield True
            return
        fd = self.take(wait)
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            os.close(fd)


def _inherited(path: Path) -> bool:
    """Whether `path` is the lock our launcher took for us (`HELD_ENV`)."""
    raw = os.environ.get(HELD_ENV, "")
    if not raw.isdigit():
        return False
    try:
        mine, there = os.fstat(int(raw)), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


# ------------------------------------------------------------------------ processes

_CHILDREN: dict[int, subprocess.Popen] = {}  # our own children, polled so none lingers
_CHILDREN_GUARD = threading.Lock()


def spawn(cmd: list[str], log_path: Path, *, nice: int = 0, hold: int | None = None):
    """Start `cmd` in the project root as its own session, its output appended to
    `log_path` after the command line. `nice`: the child lowers its own priority
    (`enter_child`). `hold`: a lock's descriptor (`Lock.take`) the child inherits, so the
    lock is the child's from its first instruction; the caller closes its own copy."""
    reap()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop(HELD_ENV, None)
    if nice:
        env[NICE_ENV] = str(int(nice))
    if hold is not None:
        env[HELD_ENV] = str(hold)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own copy of the handle
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=() if hold is None else (hold,),
        )
    with _CHILDREN_GUARD:
        _CHILDREN[proc.pid] = proc
    return proc


def enter_child() -> None:
    """Called first by a job's entry point: lower our own priority as the launcher asked
    (once: the setting is not passed on to our own children)."""
    nice = os.environ.pop(NICE_ENV, "")
    if nice.lstrip("-").isdigit():
        lower_priority(int(nice))


def lower_priority(by: int) -> None:
    """Lower this process's CPU priority by `by` (the process does it to itself: never
    `preexec_fn` in the threaded server). Refusals (a raise without the right) are ignored."""
    if by and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(int(by))


def reap() -> None:
    """Collect every finished child of ours (`waitpid` through `Popen.poll`): no zombies."""
    with _CHILDREN_GUARD:
        for pid, proc in list(_CHILDREN.items()):
            if proc.poll() is not None:
                del _CHILDREN[pid]


def child(pid: int | None) -> subprocess.Popen | None:
    """Our own child `pid`, while we still know it (tests wait on it)."""
    with _CHILDREN_GUARD:
        return _CHILDREN.get(pid) if isinstance(pid, int) else None


def pid_alive(pid: int | None) -> bool:
    """Whether process `pid` is running: a finished child of ours is reaped (so it is no
    zombie of ours); any other process as `pids.alive` says (a zombie is dead)."""
    proc = child(pid)
    if proc is not None:
        alive = proc.poll() is None
        if not alive:
            reap()
        return alive
    return pids.alive(pid)


def terminate(pid: int | None, wait: float = 15.0) -> None:
    """SIGTERM to the process group `pid` leads (its own session), else to the process;
    then wait up to `wait` seconds for it to end."""
    if not pid_alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def log_tail(path: Path, n: int = 20) -> list[str]:
    """The last `n` non-blank lines of a job's log (carriage-return progress bars split)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-n:] if n > 0 else []


def is_error(line: str) -> bool:
    """tinyviz's "error: ..." line, or the last line of a traceback ("ValueError: ...")."""
    return line.startswith("error:") or line.split(":")[0].endswith(("Error", "Exception"))


def holder(lock: Path) -> dict:
    """What the launcher wrote into a lock file (`JobFiles.launch`), while the lock is held
    ({} when nobody holds it)."""
    if not Lock(lock).held():
        return {}
    try:
        info = json.loads(Path(lock).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


# ----------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Launched:
    """What a launcher recorded about the process it started."""

    pid: int | None = None
    started: float | None = None
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobFiles:
    """Where one background job keeps its lock, its launch record and its output."""

    lock: Path
    record: Path
    log: Path

    def running(self) -> bool:
        """Whether the job's process is alive (it holds the lock from its first instant)."""
        return Lock(self.lock).held()

    def launched(self) -> Launched:
        """The last launch's record (empty when there was none or it is unreadable)."""
        try:
            info = io.read_json(self.record)
        except CheckpointError:
            return Launched()
        if not isinstance(info, dict):
            return Launched()
        pid, started, cmd = info.get("pid"), info.get("started"), info.get("command")
        return Launched(
            pid if isinstance(pid, int) else None,
            float(started) if isinstance(started, int | float) else None,
            tuple(map(str, cmd)) if isinstance(cmd, list) else (),
        )

    def launch(self, cmd: list[str], *, nice: int = 0, note: dict | None = None) -> Launched:
        """Start `cmd` holding the job's lock; `Busy` when it is held already (the job
        runs), so two sessions asking at once start one process. `note` goes into the
        record and into the lock file, for whoever asks who holds it."""
        fd = Lock(self.lock).take()
        if fd is None:
            raise Busy(f"already running: {' '.join(cmd[3:5]) or cmd[0]}")
        try:
            proc = spawn(cmd, self.log, nice=nice, hold=fd)
            started = time.time()
            record = {**(note or {}), "pid": proc.pid, "started": started, "command": cmd}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            io.write_json(self.record, record)
        finally:
            os.close(fd)  # the child holds it now
        return Launched(proc.pid, started, tuple(cmd))

    def holder(self) -> dict:
        return holder(self.lock)

    def log_tail(self, n: int = 20) -> list[str]:
        return log_tail(self.log, n)

    def failed(self) -> str:
        """The error line the job's process ended with ("" when it did not fail)."""
        last = self.log_tail(1)
        return last[0] if last and is_error(last[0]) else ""

    def stop(self, wait: float = 15.0) -> None:
        """SIGTERM to the job's process group, if it runs."""
        if self.running():
            terminate(self.launched().pid, wait)


# ---------------------------------------------------------------------------- queue


@dataclass(frozen=True)
class Queue:
    """At most `slots` heavy jobs at once, the rest waiting in the order they came.

    A job waits inside its own process (`turn`), so a closed tab or a restarted server
    changes nothing. A waiting job holds the lock of its ticket (`<folder>/wait-*.lock`,
    named by arrival time), a working one the lock of a slot (`<folder>/slot-K.lock`).
    Everybody reads the same files, so every session sees a job's place (`place`).
    """

    folder: Path
    slots: int = 1
    poll: float = 0.2  # seconds between looks while waiting

    def _slot(self, k: int) -> Lock:
        return Lock(self.folder / f"slot-{k}.lock")

    def _tickets(self) -> list[Path]:
        """The tickets of jobs still waiting, oldest first (dead waiters' are removed)."""
        try:
            found = sorted(self.folder.glob("wait-*.lock"))
        except OSError:
            return []
        alive = []
        for t in found:
            if Lock(t).held():
                alive.append(t)
            else:
                with contextlib.suppress(OSError):
                    t.unlink()
        return alive

    def working(self) -> int:
        """How many slots are busy now."""
        return sum(self._slot(k).held() for k in range(self.slots))

    def place(self, ticket: str) -> int | None:
        """0 while the job `ticket` works, K when K jobs wait before it, None when it is
        neither (not started, or finished)."""
        mine = self.folder / f"wait-{ticket}.lock"
        if any(self._holds(k, ticket) for k in range(self.slots)):
            return 0
        tickets = self._tickets()
        return tickets.index(mine) + 1 if mine in tickets else None

    def _holds(self, k: int, ticket: str) -> bool:
        slot = self._slot(k)
        try:
            return slot.held() and slot.path.read_text() == ticket
        except OSError:
            return False

    @contextlib.contextmanager
    def turn(self, ticket: str, stop: threading.Event | None = None) -> Iterator[None]:
        """Wait in line, then hold a slot for the body. `ticket` names this job (unique,
        sorting by arrival: `new_ticket()`); `stop` ends the wait early (`JobError`)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # locked under a name nobody looks at, then renamed: never seen unlocked (and so
        # never taken for a dead waiter's ticket and removed)
        draft = self.folder / f"new-{ticket}.lock"
        wait_fd = Lock(draft).take()
        if wait_fd is None:
            raise Busy(f"ticket {ticket} is already waiting")
        os.replace(draft, self.folder / f"wait-{ticket}.lock")
        slot_fd = None
        try:
            while slot_fd is None:
                first = self._tickets()[:1] == [self.folder / f"wait-{ticket}.lock"]
                if first:
                    slot_fd = self._free_slot(ticket)
                if slot_fd is None and (stop.wait(self.poll) if stop else _sleep(self.poll)):
                    raise JobError("stopped while waiting for its turn")
        finally:
            os.close(wait_fd)
            with contextlib.suppress(OSError):
                (self.folder / f"wait-{ticket}.lock").unlink()
        try:
            yield
        finally:
            os.close(slot_fd)

    def _free_slot(self, ticket: str) -> int | None:
        for k in range(self.slots):
            fd = self._slot(k).take()
            if fd is not None:
                os.ftruncate(fd, 0)
                os.pwrite(fd, ticket.encode(), 0)
                return fd
        return None


def new_ticket() -> str:
    """A name for a queued job that sorts by arrival (nanoseconds, then our pid)."""
    return f"{time.time_ns():020d}-{os.getpid()}"


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


__all__ = [
    "Busy",
    "JobFiles",
    "Launched",
    "Lock",
    "Queue",
    "enter_child",
    "holder",
    "is_error",
    "lower_priority",
    "log_tail",
    "new_ticket",
    "pid_alive",
    "reap",
    "spawn",
    "terminate",
]
