"""The server's janitor (`tinyviz.runtime.janitor`): memory back to the system once a crowd
has left, and no collection while people click."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tinyviz.runtime import janitor


def test_the_janitor_trims_once_when_the_server_falls_quiet_after_work(monkeypatch):
    clock, trims = [0.0], []
    monkeypatch.setattr(janitor, "trim", lambda: trims.append(clock[0]) or True)
    j = janitor.Janitor(every=10.0, quiet=0.05, clock=lambda: clock[0])
    assert not j.look()  # quiet from the start: nothing was freed
    clock[0] += 5.0  # half a core for ten seconds: visitors are clicking
    assert not j.look()
    clock[0] += 2.0
    assert not j.look() and not trims  # still busy: nothing while they click
    clock[0] += 0.2  # under 5% of a core: they have left
    assert j.look() and trims == [7.2]
    clock[0] += 0.1
    assert not j.look() and j.trims == 1  # once per quiet spell, not every ten seconds
    clock[0] += 3.0
    assert not j.look()
    clock[0] += 0.1
    assert j.look() and j.trims == 2  # the next crowd, gone too


def test_after_a_longer_quiet_it_forgets_what_only_the_crowd_needed(monkeypatch):
    clock, trims, forgotten = [0.0], [], []
    monkeypatch.setattr(janitor, "trim", lambda: trims.append(clock[0]) or True)
    j = janitor.Janitor(
        every=10.0, quiet=0.05, forget=lambda: forgotten.append(clock[0]), forget_after=30.0,
        clock=lambda: clock[0],
    )  # fmt: skip
    for _ in range(4):
        assert not j.look()  # a server nobody has used: nothing to forget
    clock[0] += 6.0  # a crowd
    j.look()
    looks = [j.look() for _ in range(4)]  # then forty seconds of quiet
    assert looks == [True, False, True, False]  # trimmed at once, forgot 30 s in
    assert forgotten == [6.0] and len(trims) == 2
    clock[0] += 0.3  # one visitor reads a page: under 5% of a core, still quiet
    assert not j.look() and forgotten == [6.0]
    clock[0] += 6.0  # the next crowd
    j.look()
    assert [j.look() for _ in range(3)] == [True, False, True] and len(forgotten) == 2


FREED = """
import sys
from tinyviz.runtime import janitor

def anon():
    line = next(x for x in open("/proc/self/status") if x.startswith("RssAnon"))
    return int(line.split()[1]) // 1024

chunks = [bytes(4000) for _ in range(25_000)]  # 100 MB of small blocks on the C heap
kept = chunks[::64]  # a few stay alive all over it: the heap cannot shrink from its end
del chunks
before = anon()
janitor.trim()
print(before, anon())
"""


@pytest.mark.skipif(janitor._libc() is None, reason="no glibc malloc_trim here")
def test_trim_gives_the_freed_heap_back_to_the_system():
    out = subprocess.run([sys.executable, "-c", FREED], capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    assert before - after > 50, (before, after)  # MB resident that Python had freed


ARENAS = """
import ctypes, sys, threading
import numpy as np
from tinyviz.runtime import janitor

if sys.argv[1] == "limit":
    assert janitor.limit_arenas(1)


def work():  # threads that allocate at once (numpy lets go of the interpreter lock)
    for _ in range(300):
        parts = [np.ones(50_000) for _ in range(4)]
        sum(p.sum() for p in parts)


threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per heap arena, on stderr
"""


@pytest.mark.skipif(janitor._libc() is None, reason="no glibc malloc here")
def test_limited_arenas_keep_threads_on_the_heaps_allowed():
    def arenas(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", ARENAS, mode], capture_output=True,
                             text=True, check=True)  # fmt: skip
        return sum(line.startswith("Arena ") for line in out.stderr.splitlines())

    assert arenas("limit") == 1 < arenas("free")
