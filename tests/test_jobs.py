"""Training jobs: real trainer processes started, refused, stopped, resumed and found again.

The jobs use a small MLP (the trainer is the same for every model, and a ResNet would only
make the tests slower); its `hidden` option exercises `--opt`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyviz import io, runs
from tinyviz.cli import build_parser, config_from_args
from tinyviz.config import AugmentConfig, TrainConfig
from tinyviz.runs import jobs
from tinyviz.runs.progress import TrainProgress, write_progress
from tinyviz.runtime.background import Lock

TIMEOUT = 120


def small(epochs: int) -> TrainConfig:
    return TrainConfig(
        model="mlp",
        model_options={"hidden": 32},
        epochs=epochs,
        batch_size=32,
        lr=0.05,
        snapshots=2,
    )


def wait_for(run_dir: Path, until, timeout: float = TIMEOUT) -> jobs.Job:
    deadline = time.monotonic() + timeout
    while True:
        job = jobs.status(run_dir)
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {job}\n" + "\n".join(jobs.log_tail(run_dir)))
        time.sleep(0.05)


def epochs_logged(run_dir: Path) -> list[int]:
    return [row["epoch"] for row in io.read_jsonl(run_dir / runs.RunFolder.METRICS)]


def parse(args: list[str]) -> TrainConfig:
    return config_from_args(build_parser().parse_args(["train", *args, "--out", "x"]))


# ---------------------------------------------------------------- command line


@pytest.mark.parametrize(
    "cfg",
    [
        TrainConfig(),
        small(3),
        TrainConfig(
            model="resnet18",
            model_options={
                "width": 8,
                "dropout": 0.25,
                "stem": "tiny",
                "flag": True,
                "sizes": [1, 2],
            },
            epochs=2,
            lr=5e-05,
            weight_decay=2.5e-5,
            nesterov=False,
            optimizer="adamw",
            schedule="cosine",
            channels_last=False,
            compile=True,
            precision="bf16",
            augment=AugmentConfig(
                flip=False, translate=0, rotate=12.5, crop=56, mixup=0.2, mix_prob=0.5
            ),
        ),
    ],
)
def test_command_line_round_trips_to_the_same_config(cfg):
    args = jobs.train_args(cfg)
    assert parse(args) == cfg
    assert args[:2] == [f"--model={cfg.model}", f"--epochs={cfg.epochs}"]


def test_command_names_the_run_the_data_and_this_python(tmp_path):
    cmd = jobs.train_command(small(2), tmp_path / "run", "data.zip")
    assert cmd[:4] == [sys.executable, "-m", "tinyviz", "train"]
    assert f"--out={(tmp_path / 'run').resolve()}" in cmd and "--quiet" in cmd
    assert f"--data={Path('data.zip').resolve()}" in cmd
    resume = jobs.train_command(None, tmp_path / "run", None, resume=True)
    assert f"--resume={(tmp_path / 'run').resolve()}" in resume
    assert not any(a.startswith("--data") for a in resume)


# ------------------------------------------------------------------- processes


def test_a_job_runs_to_the_end_and_a_second_one_is_refused(tmp_path, tiny_zip):
    jobs_dir, run = tmp_path / "jobs", tmp_path / "run"
    job = jobs.start(small(3), run, data=str(tiny_zip), jobs_dir=jobs_dir)
    assert job.active and job.pid and job.command[-1] == "--quiet"
    with pytest.raises(jobs.JobError, match="already running"):
        jobs.start(small(3), tmp_path / "other", data=str(tiny_zip), jobs_dir=jobs_dir)
    assert not (tmp_path / "other").exists()
    assert jobs.current(jobs_dir).run_dir == run.resolve()  # a reloaded page finds it
    done = wait_for(run, lambda j: not j.active)
    assert done.status == "done", jobs.log_tail(run)
    assert epochs_logged(run) == [1, 2, 3]
    assert done.progress.epoch == 3 and done.progress.last.epoch == 3
    assert jobs.current(jobs_dir) is None  # finished: a new job may start
    assert jobs.latest(jobs_dir).status == "done"
    assert any(line.startswith("epoch 3:") for line in jobs.log_tail(run, 5))
    with pytest.raises(jobs.JobError, match="already holds a run"):
        jobs.start(small(3), run, data=str(tiny_zip), jobs_dir=jobs_dir)
    with pytest.raises(jobs.JobError, match="already finished"):
        jobs.resume(run, jobs_dir=jobs_dir, data=str(tiny_zip))


def test_stop_then_resume_logs_every_epoch_once(tmp_path, tiny_zip):
    jobs_dir, run = tmp_path / "jobs", tmp_path / "run"
    epochs = 12
    jobs.start(small(epochs), run, data=str(tiny_zip), jobs_dir=jobs_dir)
    wait_for(run, lambda j: not j.active or j.progress and j.progress.last)  # an epoch saved
    stopped = jobs.stop(run, jobs_dir=jobs_dir)
    assert stopped.status == "stopped", jobs.log_tail(run)
    assert "Resume continues after epoch" in stopped.message and stopped.resumable
    assert jobs.current(jobs_dir) is None and not Lock(jobs_dir / jobs.LOCK).held()
    done_before = len(epochs_logged(run))
    assert 1 <= done_before < epochs

    resumed = jobs.resume(run, jobs_dir=jobs_dir, data=str(tiny_zip))
    assert resumed.active and "--resume=" + str(run.resolve()) in resumed.command
    assert jobs.status(run).status in ("starting", "running")  # old progress is not mistaken
    done = wait_for(run, lambda j: not j.active)
    assert done.status == "done", jobs.log_tail(run)
    assert epochs_logged(run) == list(range(1, epochs + 1))


def test_a_job_that_fails_says_why(tmp_path):
    jobs_dir, run = tmp_path / "jobs", tmp_path / "run"
    jobs.start(small(2), run, data=str(tmp_path / "missing.zip"), jobs_dir=jobs_dir)
    failed = wait_for(run, lambda j: not j.active)
    assert failed.status == "failed"
    assert jobs.log_tail(run, 1)[0].startswith("error:")
    assert jobs.current(jobs_dir) is None  # its process is gone, so a new job may start


def test_a_running_status_whose_process_died_is_reported(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = dead_pid()
    write_progress(
        runs.RunFolder(run), TrainProgress("running", dead, time.time(), time.time(), epoch=1)
    )
    job = jobs.status(run)
    assert job.status == jobs.ENDED and not job.active
    assert jobs.status(tmp_path / "nothing").status == "none"


def test_a_lock_left_by_a_dead_job_is_free(tmp_path):
    """The kernel drops the lock with its process: what the file says does not matter."""
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    lock = jobs_dir / jobs.LOCK
    lock.write_text(json.dumps({"pid": dead_pid(), "run_dir": str(tmp_path / "gone")}))
    assert jobs.current(jobs_dir) is None
    lock.write_text("{not json")
    assert jobs.current(jobs_dir) is None
    fd = Lock(lock).take()
    assert fd is not None  # a new job may take it
    os.close(fd)


def test_a_live_lock_is_kept(tmp_path):
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    lock = jobs_dir / jobs.LOCK
    code = (
        "import json, os, sys; from tinyviz.runtime.background import Lock; "
        "fd = Lock(sys.argv[1]).take(); "
        "os.write(fd, json.dumps({'pid': os.getpid(), 'run_dir': sys.argv[2]}).encode()); "
        "print('held', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(lock), str(tmp_path / "run")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        job = jobs.current(jobs_dir)
        assert job.status == "starting" and job.pid == holder.pid
        with pytest.raises(jobs.JobError, match=r"already running \(run, pid"):
            jobs.start(small(1), tmp_path / "run2", data=None, jobs_dir=jobs_dir)
        assert not (tmp_path / "run2").exists()
    finally:
        holder.stdin.close()
        holder.wait()
    assert jobs.current(jobs_dir) is None


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
