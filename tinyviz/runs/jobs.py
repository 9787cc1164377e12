"""Training jobs for the Train page: the command-line trainer run as a separate process.

Streamlit reruns a page's script on every click and forgets it on a reload, so a training
run cannot live inside it. `start` launches `python -m tinyviz train ... --out RUN` in its
own process session (it outlives the script run, the page and a closed tab) with its output
in `RUN/train.log`; the page then polls `RUN/progress.json`, which the trainer's monitor
writes once a second. Everything about a job is in files, so a reloaded page or a second tab
finds the same job: `current(jobs_dir)` reads it back.

One machine, one job: `jobs_dir/train.lock` is a `runtime.background.Lock` taken by the
launcher and held by the training process for its whole life (two tabs clicking Start at
once cannot both win; the kernel drops it when the process dies, so it is never stale); it
names the process and its run. Stop sends SIGTERM to the job's process group; the trainer
turns it into a clean "stopped" status, and `resume` continues from the last finished epoch.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import io
from ..config import AugmentConfig, TrainConfig
from ..errors import CheckpointError, JobError
from ..runtime import background
from .folder import RunFolder, read_config
from .progress import TrainProgress, read_progress
from .resume import read_counters

LOCK = "train.lock"  # in jobs_dir: the one running job
LAST = "last.json"  # in jobs_dir: the most recent job's run folder, for the page after a reload
ENDED = "stopped (process ended)"


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


def files(run_dir: Path, jobs_dir: Path) -> background.JobFiles:
    """The job of `run_dir`: the machine's one lock, the run's `job.json` and `train.log`."""
    folder = RunFolder(Path(run_dir))
    return background.JobFiles(Path(jobs_dir) / LOCK, folder.job, folder.log)


def _launch(cmd: list[str], run_dir: Path, jobs_dir: Path) -> Job:
    jobs_dir.mkdir(parents=True, exist_ok=True)
    try:  # the run folder is made (for its log) only once the lock is ours
        files(run_dir, jobs_dir).launch(cmd, note={"run_dir": str(run_dir)})
    except background.Busy:
        raise JobError(_busy_message(jobs_dir)) from None
    io.write_json(jobs_dir / LAST, {"run_dir": str(run_dir)})
    return status(run_dir)


def _busy_message(jobs_dir: Path) -> str:
    info = background.holder(Path(jobs_dir) / LOCK)
    run = Path(str(info.get("run_dir", "?"))).name
    return f"a training job is already running ({run}, pid {info.get('pid')}): stop it first"


# ------------------------------------------------------------------------- reading


def current(jobs_dir: Path) -> Job | None:
    """The job holding the machine's lock, while its process lives and has not said it
    finished (its last moments, writing up, do not keep a new job waiting)."""
    info = background.holder(Path(jobs_dir) / LOCK)
    if not info.get("run_dir"):
        return None
    pid = info.get("pid")
    job = _status(Path(str(info["run_dir"])), pid if isinstance(pid, int) else None)
    return job if job.active else None


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
    alive = background.pid_alive(pid)
    if progress is not None and progress.pid == pid:  # the progress is this process's own
        reported = progress.status
        return ENDED if reported == "running" and not alive else reported
    if alive:
        return "starting"
    if pid is None:
        return "none"
    last = log_tail(run_dir, 1)  # died before its first progress report: say why if it did
    return "failed" if last and background.is_error(last[0]) else ENDED


def log_tail(run_dir: Path, n: int = 20) -> list[str]:
    """The last `n` lines of the job's output (`RUN/train.log`), without blank lines."""
    return background.log_tail(RunFolder(Path(run_dir)).log, n)


# --------------------------------------------------------------------------- stop


def stop(job_or_run_dir: Job | Path, *, jobs_dir: Path | None = None, wait: float = 15.0) -> Job:
    """SIGTERM to the job's process group, then wait up to `wait` seconds for it to end.

    The trainer catches SIGTERM, writes status "stopped" and exits, and its lock goes with
    it. (`jobs_dir` is no longer needed: kept so callers need not change.)"""
    run_dir = job_or_run_dir.run_dir if isinstance(job_or_run_dir, Job) else Path(job_or_run_dir)
    background.terminate(status(run_dir).pid, wait)
    return status(run_dir)


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
