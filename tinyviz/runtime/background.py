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
`NICE_ENV`), never with `preexec_fn`, which is unsafe in the threaded server; so is its
session's scheduling group's, without which a niced job would still take a core's share from
the server wherever Linux groups processes by session (`lower_session_priority`).

`Queue` bounds how many heavy computations run at once: requests wait in files, in the
order they came, for one of a few long-lived workers, and each knows its place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import struct
import subprocess
import threading
import time
import traceback
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

    def take(self, wait: bool = False, *, create: bool = True) -> int | None:
        """An open file descriptor holding the lock, or None when another holds it
        (`wait`: block until it is free; not `create`: None when the file is not there).
        Closing the descriptor releases the lock."""
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            if create:
                raise
            return None
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
    (once: the setting is not passed on to our own children), and our session's scheduling
    group's with it when the launcher made the session for us (`lower_session_priority`)."""
    nice = os.environ.pop(NICE_ENV, "")
    if nice.lstrip("-").isdigit():
        lower_priority(int(nice))
        if _session_leader():
            lower_session_priority(int(nice))


AUTOGROUP = Path("/proc/self/autogroup")  # Linux: this session's scheduling group


def lower_session_priority(by: int) -> None:
    """Lower the CPU priority of this process's session as a whole by `by`.

    Linux's autogroup scheduling (on by default in most distributions) gives each session
    its own scheduling group, and shares the CPU between groups first: a nice value only
    orders a process against the others of its own session. A job launched in a session of
    its own (`spawn`) and niced would still get as much CPU as the whole server, so on a
    2-core machine one visitor's Integrated Gradients slowed every other visitor's Classify
    as much as if it had run in the server. The group's own nice value is what counts there.
    Nothing happens where the kernel has no autogroups, shows an empty one (some containers
    do) or refuses."""
    now = autogroup_nice()
    if by <= 0 or now is None:
        return
    with contextlib.suppress(OSError):
        AUTOGROUP.write_text(str(min(19, now + int(by))))


def autogroup_nice() -> int | None:
    """This session's group nice value ("/autogroup-123 nice 0"), or None where it cannot
    be read: containers may show the file empty."""
    with contextlib.suppress(OSError):
        match = re.search(r"nice\s+(-?\d+)", AUTOGROUP.read_text())
        return int(match.group(1)) if match else None
    return None


def _session_leader() -> bool:
    """Whether this process leads its own session (its launcher made it for it): only then
    is the session's group ours alone to lower."""
    with contextlib.suppress(OSError):
        return os.getsid(0) == os.getpid()
    return False


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

WORKER_LOG_MAX = 1_000_000  # bytes of a worker's log kept when the next worker starts


@dataclass(frozen=True)
class Queue:
    """Heavy requests, computed in the order they came by at most `slots` workers at once.

    A request is a file in `folder`, `req-<ticket>--<name>.json` (named by its arrival,
    holding what to compute), written once per name by whoever wants it (`submit`). The
    workers are long-lived background processes, one per slot (`start_workers`), each
    holding its slot's lock (`slot-K.lock`) for its life: a process per request would pay
    its imports and model load (seconds on a busy CPU) every time, and every waiting request
    would hold those libraries in memory. A worker takes the oldest request by locking its
    file, computes it (`serve`'s handler) and removes it; when nothing has come for `idle`
    seconds it ends, so its memory goes back.

    Everybody reads the same files, so every session sees a request's place (`place`). A
    waiting request nobody has asked about (`want`) for `abandon` seconds is dropped: a
    visitor who left does not keep the others waiting. A worker's handler may stop one it
    computes the same way (`wanted`).
    """

    folder: Path
    slots: int = 1
    idle: float = 20.0  # seconds without a request before a worker ends
    abandon: float = 60.0  # seconds without a `want` before a waiting request is dropped
    poll: float = 0.2  # seconds between a worker's looks while it has nothing to do

    # ------------------------------------------------------------- asking

    def submit(self, name: str, payload: str) -> None:
        """Queue `payload` under `name` (letters, digits, `-`, `_`), unless it waits or is
        being computed already (then it is only wanted again)."""
        if not _NAME.fullmatch(name):
            raise JobError(f"not a request name: {name!r}")
        if self._find(name) is not None:
            self.want(name)
            return
        io.write_bytes(self.folder / f"req-{new_ticket()}--{name}.json", payload.encode())

    def want(self, name: str) -> None:
        """Someone still waits for `name`: it is not dropped for `abandon` seconds more."""
        path = self._find(name)
        if path is not None:
            with contextlib.suppress(OSError):  # taken and finished meanwhile
                os.utime(path)

    def wanted(self, name: str) -> bool:
        """Whether `name` is in the queue and someone asked about it within `abandon`
        seconds (a worker computing it stops when nobody does any more)."""
        path = self._find(name)
        return path is not None and not self._stale(path, time.time())

    def place(self, name: str) -> int | None:
        """How many requests come before `name` (0: it is next, or being computed), or None
        when it is not in the queue (never asked for, finished, or dropped)."""
        ahead, now = 0, time.time()
        for path in self._requests():
            taken = Lock(path).held()
            if self._name(path) == name:
                return 0 if taken else ahead
            if taken or not self._stale(path, now):
                ahead += 1
        return None

    def names(self) -> list[str]:
        """The requests in the queue, oldest first (taken, waiting, or stale)."""
        return [self._name(p) for p in self._requests()]

    def taken(self, name: str) -> bool:
        """Whether a worker is computing `name` now."""
        path = self._find(name)
        return path is not None and Lock(path).held()

    def waiting(self) -> int:
        """How many requests wait for a worker (not taken, not stale)."""
        now = time.time()
        return sum(not Lock(p).held() and not self._stale(p, now) for p in self._requests())

    def working(self) -> int:
        """How many workers are alive (each holds its slot)."""
        return sum(Lock(self._slot(k)).held() for k in range(self.slots))

    def ready(self, lasting: float = 0.0) -> list[dict]:
        """The notes (`note`) of the workers alive now that are computing, or will wait at
        least `lasting` seconds more for a request: one that is about to end will not
        take a request asked for now, a new worker will (and pay its startup)."""
        now, notes = time.time(), []
        for k in range(self.slots):
            launched = holder(self._slot(k))  # {} when free (or taken without a launcher)
            if not launched and not Lock(self._slot(k)).held():
                continue
            note = self._note(k)
            if "pid" in launched and note.get("pid") != launched["pid"]:
                continue  # a new worker still starting: the note is its predecessor's
            until = note.get("until", 0.0)
            if until is None or (isinstance(until, int | float) and until - now >= lasting):
                notes.append(note)
        return notes

    def start_workers(self, command, *, nice: int = 0) -> int:
        """Start a worker (`command(slot)`, a command line) on free slots while requests
        wait for one; returns how many workers are alive. Two sessions asking at once start
        one worker per slot (the slot's lock is taken before the launch)."""
        waiting = self.waiting()
        for k in range(self.slots):
            if waiting <= 0:
                break
            files = self.worker(k)
            if files.running():
                continue
            _trim(files.log, WORKER_LOG_MAX)
            with contextlib.suppress(Busy):
                files.launch(command(k), nice=nice, note={"slot": k})
                waiting -= self.slots  # one new worker serves them all in turn
        return self.working()

    def worker(self, slot: int) -> JobFiles:
        """Slot `slot`'s worker: its lock, launch record and log."""
        return JobFiles(
            self._slot(slot),
            self.folder / f"slot-{slot}.launch",
            self.folder / f"worker-{slot}.log",
        )

    # ------------------------------------------------------------- working

    def serve(self, slot: int, handle, *, lost=None, stop: threading.Event | None = None) -> None:
        """Be slot `slot`'s worker: `handle(name, payload)` each request, oldest first,
        until none has come for `idle` seconds (or `stop` is set). A handler's exception is
        printed (to the worker's log) and the next request is served. `lost(name, payload)`:
        a request the slot's previous worker died computing (it is not computed again)."""
        fd = _take_inherited(self._slot(slot)) or Lock(self._slot(slot)).take()
        while fd is not None:
            try:
                self._recover(slot, lost)
                self._work(slot, handle, stop)
            finally:
                os.close(fd)
            # a request that came just as we decided to end found our slot held: look again
            if (stop is not None and stop.is_set()) or not self.waiting():
                return
            fd = Lock(self._slot(slot)).take()  # None: a new worker has the slot

    def note(self, slot: int, **fields) -> None:
        """Add `fields` (plain JSON values) to slot `slot`'s note, which its worker keeps
        for the others to read (`ready`): what it has done that makes it faster next time
        (a map method compiled, say). Only the slot's worker writes it."""
        with contextlib.suppress(OSError, ValueError):
            io.write_json(self._note_path(slot), {**self._note(slot), **fields})

    def _note(self, slot: int) -> dict:
        try:
            raw = io.read_json(self._note_path(slot))
        except CheckpointError:
            return {}
        return raw if isinstance(raw, dict) else {}

    def _note_path(self, slot: int) -> Path:
        return self.folder / f"slot-{slot}.note"

    def _work(self, slot: int, handle, stop) -> None:
        last = time.monotonic()
        current = self.folder / f"slot-{slot}.current"
        if self._note(slot).get("pid") != os.getpid():  # a new worker: a new note
            with contextlib.suppress(OSError, ValueError):
                io.write_json(self._note_path(slot), {"pid": os.getpid()})
        self.note(slot, until=time.time() + self.idle)
        while stop is None or not stop.is_set():
            got = self._take()
            if got is None:
                if time.monotonic() - last >= self.idle:
                    return
                stop.wait(self.poll) if stop is not None else time.sleep(self.poll)
                continue
            path, fd = got
            try:
                self.note(slot, until=None)  # busy: it takes the next request after this
                io.write_bytes(current, path.name.encode())
                handle(self._name(path), path.read_text())
            except Exception:  # noqa: BLE001 - one request's failure is its own
                traceback.print_exc()
            finally:
                for done in (path, current):
                    with contextlib.suppress(OSError):
                        done.unlink()
                os.close(fd)
            last = time.monotonic()
            self.note(slot, until=time.time() + self.idle)

    def _take(self) -> tuple[Path, int] | None:
        """The oldest request no worker has, locked (stale ones are dropped on the way)."""
        now = time.time()
        for path in self._requests():
            fd = Lock(path).take(create=False)
            if fd is None:
                continue
            st = os.fstat(fd)
            if st.st_nlink and now - st.st_mtime <= self.abandon:
                return path, fd
            with contextlib.suppress(OSError):
                if st.st_nlink:
                    path.unlink()  # nobody asked for it for too long
            os.close(fd)
        return None

    def _recover(self, slot: int, lost) -> None:
        """The request the slot's last worker was computing when it died, if any."""
        current = self.folder / f"slot-{slot}.current"
        try:
            name = current.read_text().strip()
        except OSError:
            return
        path = self.folder / name
        with contextlib.suppress(OSError):
            if name.startswith("req-") and "/" not in name and not Lock(path).held():
                payload = path.read_text()
                if lost is not None:  # reported before it leaves the queue: a page asking
                    lost(self._name(path), payload)  # meanwhile does not queue it again
                path.unlink()
        with contextlib.suppress(OSError):
            current.unlink()

    # ------------------------------------------------------------- files

    def _slot(self, k: int) -> Path:
        return self.folder / f"slot-{k}.lock"

    def _requests(self) -> list[Path]:
        try:
            return sorted(self.folder.glob("req-*--*.json"))
        except OSError:
            return []

    def _find(self, name: str) -> Path | None:
        return next((p for p in self._requests() if self._name(p) == name), None)

    @staticmethod
    def _name(path: Path) -> str:
        return path.name[: -len(".json")].split("--", 1)[1]

    def _stale(self, path: Path, now: float) -> bool:
        try:
            return now - path.stat().st_mtime > self.abandon
        except OSError:
            return True


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}")


def _take_inherited(path: Path) -> int | None:
    """The descriptor of `path`'s lock that our launcher took for us (`HELD_ENV`), now ours
    to close (so the variable goes: nothing else mistakes the number for it later)."""
    if not _inherited(path):
        return None
    return int(os.environ.pop(HELD_ENV))


def _trim(log: Path, keep: int) -> None:
    """Cut a log that grew past `keep` bytes to its last `keep // 2`."""
    with contextlib.suppress(OSError):
        if log.stat().st_size > keep:
            with open(log, "rb") as f:
                f.seek(-(keep // 2), os.SEEK_END)
                tail = f.read()
            io.write_bytes(log, tail)


def new_ticket() -> str:
    """A name for a queued job that sorts by arrival (nanoseconds, then our pid)."""
    return f"{time.time_ns():020d}-{os.getpid()}"


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
    "lower_session_priority",
    "log_tail",
    "new_ticket",
    "pid_alive",
    "reap",
    "spawn",
    "terminate",
]
