"""`kill -USR1` on a process that enabled `tinyviz.runtime.stacks` prints every thread's stack
and the process goes on (the browser tests rely on it to say where a stuck page waits)."""

import signal
import subprocess
import sys

import pytest

CHILD = """
import os, signal, threading, time
from tinyviz.runtime import stacks
assert stacks.enable()
stuck = threading.Event()
threading.Thread(target=stuck.wait, name="waiting-page", daemon=True).start()
time.sleep(0.2)
os.kill(os.getpid(), signal.SIGUSR1)
time.sleep(0.2)
print("still running")
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_sigusr1_prints_every_thread_and_the_process_goes_on():
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "still running"
    assert "most recent call first" in res.stderr
    assert res.stderr.count("hread 0x") >= 2  # the main ("Current thread") and the waiting one
    assert "in wait" in res.stderr  # where the other thread waits


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_a_stderr_without_a_file_descriptor_falls_back_to_the_process_own(monkeypatch):
    """Where stderr is captured in memory (pytest's capsys, some hosts) the page's first run
    failed with `UnsupportedOperation: fileno`; the process's own stderr is used then."""
    import io

    from tinyviz.runtime import stacks

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert stacks.enable()
    monkeypatch.setattr(sys, "__stderr__", None)
    assert not stacks.enable()  # nowhere to write: said, not raised
