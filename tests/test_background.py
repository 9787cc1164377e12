"""The one background-work module: locks tested without taking them, launches that hold
their lock from the first instant, reaped children, priority lowered by the child, the
bounded queue."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tinyviz import io
from tinyviz.runtime import background, tasks
from tinyviz.runtime.background import JobFiles, Lock, Queue

PY = sys.executable


def until(condition, timeout: float = 30.0) -> None:
    """Wait for a condition another process makes true (a bound, not a race)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


def holder_process(lock: Path) -> subprocess.Popen:
    """Another process that takes `lock`, says so, and keeps it until its stdin closes."""
    code = (
        "import sys; from tinyviz.runtime.background import Lock; "
        "fd = Lock(sys.argv[1]).take(); print('held', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [PY, "-c", code, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_held_by_another_process_is_seen_without_taking_it(tmp_path, monkeypatch):
    lock = Lock(tmp_path / "job.lock")
    assert not lock.held()  # no file yet
    other = holder_process(lock.path)
    try:
        calls = []
        real = background.fcntl.fcntl
        monkeypatch.setattr(
            background.fcntl, "fcntl", lambda fd, cmd, arg: calls.append(cmd) or real(fd, cmd, arg)
        )
        assert lock.held()
        assert calls == [background.fcntl.F_OFD_GETLK]  # a test, never a take
        monkeypatch.undo()
        assert lock.take() is None  # and it is really held
    finally:
        other.stdin.close()
        other.wait()
    assert not lock.held()  # the kernel dropped it with the process
    fd = lock.take()
    assert fd is not None and lock.held()  # two opens conflict within one process too
    os.close(fd)


def test_a_launched_job_holds_its_lock_from_the_start(tmp_path):
    job = JobFiles(tmp_path / "x.lock", tmp_path / "x.json", tmp_path / "x.log")
    cmd = [PY, "-c", "import time; time.sleep(60)"]
    launched = job.launch(cmd, note={"run_dir": "r"})
    try:
        assert job.running()  # no grace period: the child holds it before it has run a line
        assert job.launched() == launched and launched.command == tuple(cmd)
        assert job.holder()["run_dir"] == "r" and job.holder()["pid"] == launched.pid
        with pytest.raises(background.Busy):
            job.launch(cmd)  # a second session asking at once
    finally:
        job.stop(wait=30)
    assert not job.running() and not background.pid_alive(launched.pid)
    assert background.child(launched.pid) is None  # reaped
    assert job.holder() == {}


def test_the_child_finds_the_lock_it_was_given_already_held(tmp_path):
    job = JobFiles(tmp_path / "x.lock", tmp_path / "x.json", tmp_path / "x.log")
    code = (
        "import sys; from tinyviz.runtime.background import Lock\n"
        "with Lock(sys.argv[1]).hold() as mine: print('mine' if mine else 'busy')\n"
    )
    pid = job.launch([PY, "-c", code, str(job.lock)]).pid
    background.child(pid).wait(timeout=60)
    assert job.log_tail(1) == ["mine"]


def test_a_failed_job_says_why_in_one_line(tmp_path):
    job = JobFiles(tmp_path / "x.lock", tmp_path / "x.json", tmp_path / "x.log")
    code = "import sys; print('working'); print('error: no data', file=sys.stderr); sys.exit(1)"
    pid = job.launch([PY, "-c", code]).pid
    background.child(pid).wait(timeout=60)
    assert job.failed() == "error: no data"
    assert job.log_tail(3)[-2:] == ["working", "error: no data"]
    assert job.log_tail(5)[0].startswith("$ ")  # the command line heads each launch's output


def test_log_tail_keeps_the_last_lines_only(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n\n" for i in range(50_000)) + "bar 1\rbar 2\r")
    assert background.log_tail(log, 3) == ["line 49999", "bar 1", "bar 2"]
    assert background.log_tail(tmp_path / "missing.log") == []


def test_a_zombie_is_dead_and_our_finished_children_are_reaped(tmp_path):
    raw = subprocess.Popen([PY, "-c", "pass"])  # not ours: nobody polls it
    until(lambda: state_of(raw.pid) == "Z")
    assert not background.pid_alive(raw.pid)
    # the same one test for a dead writer's temporary file: a zombie's is stale
    tmp = tmp_path / f".x.json.{raw.pid}.abcd.tmp"
    tmp.write_text("{")
    assert io.remove_stale_in(tmp_path) == 1 and not tmp.exists()
    raw.wait()

    proc = background.spawn([PY, "-c", "pass"], tmp_path / "x.log")
    until(lambda: state_of(proc.pid) == "Z")  # exited, not yet collected
    background.reap()
    assert state_of(proc.pid) == "gone" and background.child(proc.pid) is None
    assert not background.pid_alive(proc.pid)
    assert not background.pid_alive(None) and not background.pid_alive(-1)


def test_the_child_lowers_its_own_priority(tmp_path, monkeypatch):
    seen = {}
    real = subprocess.Popen

    def popen(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(background.subprocess, "Popen", popen)
    code = (
        "import os; from tinyviz.runtime.background import enter_child; before = os.nice(0); "
        "enter_child(); print(os.nice(0) - before, os.environ.get('TINYVIZ_NICE'))"
    )
    proc = background.spawn([PY, "-c", code], tmp_path / "x.log", nice=3)
    proc.wait(timeout=60)
    assert background.log_tail(tmp_path / "x.log", 1) == ["3 None"]  # not passed further
    assert "preexec_fn" not in seen  # nothing runs between fork and exec in the server


def test_a_bounded_queue_runs_one_job_and_tells_the_next_its_place(tmp_path):
    queue = Queue(tmp_path / "q", slots=1, poll=0.01)
    release, working = threading.Event(), []

    def job(ticket: str, hold: threading.Event | None) -> None:
        with queue.turn(ticket):
            working.append(ticket)
            if hold is not None:
                hold.wait(30)

    first = threading.Thread(target=job, args=("a", release))
    first.start()
    until(lambda: queue.place("a") == 0)
    second = threading.Thread(target=job, args=("b", None))
    second.start()
    until(lambda: queue.place("b") == 1)
    assert queue.working() == 1 and working == ["a"]
    release.set()
    first.join(30)
    second.join(30)
    assert working == ["a", "b"]
    assert queue.place("a") is None and queue.place("b") is None and queue.working() == 0


def test_a_queued_job_can_give_up_waiting(tmp_path):
    queue = Queue(tmp_path / "q", slots=1, poll=0.01)
    fd = Lock(queue.folder / "slot-0.lock").take()  # the slot is busy for good
    stop = threading.Event()
    stop.set()
    with pytest.raises(background.JobError, match="stopped"), queue.turn("t", stop):
        pass
    assert queue.place("t") is None  # its ticket went with it
    os.close(fd)


# ------------------------------------------------------------------------- tasks


def test_a_task_says_where_it_is_from_its_files(tmp_path, monkeypatch):
    """none -> running (with the worker's estimate, counted down on a fake clock) -> done;
    failed with its first line; a launched process that died before its first report
    says why from its log."""
    clock = [1000.0]
    monkeypatch.setattr(tasks, "_now", lambda: clock[0])
    task = tasks.Task(tmp_path, "t")
    assert task.state().state == "none"
    with task.working() as report:
        report(0.25, "a quarter", True, seconds_left=30.0)
        now = task.state()
        assert (now.state, now.fraction, now.message) == ("running", 0.25, "a quarter")
        clock[0] += 10
        assert task.state().eta_seconds == 20.0  # the worker's 30 s, 10 s ago
        report(0.5, "half", True)
        clock[0] += 10
        assert task.state().eta_seconds == 20.0  # no estimate given: the rate so far
        with pytest.raises(background.JobError), task.working():
            pass  # one worker at a time
    assert task.state().state == "done"
    with pytest.raises(ValueError), task.working():
        raise ValueError("bad input\nmore")
    failed = task.state()
    assert failed.state == "failed" and failed.error == "bad input" and not failed.active
    assert task.clear() and task.state().state == "none"
    dead = task.start([PY, "-c", "import sys; sys.exit('error: no such data set')"])
    assert dead.state in ("starting", "failed")
    until(lambda: not task.files.running())
    background.child(task.files.launched().pid).wait(30)
    assert task.state().error == "error: no such data set"


def test_a_queued_task_says_its_place_and_starts_when_the_slot_frees(tmp_path):
    queue = Queue(tmp_path / "q", slots=1, poll=0.01)
    first, second = tasks.Task(tmp_path, "a"), tasks.Task(tmp_path, "b")
    inside, release, done = threading.Event(), threading.Event(), []

    def work(task: tasks.Task, hold: threading.Event | None) -> None:
        with task.working(queue=queue):
            inside.set()
            if hold is not None:
                hold.wait(30)
            done.append(task.name)

    a = threading.Thread(target=work, args=(first, release))
    a.start()
    inside.wait(30)
    b = threading.Thread(target=work, args=(second, None))
    b.start()
    until(lambda: second.state().state == "waiting")
    assert second.state().place == 1 and first.state().state == "running"
    release.set()
    a.join(30)
    b.join(30)
    assert done == ["a", "b"] and second.state().state == "done"
