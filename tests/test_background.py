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


def autogroup_nice(text: str) -> int:
    return int(text.split("nice")[1])


@pytest.mark.skipif(background.autogroup_nice() is None, reason="no autogroup scheduling here")
def test_a_child_in_its_own_session_lowers_its_sessions_group_too(tmp_path):
    """Where Linux shares the CPU between sessions first, a niced job in a session of its
    own would still take as much as the server: its group is lowered with it, and only the
    group the launcher made for it (a job run by hand from a shell leaves the shell's)."""
    code = (
        "from pathlib import Path; from tinyviz.runtime.background import enter_child; "
        "enter_child(); print(Path('/proc/self/autogroup').read_text().strip())"
    )
    ours = background.autogroup_nice()
    background.spawn([PY, "-c", code], tmp_path / "own.log", nice=3).wait(timeout=60)
    assert autogroup_nice(background.log_tail(tmp_path / "own.log", 1)[0]) == min(19, ours + 3)
    env = {**os.environ, background.NICE_ENV: "3"}
    same = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert autogroup_nice(same.stdout) == ours  # in our session: our group stays as it is


def test_an_empty_autogroup_file_leaves_the_group_as_it_is(tmp_path, monkeypatch):
    """Some containers show /proc/self/autogroup empty: a child must still start."""
    empty = tmp_path / "autogroup"
    empty.write_text("")
    monkeypatch.setattr(background, "AUTOGROUP", empty)
    assert background.autogroup_nice() is None
    background.lower_session_priority(3)
    assert empty.read_text() == ""


class Gate:
    """A queue's handler that stops inside each request until the test lets it go on:
    the test knows what the worker is doing without looking at a clock."""

    def __init__(self) -> None:
        self.inside = {name: threading.Event() for name in "abcd"}
        self.go = {name: threading.Event() for name in "abcd"}
        self.done: list[str] = []

    def __call__(self, name: str, payload: str) -> None:
        self.inside[name].set()
        assert self.go[name].wait(30)
        self.done.append(payload)


def serving(queue: Queue, handle, **kw) -> threading.Thread:
    worker = threading.Thread(target=queue.serve, args=(0, handle), kwargs=kw, daemon=True)
    worker.start()
    return worker


def test_a_queue_serves_the_oldest_request_first_and_tells_the_others_their_place(tmp_path):
    queue, gate, stop = (
        Queue(tmp_path / "q", slots=1, idle=60, poll=0.01),
        Gate(),
        threading.Event(),
    )
    for name in "abc":
        queue.submit(name, f"payload {name}")
    queue.submit("b", "again")  # asked for twice: still one request
    assert [queue.place(n) for n in "abc"] == [0, 1, 2] and queue.waiting() == 3
    worker = serving(queue, gate, stop=stop)
    assert gate.inside["a"].wait(30)
    assert queue.taken("a") and queue.working() == 1
    assert (queue.place("b"), queue.place("c"), queue.waiting()) == (1, 2, 2)
    gate.go["a"].set()
    assert gate.inside["b"].wait(30)
    assert queue.place("a") is None and queue.place("c") == 1
    stop.set()
    gate.go["b"].set()
    worker.join(30)
    assert gate.done == ["payload a", "payload b"]  # c waits for the next worker
    assert queue.place("c") == 0 and queue.working() == 0


def test_a_worker_is_counted_on_only_while_it_will_take_a_request_asked_now(tmp_path):
    """The notes a worker keeps say what it has done (`note`) and how long it will wait
    for the next request: busy, it is ready; idle near its end, it is not; ended, gone."""
    queue, gate, stop = (
        Queue(tmp_path / "q", slots=1, idle=30, poll=0.01),
        Gate(),
        threading.Event(),
    )
    queue.submit("a", "")
    assert queue.ready() == []  # no worker
    worker = serving(queue, gate, stop=stop)
    assert gate.inside["a"].wait(30)
    (busy,) = queue.ready(lasting=1000)  # computing: it takes the next one after this
    assert busy["until"] is None and busy["pid"] == os.getpid()
    queue.note(0, maps=["umap"])
    gate.go["a"].set()
    deadline = time.time() + 30
    while queue._note(0).get("until") is None and time.time() < deadline:
        time.sleep(0.01)
    (idle,) = queue.ready(lasting=10)
    assert idle["maps"] == ["umap"]  # what it did stays in its note
    assert queue.ready(lasting=31) == []  # it will have ended by then
    stop.set()
    worker.join(30)
    assert queue.ready() == []


def test_a_worker_still_starting_is_not_judged_by_its_predecessors_note(tmp_path):
    queue = Queue(tmp_path / "q", slots=1)
    queue.folder.mkdir(parents=True)
    (queue.folder / "slot-0.note").write_text('{"pid": 1, "until": null, "maps": ["umap"]}')
    hold = [PY, "-c", "import time; time.sleep(60)"]  # launched, never serving
    queue.submit("a", "")
    assert queue.start_workers(lambda k: hold) == 1
    try:
        assert queue.ready() == []  # the note of a worker that died busy is not this one's
    finally:
        queue.worker(0).stop()


def test_a_request_nobody_asked_about_for_long_is_dropped_before_it_starts(tmp_path):
    queue, gate = Queue(tmp_path / "q", slots=1, idle=0, abandon=60, poll=0.01), Gate()
    queue.submit("a", "left behind")
    queue.submit("b", "still wanted")
    old = time.time() - 120
    for path in (tmp_path / "q").glob("req-*"):
        os.utime(path, (old, old))  # nobody asked for two minutes...
    queue.want("b")  # ...but b's visitor asks now
    assert queue.place("b") == 0  # a, stale, is not counted before it
    gate.go["b"].set()
    queue.serve(0, gate)  # idle=0: serves what waits, then ends
    assert gate.done == ["still wanted"] and not gate.inside["a"].is_set()
    assert queue.place("a") is None and queue.place("b") is None


def test_a_request_a_dead_worker_was_computing_is_reported_not_computed_again(tmp_path):
    queue, gate, lost = Queue(tmp_path / "q", slots=1, idle=0, poll=0.01), Gate(), []
    queue.submit("a", "crashes its worker")
    (entry,) = (tmp_path / "q").glob("req-*")
    (tmp_path / "q" / "slot-0.current").write_text(entry.name)  # what a killed worker leaves
    queue.serve(0, gate, lost=lambda name, payload: lost.append((name, payload)))
    assert lost == [("a", "crashes its worker")] and not gate.inside["a"].is_set()
    assert queue.place("a") is None


def test_a_failing_request_does_not_stop_its_worker(tmp_path):
    queue, seen = Queue(tmp_path / "q", slots=1, idle=0, poll=0.01), []

    def handle(name: str, payload: str) -> None:
        seen.append(name)
        if name == "a":
            raise RuntimeError("bad request")

    queue.submit("a", "")
    queue.submit("b", "")
    queue.serve(0, handle)
    assert seen == ["a", "b"] and queue.waiting() == 0


def test_workers_start_once_per_slot_and_only_while_requests_wait(tmp_path):
    queue = Queue(tmp_path / "q", slots=1)
    hold = [PY, "-c", "import time; time.sleep(60)"]  # holds the slot it was given till killed
    assert queue.start_workers(lambda k: hold) == 0  # nothing waits: no worker
    queue.submit("a", "")
    assert queue.start_workers(lambda k: hold) == 1
    first = queue.worker(0).launched()
    assert queue.start_workers(lambda k: hold) == 1 and queue.worker(0).launched() == first
    queue.worker(0).stop()
    assert queue.working() == 0


def test_a_request_name_cannot_leave_the_queue_folder(tmp_path):
    with pytest.raises(background.JobError, match="not a request name"):
        Queue(tmp_path / "q").submit("../x", "")


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
