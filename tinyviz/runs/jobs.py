"""Training jobs for the Train page: the command-line trainer run as a separate process.

Streamlit reruns a page's script on every click and forgets it on a reload, so a training
run cannot live inside it. `start` launches `python -m tinyviz train ... --out RUN` in its
own process session (it outlives the script run, the page and a closed tab) with its output
in `RUN/train.log`; the page then polls `RUN/progress.json`, which the trainer's monitor
writes once a second. Everything about a job is in files, so a reloaded page or a second tab
finds the same job: `current(jobs_dir)` reads it back.

One machine, one job: `jobs_dir/train.lock` is created with O_CREAT | O_EXCL (atomic, so two
tabs clicking Start at once cannot both win) and names the process and its run. A lock whose
process has died, or whose run says it finished, is stale and cleared on the next look.
Stop sends SIGTERM to the job's process group; the trainer turns it into a clean "stopped"
status, and `resume` continues from the last finished epoch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import io
from ..config import AugmentConfig, TrainConfig
from ..errors import CheckpointError, JobError
from .folder import RunFolder, read_config
from .progress import FINISHED, TrainProgress, read_progress

LOCK = "train.lock"  # in jobs_dir: the one running job
LAST = "last.json"  # in jobs_dir: the most recent job's run folder, for the page after a reload
ENDED = "stopped (process ended)"
PROJECT_ROOT = Path(__file__).resolve().parents[2]

try:  # POSIX: serialises "clear a stale lock, take it" between processes
    import fcntl
except ImportError:  # pragma: no cover - Windows: O_EXCL alone still prevents two live jobs
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Job:
    """What the page shows about a training process.

    `status`: "starting" (launched, no progress yet), "running", "done", "failed",
    "stopped" (by the user, cleanly), "stopped (process ended)" (the process died without
    saying why: killed, out of memory, machine restarted) or "none" (never started here).
    `progress` is what the trainer last wrote (None before its first write).
    """

    run_dir: Path
    pid: int | None
    status: str
    progress: TrainProgress | None = None
    started: float | None = None
    command: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        """The process is still working (starting or running)."""
        return self.status in ("starting", "running")

    @property
    def message(self) -> str:
        return self.progress.message if self.progress else ""

    @property
    def resumable(self) -> bool:
        """Stopped or killed with a finished epoch saved: Resume continues it."""
        return (
            self.status in ("stopped", ENDED)
            and RunFolder(self.run_dir).has_resume_state()
            and not self.finished_all
        )

    @property
    def finished_all(self) -> bool:
        p = self.progress
        return bool(p and p.status == "done")


# ------------------------------------------------------------------------- command


def train_args(cfg: TrainConfig) -> list[str]:
    """`cfg` as `tinyviz train` options: every field that differs from the default.

    The model and epochs are always given, so the command reads well in the log.
    """
    args = _dataclass_args(
        cfg, TrainConfig(), skip={"model_options", "augment"}, always={"model", "epochs"}
    )
    args += _dataclass_args(cfg.augment, AugmentConfig())
    for key, value in cfg.model_options.items():
        if "=" in str(key):
            raise JobError(f"model option names cannot contain '=': {key!r}")
        args.append(f"--opt={key}={json.dumps(value)}")
    return args


def train_command(
    cfg: TrainConfig | None,
    run_dir: Path,
    data: str | None = None,
    *,
    resume: bool = False,
    epochs: int | None = None,
) -> list[str]:
    """The full command line: a new run of `cfg`, or `--resume` of `run_dir` (cfg unused;
    `epochs` extends it)."""
    cmd = [sys.executable, "-m", "tinyviz", "train"]
    if data:
        cmd.append(f"--data={Path(data).resolve()}")
    run = str(Path(run_dir).resolve())
    if resume:
        more = [f"--epochs={epochs}"] if epochs is not None else []
        return [*cmd, f"--resume={run}", *more, "--quiet"]
    if cfg is None:
        raise ValueError("a new run needs a TrainConfig")
    return [*cmd, *train_args(cfg), f"--out={run}", "--quiet"]


def _dataclass_args(
    obj: Any,
    default: Any,
    skip: frozenset[str] | set[str] = frozenset(),
    always: frozenset[str] | set[str] = frozenset(),
) -> list[str]:
    args = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in skip or (value == getattr(default, f.name) and f.name not in always):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):  # `tinyviz train --epoch-views 1,3,6`
            args.append(f"{flag}={','.join(str(v) for v in value)}")
        else:
            args.append(f"{flag}={value!r}" if isinstance(value, float) else f"{flag}={value}")
    return args


# --------------------------------------------------------------------------- start


def start(cfg: TrainConfig, run_dir: Path, *, data: str | None, jobs_dir: Path) -> Job:
    """Launch a new run into `run_dir`; refused while a job runs or if the folder holds a run."""
    run_dir = Path(run_dir).resolve()
    if RunFolder(run_dir).holds_run():
        raise JobError(f"{run_dir} already holds a run: resume it or choose another folder")
    return _launch(train_command(cfg, run_dir, data), run_dir, Path(jobs_dir))


def resume(run_dir: Path, *, jobs_dir: Path, data: str | None, epochs: int | None = None) -> Job:
    """Continue a stopped or killed run from its last finished epoch (to `epochs` in all)."""
    from ..training.state import read_counters  # reads a header; no training is imported

    folder = RunFolder(Path(run_dir).resolve())
    try:
        done = read_counters(folder)["epoch"]
        total = read_config(folder).train.epochs
    except CheckpointError as e:
        raise JobError(str(e)) from None
    if epochs is not None and epochs < done:
        raise JobError(f"{folder.name} has already trained {done} epochs")
    if epochs is None and done >= total:
        raise JobError(f"{folder.name} already finished all {total} epochs")
    cmd = train_command(None, folder.path, data, resume=True, epochs=epochs)
    return _launch(cmd, folder.path, Path(jobs_dir))


def holds_run(run_dir: Path) -> bool:
    """Whether a run already lives in `run_dir` (a launch that failed early leaves none)."""
    return RunFolder(Path(run_dir)).holds_run()


def spawn(cmd: list[str], log_path: Path, nice: int = 0) -> subprocess.Popen:
    """Start `cmd` in the project root as its own session (it outlives the script run and
    the server), its output appended to `log_path` after the command line; `nice` lowers
    its priority so the dashboard stays responsive. Shared by every background job."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    niced = (lambda: os.nice(nice)) if nice and hasattr(os, "nice") else None
    with open(log_path, "ab") as log:  # the child keeps its own copy of the handle
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        return subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=niced,
        )


def _launch(cmd: list[str], run_dir: Path, jobs_dir: Path) -> Job:
    folder = RunFolder(run_dir)
    with _claim(jobs_dir, run_dir) as lock:
        run_dir.mkdir(parents=True, exist_ok=True)
        proc = spawn(cmd, folder.log)
        _CHILDREN[proc.pid] = proc
        started = time.time()
        io.write_json(lock, {"pid": proc.pid, "run_dir": str(run_dir), "started": started})
        io.write_json(folder.job, {"pid": proc.pid, "started": started, "command": cmd})
        io.write_json(jobs_dir / LAST, {"run_dir": str(run_dir)})
    return status(run_dir)


# ---------------------------------------------------------------------------- lock


@contextmanager
def _claim(jobs_dir: Path, run_dir: Path) -> Iterator[Path]:
    """Take the lock for a job about to start; released again if the launch fails."""
    jobs_dir.mkdir(parents=True, exist_ok=True)
    lock = jobs_dir / LOCK
    with _guard(jobs_dir):
        _clear_if_stale(lock)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise JobError(_busy_message(lock)) from None
        with os.fdopen(fd, "w") as f:  # a placeholder naming us until the child's pid is known
            json.dump({"pid": os.getpid(), "run_dir": str(run_dir), "started": time.time()}, f)
    try:
        yield lock
    except BaseException:
        lock.unlink(missing_ok=True)
        raise


@contextmanager
def _guard(jobs_dir: Path) -> Iterator[None]:
    """An exclusive `flock` so that two processes never both judge one lock stale."""
    if fcntl is None:
        yield
        return
    with open(jobs_dir / (LOCK + ".guard"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_lock(lock: Path) -> dict | None:
    try:
        info = json.loads(lock.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # torn or garbage: treated as stale
    return info if isinstance(info, dict) else {}


def _is_stale(info: dict) -> bool:
    pid = info.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return True
    progress = read_progress(RunFolder(Path(str(info.get("run_dir", "")))))
    return progress is not None and progress.pid == pid and progress.status in FINISHED


def _clear_if_stale(lock: Path) -> None:
    info = _read_lock(lock)
    if info is not None and _is_stale(info):
        lock.unlink(missing_ok=True)


def _busy_message(lock: Path) -> str:
    info = _read_lock(lock) or {}
    run = Path(info.get("run_dir", "?")).name
    return f"a training job is already running ({run}, pid {info.get('pid')}): stop it first"


# ------------------------------------------------------------------------- reading


def current(jobs_dir: Path) -> Job | None:
    """The job holding the lock, if it is still alive (a stale lock is cleared here)."""
    jobs_dir = Path(jobs_dir)
    lock = jobs_dir / LOCK
    if not lock.exists():
        return None
    with _guard(jobs_dir):
        _clear_if_stale(lock)
        info = _read_lock(lock)
    if not info or not info.get("run_dir"):
        return None
    return _status(Path(info["run_dir"]), info.get("pid"))


def latest(jobs_dir: Path) -> Job | None:
    """The most recently started job, running or not (what the page shows after a reload)."""
    try:
        run_dir = io.read_json(Path(jobs_dir) / LAST)["run_dir"]
    except (CheckpointError, KeyError, TypeError):
        return None
    return status(Path(str(run_dir)))


def status(run_dir: Path) -> Job:
    """The job of `run_dir` as its files and its process say now."""
    return _status(Path(run_dir), None)


def _status(run_dir: Path, lock_pid: int | None) -> Job:
    """`status`; the lock's pid, when given, names the current process (during a launch
    `job.json` may still name the previous one)."""
    folder = RunFolder(run_dir)
    job = _job_info(folder)
    progress = read_progress(folder)
    pid = lock_pid if lock_pid is not None else job.get("pid", progress and progress.pid)
    pid = pid if isinstance(pid, int) else None
    state = _state(pid, progress, run_dir)
    started = job.get("started", progress and progress.started)
    command = job.get("command", ())
    return Job(
        run_dir,
        pid,
        state,
        progress,
        started if isinstance(started, int | float) else None,
        tuple(map(str, command)) if isinstance(command, list) else (),
    )


def _job_info(folder: RunFolder) -> dict:
    try:
        info = io.read_json(folder.job, inside=folder.path)
    except CheckpointError:
        return {}
    return info if isinstance(info, dict) else {}


def _state(pid: int | None, progress: TrainProgress | None, run_dir: Path) -> str:
    alive = pid_alive(pid)
    if progress is not None and progress.pid == pid:  # the progress is this process's own
        reported = progress.status
        return ENDED if reported == "running" and not alive else reported
    if alive:
        return "starting"
    if pid is None:
        return "none"
    last = log_tail(run_dir, 1)  # died before its first progress report: say why if it did
    return "failed" if last and _is_error(last[0]) else ENDED


def _is_error(line: str) -> bool:
    """The trainer's "error: ..." line, or the last line of a traceback ("ValueError: ...")."""
    return line.startswith("error:") or line.split(":")[0].endswith(("Error", "Exception"))


def log_tail(run_dir: Path, n: int = 20) -> list[str]:
    """The last `n` lines of the job's output (`RUN/train.log`), without blank lines."""
    path = RunFolder(Path(run_dir)).log
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64_000))  # enough for any n the page asks for
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-n:] if n > 0 else []


# --------------------------------------------------------------------------- stop


def stop(job_or_run_dir: Job | Path, *, jobs_dir: Path | None = None, wait: float = 15.0) -> Job:
    """SIGTERM to the job's process group, then wait up to `wait` seconds for it to end.

    The trainer catches SIGTERM, writes status "stopped" and exits. Its lock is then stale:
    cleared here when `jobs_dir` is given, else on the next `current` or `start`.
    """
    run_dir = job_or_run_dir.run_dir if isinstance(job_or_run_dir, Job) else Path(job_or_run_dir)
    pid = status(run_dir).pid
    if pid is not None and pid_alive(pid):
        _terminate(pid)
        deadline = time.monotonic() + wait
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if jobs_dir is not None:
        current(jobs_dir)  # clears the lock once the process has gone
    return status(run_dir)


def _terminate(pid: int) -> None:
    """SIGTERM to the process group the job leads (its own session), else to the process."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


# ------------------------------------------------------------------------ processes

_CHILDREN: dict[int, subprocess.Popen] = {}  # our own children: polled, so they never linger


def pid_alive(pid: int | None) -> bool:
    """Whether process `pid` is running (a finished child of ours is reaped, not 'alive')."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    except OSError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A process that has exited but not been reaped by its parent (Linux's /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


# ----------------------------------------------------------------------- listing


@dataclass(frozen=True)
class RunSummary:
    """A run folder of the Train page's list: what it is, how far it got, its job."""

    path: Path
    model: str
    epochs: int
    best_top1: float | None
    job: Job
    problem: str = ""  # why its files cannot be read, for a broken folder


def recent_runs(runs_dir: Path, limit: int = 20) -> list[RunSummary]:
    """The `limit` most recently changed run folders under `runs_dir`, newest first."""
    from .folder import read_metrics

    root = Path(runs_dir)
    try:
        folders = [p for p in root.iterdir() if RunFolder(p).config.exists()]
    except OSError:
        return []
    folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    out = []
    for path in folders[:limit]:
        folder = RunFolder(path)
        try:
            rows, model = read_metrics(folder), read_config(folder).model.name
        except CheckpointError as e:
            out.append(RunSummary(path, "?", 0, None, status(path), str(e)))
            continue
        best = max((r.val_top1 for r in rows), default=None)
        out.append(RunSummary(path, model, len(rows), best, status(path)))
    return out


def check_run_name(name: str, runs_dir: Path) -> str:
    """Why `name` cannot be a new run folder in `runs_dir` ("" when it can)."""
    from .folder import RUN_NAME

    if not RUN_NAME.fullmatch(name or ""):
        return "Name the run (letters, digits, '.', '_', '-'; not starting with '.' or '-')."
    if RunFolder(Path(runs_dir) / name).holds_run():
        return f"{Path(runs_dir) / name} already holds a run: choose another name."
    return ""
