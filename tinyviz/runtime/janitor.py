"""Memory back to the system once the dashboard's server is quiet again.

A crowd leaves behind what its sessions freed: Python objects in reference cycles that
the collector has not reached yet, and the C heap's free pages, which glibc keeps in each
thread's arena (every session runs in a thread of its own) instead of returning them. The
server's resident memory then stays at its peak for good (410 MB above its start an hour
after one crowd had left, issue 19). Streamlit's remedy, a full collection after every
script run, costs half a second of CPU holding the GIL each time once torch and its
neighbours are loaded: a crowd paid it on every click and every timed refresh.

So a `Janitor` thread looks at the process's CPU time every `every` seconds; once a whole
period has passed with the process nearly idle (under `quiet` of a core) after a busy one,
it collects every generation and asks glibc to give free heap pages back (`malloc_trim`).
Once the quiet has lasted `forget_after` seconds, it also calls `forget` (the dashboard
drops the explain pages' models and analyses there: a crowd going through every run left
them all loaded, and the next visitor's first click loads the one it needs in a fraction
of a second) and trims again. While people click, it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
import time

QUIET = 0.05  # share of one core under which the process counts as idle
EVERY = 10.0  # seconds between looks
FORGET_AFTER = 40.0  # seconds of quiet before `forget` (after `server.disconnectedSessionTTL`)


def trim() -> bool:
    """Collect every generation, then return the C heap's free pages to the system
    (glibc's `malloc_trim(0)`, all arenas); False where there is no such call."""
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


M_ARENA_MAX = -8  # glibc's mallopt parameter: how many heap arenas threads may have
ARENAS = 2  # for the server: its sessions' threads share two


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Let the process's threads share at most `arenas` C heaps (glibc's `mallopt`); False
    where there is no such call. glibc gives threads new arenas (up to 8 per core) as they
    contend for one, and each keeps the pages its thread's frees leave fragmented:
    Python-visible objects a crowd left were back to their count after it (a census: the
    same models, arrays and tensors), while the server's resident memory stayed 0.2-0.4 GB
    above its start (bench/crowd.py). Arenas made before the call stay."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "malloc_trim"):
        return None  # not glibc (musl, macOS): freed memory is the allocator's business
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


class Janitor:
    """Trims the process (`trim`) when it falls quiet after work, and calls `forget` once
    the quiet has lasted `forget_after` seconds: each once per quiet spell."""

    def __init__(
        self,
        every: float = EVERY,
        quiet: float = QUIET,
        *,
        forget=None,
        forget_after: float = FORGET_AFTER,
        clock=time.process_time,
    ):
        self.every, self.quiet, self.clock = every, quiet, clock
        self.forget, self.forget_after = forget, forget_after
        self.trims = 0
        self._busy = False  # work since the last trim
        self._quiet_for = 0.0  # seconds of quiet since the last work
        self._forgot = True  # `forget` done since the last work (nothing to forget at first)
        self._last = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tinyviz-janitor", daemon=True)

    def start(self) -> Janitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def look(self) -> bool:
        """One look (what the thread does every `every` seconds): True when it trimmed."""
        now = self.clock()
        used, self._last = now - self._last, now
        if used > self.quiet * self.every:
            self._busy, self._forgot, self._quiet_for = True, False, 0.0
            return False
        self._quiet_for += self.every
        forget = (
            self.forget is not None and not self._forgot and self._quiet_for >= self.forget_after
        )
        if not (self._busy or forget):
            return False
        if forget:
            self.forget()
            self._forgot = True
        trim()
        self._busy = False
        self.trims += 1
        self._last = self.clock()  # our own CPU is not the next period's work
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.look()
