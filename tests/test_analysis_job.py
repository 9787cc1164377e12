"""Background analysis jobs: real `tinyviz analyse` processes, shared, stopped, restarted."""

from __future__ import annotations

import os
import shutil
import signal

import pytest
from pagetest import wait_for_analysis

from tinyviz.explain import analysis, analysis_job, speed
from tinyviz.runtime import background

pytestmark = pytest.mark.slow


@pytest.fixture
def bare_run(run_data, tmp_path):
    """A copy of the tiny run without its analysis: an imported run, say."""
    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
    return copy, data


def test_two_sessions_asking_at_once_share_one_job(bare_run):
    run, data = bare_run
    before = analysis_job.status(run, data)
    assert before.state == "none" and before.total == 24 and not before.measured
    assert before.eta_seconds is not None  # a guess from the model's FLOPs, before it runs
    first = analysis_job.start(run, data)
    second = analysis_job.start(run, data)  # another session, a moment later
    assert first.active and second.pid == first.pid
    done = wait_for_analysis(run, data)
    assert done.state == "done" and done.fraction == 1.0
    assert analysis.is_cached(run, data) and speed.measured(run, "cpu") is not None
    assert analysis_job.start(run, data).state == "done"  # nothing launched again
    assert not (done.folder / analysis.WORK).exists()  # chunks, progress and log tidied away


def test_a_killed_job_is_seen_stopped_and_started_again(bare_run):
    run, data = bare_run
    job = analysis_job.start(run, data)
    os.killpg(job.pid, signal.SIGKILL)  # the machine's OOM killer, a reboot...
    background.child(job.pid).wait()
    assert analysis_job.status(run, data).state == "stopped"
    again = analysis_job.start(run, data)
    assert again.active and again.pid != job.pid
    wait_for_analysis(run, data)


def test_a_failing_job_says_why_and_is_not_relaunched(bare_run, tmp_path):
    run, data = bare_run
    (run / "model.safetensors").write_bytes(b"not weights")
    job = analysis_job.start(run, data)
    background.child(job.pid).wait()
    failed = analysis_job.status(run, data)
    assert failed.state == "failed" and failed.message.startswith("error:")
    assert analysis_job.start(run, data).pid == job.pid  # not launched again by itself
    retried = analysis_job.start(run, data, retry=True)
    assert retried.pid != job.pid
    background.child(retried.pid).wait()
    assert analysis_job.status(run, data).state == "failed"


def test_two_sessions_launching_at_the_same_instant_start_one_process(bare_run, monkeypatch):
    """Both sessions looked before either launched (both saw "none"): the lock, taken by
    the launcher and handed to the process, lets one of them start it."""
    import subprocess
    import sys
    import threading

    run, data = bare_run
    real = analysis_job.status
    monkeypatch.setattr(
        analysis_job,
        "status",
        lambda r, d, limit=0: analysis_job.AnalysisJob(real(r, d, limit).folder, "none"),
    )
    started = []

    def fake_spawn(cmd, log, *, nice=0, hold=None):  # holds the lock as the job would
        proc = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=(hold,)
        )
        started.append(proc)
        return proc

    monkeypatch.setattr(background, "spawn", fake_spawn)
    at_once = threading.Barrier(2)

    def session() -> None:
        at_once.wait()
        analysis_job.start(run, data)

    threads = [threading.Thread(target=session) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert len(started) == 1
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
