"""Background analysis jobs: `tinyviz analyse RUN` run as its own process for the pages.

A page's script run must never pay for the validation pass (minutes on a CPU) and loses
everything when the tab closes, so a run without a stored analysis gets a job like the
training jobs (`tinyviz.runs.jobs`): a separate process in its own session (it outlives the
script run, the page, a closed tab and a restarted server), niced so the dashboard stays
responsive, with its output in `work/job.log` of the analysis folder.

Everything about a job is in files of that folder, so every session looking at the run
finds the same job: the pass holds an exclusive `flock` on `work/lock` while it runs (the
kernel drops it when the process dies: no stale lock), writes `work/progress.json` after
each chunk, and resumes from its saved chunks when started again. `start` is idempotent and
serialised by a second lock, so two sessions asking at once launch one process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import io
from ..errors import CheckpointError
from ..runs import jobs as training_jobs
from ..runs.folder import RunFolder, open_run
from . import analysis, speed

try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

JOB, LOG = "job.json", "job.log"
LAUNCH_LOCK = ".analysis-launch.lock"  # in RUN/analysis/
STARTING_GRACE = 120.0  # seconds a launched process may take to load torch and take its lock
NICE = 10
_CHILDREN: dict[int, subprocess.Popen] = {}  # our own children: polled, so they never linger


@dataclass(frozen=True)
class AnalysisJob:
    """What the pages show about the analysis of one run on one data set.

    `state`: "done" (stored), "running" (a process holds the pass), "starting" (launched,
    not yet running), "failed" (the process said why it stopped), "stopped" (stopped or
    killed; saved chunks are kept and `start` resumes), "none" (never started).
    """

    folder: Path
    state: str
    done: int = 0
    total: int = 0
    subset: int = 0  # the stratified subset computed first (0: no separate subset)
    seconds_per_image: float | None = None  # as this job measured it, else the run's record
    measured: bool = False  # seconds_per_image was measured (on this device), not guessed
    pid: int | None = None
    started: float | None = None
    message: str = ""

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running")

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until the full set is done (None: no speed known yet)."""
        if self.seconds_per_image is None or not self.total:
            return None
        return max(self.total - self.done, 0) * self.seconds_per_image

    @property
    def subset_eta_seconds(self) -> float | None:
        """Seconds until the subset is done (0 when it is, None when unknown)."""
        if self.seconds_per_image is None or not self.subset:
            return None
        return max(self.subset - self.done, 0) * self.seconds_per_image


# --------------------------------------------------------------------------- status


def status(run_dir: Path, data, limit: int = 0) -> AnalysisJob:
    """The analysis job of the run on `data`, as its files and process say now."""
    folder = analysis.cache_dir(run_dir, data, limit)
    n = analysis._count(data, limit)
    per_image, measured = _estimate(run_dir)
    if analysis.is_complete(folder):
        return AnalysisJob(folder, "done", n, n, 0, per_image, measured)
    work = folder / analysis.WORK
    progress = analysis.read_progress(folder)
    job = _job_info(work)
    pid = job.get("pid") if isinstance(job.get("pid"), int) else None
    _, subset = analysis.pass_order(data.val.labels[:n])
    done = int(progress.get("done", 0)) if progress else 0
    if isinstance(progress.get("seconds_per_image"), int | float):
        per_image, measured = float(progress["seconds_per_image"]), True
    started = job.get("started") if isinstance(job.get("started"), int | float) else None
    common = dict(done=done, total=n, subset=subset, seconds_per_image=per_image, measured=measured)
    if analysis.is_running(folder):
        return AnalysisJob(folder, "running", pid=pid, started=started, **common)
    if pid is not None and pid_alive(pid) and time.time() - (started or 0) < STARTING_GRACE:
        return AnalysisJob(folder, "starting", pid=pid, started=started, **common)
    if pid is None:
        return AnalysisJob(folder, "none", **common)
    last = log_tail_of(work / LOG, 1)
    if last and last[0].startswith("error:"):
        return AnalysisJob(folder, "failed", pid=pid, started=started, message=last[0], **common)
    return AnalysisJob(folder, "stopped", pid=pid, started=started, **common)


def _estimate(run_dir: Path) -> tuple[float | None, bool]:
    """Seconds per image on this machine's device before the job has measured any."""
    try:
        run = open_run(Path(run_dir))
    except CheckpointError:
        return None, False
    found = speed.of_run(run, _device_kind())
    return (found.pass_seconds(1), found.measured) if found else (None, False)


def _device_kind() -> str:
    from ..runtime.device import pick_device

    return pick_device("auto").type


def _job_info(work: Path) -> dict:
    try:
        info = io.read_json(work / JOB)
    except CheckpointError:
        return {}
    return info if isinstance(info, dict) else {}


# ---------------------------------------------------------------------------- start


def command(run_dir: Path, data_source: Path | str, limit: int = 0) -> list[str]:
    """The job's command line: the pass of `run_dir` on the data set at `data_source`."""
    cmd = [sys.executable, "-m", "tinyviz", "analyse", str(Path(run_dir).resolve())]
    cmd += [f"--data={Path(data_source).resolve()}", "--no-wait", "--quiet", f"--nice={NICE}"]
    return cmd + ([f"--limit={limit}"] if limit else [])


def start(run_dir: Path, data, limit: int = 0, *, retry: bool = False) -> AnalysisJob:
    """Make sure the analysis is stored or being computed: launches the job if nothing runs
    (resuming its saved chunks); a running, starting or finished job is left alone, and a
    failed one too unless `retry` (it would only fail again, once per page view)."""
    run_dir = Path(run_dir)

    def settled(job: AnalysisJob) -> bool:
        return job.state == "done" or job.active or (job.state == "failed" and not retry)

    now = status(run_dir, data, limit)
    if settled(now):
        return now
    with _launch_guard(RunFolder(run_dir).analysis):
        now = status(run_dir, data, limit)
        if settled(now):
            return now
        _launch(command(run_dir, data.source, limit), now.folder / analysis.WORK)
    return status(run_dir, data, limit)


def _launch(cmd: list[str], work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    proc = training_jobs.spawn(cmd, work / LOG)  # niced by its own --nice option
    _CHILDREN[proc.pid] = proc
    io.write_json(work / JOB, {"pid": proc.pid, "started": time.time(), "command": cmd})


@contextlib.contextmanager
def _launch_guard(analysis_dir: Path) -> Iterator[None]:
    analysis_dir.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(analysis_dir / LAUNCH_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- stop


def stop(run_dir: Path, data, limit: int = 0, wait: float = 15.0) -> AnalysisJob:
    """SIGTERM to the job's process group; its saved chunks stay for the next `start`."""
    job = status(run_dir, data, limit)
    if job.pid is not None and job.active:
        try:
            os.killpg(job.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(job.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while pid_alive(job.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return status(run_dir, data, limit)


def pid_alive(pid: int | None) -> bool:
    """Whether the process runs (a finished child of ours is reaped, not 'alive')."""
    child = _CHILDREN.get(pid) if isinstance(pid, int) else None
    if child is not None:
        return child.poll() is None
    return training_jobs.pid_alive(pid)


def log_tail(job: AnalysisJob, n: int = 5) -> list[str]:
    """The last `n` lines the job's process wrote, without blank lines."""
    return log_tail_of(job.folder / analysis.WORK / LOG, n)


def log_tail_of(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16_000))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-n:] if n > 0 else []


def describe(job: AnalysisJob) -> str:
    """One line for a page: how far the job is and how long it should still take."""
    eta = job.eta_seconds
    left = f", {speed.duration(eta)} left" if eta is not None and job.state != "done" else ""
    guess = "" if job.measured else " (a rough guess from the model's size)"
    if job.state in ("starting", "none"):
        return f"starting the analysis of {job.total:,} images{left}{guess}"
    return f"{job.done:,} of {job.total:,} images analysed{left}{guess}"
