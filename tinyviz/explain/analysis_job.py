"""Background analysis jobs: `tinyviz analyse RUN` run as its own process for the pages.

A page's script run must never pay for the validation pass (minutes on a CPU) and loses
everything when the tab closes, so a run without a stored analysis gets a background job
(`tinyviz.runtime.background`): a separate process in its own session (it outlives the
script run, the page, a closed tab and a restarted server) at a lower priority, with its
output in `work/job.log` of the analysis folder.

Everything about a job is in files of that folder, so every session looking at the run
finds the same job: the pass's lock `work/lock` is taken by the launcher and held by the
job's process (or by `tinyviz analyse` started by hand) for its whole life, so two sessions
asking at once launch one process and a dead process leaves no lock; the pass writes
`work/progress.json` after each chunk and resumes from its saved chunks when started again.

`gate` is what a page asks: one `Gate` saying what it can draw now (the full set, the
stratified subset while the rest is computed, or nothing yet) and why.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, TinyvizError
from ..runs.folder import Run, open_run
from ..runtime import background, tasks
from . import analysis, speed

JOB, LOG = "job.json", "job.log"


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


def files(folder: Path) -> background.JobFiles:
    """The job of one analysis folder: the pass's lock, the launch record and the log."""
    work = Path(folder) / analysis.WORK
    return background.JobFiles(work / analysis.LOCK_FILE, work / JOB, work / LOG)


def _opened(run: Run | Path) -> Run | None:
    """The opened run (pages pass theirs; a path is opened here, once)."""
    if isinstance(run, Run):
        return run
    try:
        return open_run(Path(run))
    except CheckpointError:
        return None


def status(run: Run | Path, data, limit: int = 0) -> AnalysisJob:
    """The analysis job of the run on `data`, as its files and process say now."""
    opened = _opened(run)
    run_dir = opened.path if opened is not None else Path(run)
    folder = analysis.cache_dir(run_dir, data, limit)
    n = analysis._count(data, limit)
    per_image, measured = _estimate(opened)
    if analysis.is_complete(folder):
        return AnalysisJob(folder, "done", n, n, 0, per_image, measured)
    job = files(folder)
    progress = analysis.read_progress(folder)
    launched = job.launched()
    _, subset = analysis.pass_order(data.val.labels[:n])
    done = int(progress.get("done", 0)) if progress else 0
    if isinstance(progress.get("seconds_per_image"), int | float):
        per_image, measured = float(progress["seconds_per_image"]), True
    common = dict(done=done, total=n, subset=subset, seconds_per_image=per_image, measured=measured)
    pid, started = launched.pid, launched.started
    if job.running():  # the lock is held from the launch on: "starting" until it reports
        working = background.pid_alive(progress.get("pid"))
        state = "running" if working else "starting"
        return AnalysisJob(folder, state, pid=pid, started=started, **common)
    if pid is None:
        return AnalysisJob(folder, "none", **common)
    if error := job.failed():
        return AnalysisJob(folder, "failed", pid=pid, started=started, message=error, **common)
    return AnalysisJob(folder, "stopped", pid=pid, started=started, **common)


def _estimate(run: Run | None) -> tuple[float | None, bool]:
    """Seconds per image on this machine's device before the job has measured any."""
    if run is None:
        return None, False
    found = speed.of_run(run, _device_kind())
    return (found.pass_seconds(1), found.measured) if found else (None, False)


def _device_kind() -> str:
    from ..runtime.device import pick_device

    return pick_device("auto").type


# ---------------------------------------------------------------------------- start


def command(run_dir: Path, data_source: Path | str, limit: int = 0) -> list[str]:
    """The job's command line: the pass of `run_dir` on the data set at `data_source`."""
    cmd = [sys.executable, "-m", "tinyviz", "analyse", str(Path(run_dir).resolve())]
    cmd += [f"--data={Path(data_source).resolve()}", "--no-wait", "--quiet"]
    return cmd + ([f"--limit={limit}"] if limit else [])


def start(run: Run | Path, data, limit: int = 0, *, retry: bool = False) -> AnalysisJob:
    """Make sure the analysis is stored or being computed: launches the job if nothing runs
    (resuming its saved chunks); a running, starting or finished job is left alone, and a
    failed one too unless `retry` (it would only fail again, once per page view)."""
    opened = _opened(run) or Path(run)
    now = status(opened, data, limit)
    if now.state == "done" or now.active or (now.state == "failed" and not retry):
        return now
    run_dir = opened.path if isinstance(opened, Run) else Path(opened)
    # the lock decides: of two sessions launching at once, one starts the process
    with contextlib.suppress(background.Busy):
        files(now.folder).launch(command(run_dir, data.source, limit), nice=tasks.NICE)
    return status(opened, data, limit)


# ----------------------------------------------------------------------------- stop


def stop(run: Run | Path, data, limit: int = 0, wait: float = 15.0) -> AnalysisJob:
    """SIGTERM to the job's process group; its saved chunks stay for the next `start`."""
    job = status(run, data, limit)
    if job.active:
        background.terminate(job.pid, wait)
    return status(run, data, limit)


def log_tail(job: AnalysisJob, n: int = 5) -> list[str]:
    """The last `n` lines the job's process wrote, without blank lines."""
    return files(job.folder).log_tail(n)


# ----------------------------------------------------------------------------- gate


@dataclass(frozen=True)
class Gate:
    """The one answer a page gets about a run's analysis: what it can draw now.

    `state`:
    - "ready": the full set is stored (`folder`).
    - "partial": the stratified subset is stored (`folder`), the rest is being computed
      (`job`: progress and estimate).
    - "running": nothing is stored yet; `job` says how far the pass is and when the
      subset (else the full set) should arrive.
    - "failed": the job stopped with `reason`; `folder` is the subset if one is stored.

    `note`: when a stored analysis was found unusable and is computed again, the one line
    that says so (else "").
    """

    state: str
    folder: Path | None
    job: AnalysisJob | None = None
    reason: str = ""
    note: str = ""

    @property
    def drawable(self) -> bool:
        return self.folder is not None

    @property
    def stage(self) -> str | None:
        """ "full", "subset" or None: what is drawn (a change means: draw the page again)."""
        if self.folder is None:
            return None
        return "subset" if self.folder.name == analysis.SUBSET else "full"

    @property
    def first_eta_seconds(self) -> float | None:
        """Seconds until the page has something to draw (the subset, else the full set)."""
        if self.job is None:
            return None
        return self.job.subset_eta_seconds if self.job.subset else self.job.eta_seconds


def gate(run: Run, data, *, start_job: bool = True, retry: bool = False) -> Gate:
    """Where the run's analysis of `data` stands, starting (or resuming) the background job
    when nothing computes the missing part (`start_job`; `retry` also restarts a failed
    one). Never computes anything itself."""
    folder = analysis.available(run.path, data)
    if folder is not None and folder.name != analysis.SUBSET:
        return Gate("ready", folder)
    note = analysis.rejected(run.path, data) or ""  # a bad stored file counts as missing
    try:
        job = start(run, data, retry=retry) if start_job else status(run, data)
    except (TinyvizError, OSError) as e:
        return Gate("failed", folder, None, f"it cannot be started: {e}", note)
    if job.state == "done":  # finished between the two looks
        return Gate("ready", analysis.available(run.path, data))
    if job.state == "failed":
        return Gate("failed", folder, job, job.message, note)
    return Gate("partial" if folder is not None else "running", folder, job, note=note)


def describe(job: AnalysisJob) -> str:
    """One line for a page: how far the job is and how long it should still take."""
    eta = job.eta_seconds
    left = f", {speed.duration(eta)} left" if eta is not None and job.state != "done" else ""
    guess = "" if job.measured else " (a rough guess from the model's size)"
    if job.state in ("starting", "none"):
        return f"starting the analysis of {job.total:,} images{left}{guess}"
    return f"{job.done:,} of {job.total:,} images analysed{left}{guess}"
