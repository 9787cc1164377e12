"""The dashboard's server as bench/crowd.py starts it: `streamlit run` with two probes.

    python bench/served.py run app.py [streamlit's options]

It is Streamlit's own command, run in this process after two probes are set up; they
write into the timings file (`TINYVIZ_TIMINGS`, beside app.py's script-run times):

- the event loop's lag: every `EVERY` seconds a thread asks the server's event loop (the
  one that takes uploads, reruns and every message to the browsers) to run a no-op and
  notes how late it ran. A visitor's wait that the server's script runs do not explain is
  either here (the loop starved, of the interpreter lock or of the CPU) or in the browser;
  one line a second: `{"page": "(event loop)", "at": ..., "lags": [ms, ...]}`.
- where the memory is, on SIGUSR1: the resident set, glibc's heap (in use, free but held,
  mmapped: `mallinfo2`), Python's small-object arenas, threads: one line
  `{"page": "(memory)", ...}`. A resident set that stays up after a crowd is live data
  when glibc's "in use" stays up, fragmentation when its "free" does.

With `TINYVIZ_TRACEMALLOC=FOLDER` Python's allocations are traced too (tracemalloc, 8
frames: the server runs about twice as slow) and each SIGUSR1 also dumps a snapshot into
FOLDER (`snapshot-1.trace`, ...), to compare what a crowd left with `tracemalloc`'s
`Snapshot.load(...).compare_to(...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from tinyviz.runtime import timings

EVERY = 0.1  # seconds between two looks at the event loop


class LoopLag(threading.Thread):
    """Asks `loop` to run a no-op every `every` seconds; writes how late each ran."""

    def __init__(self, loop: asyncio.AbstractEventLoop, every: float = EVERY):
        super().__init__(name="bench-loop-lag", daemon=True)
        self.loop, self.every, self.lags = loop, every, []

    def run(self) -> None:
        last = time.time()
        while not self.loop.is_closed():
            asked = time.perf_counter()
            ran = threading.Event()
            self.loop.call_soon_threadsafe(self._ran, asked, ran)
            ran.wait(30.0)
            time.sleep(max(0.0, self.every - (time.perf_counter() - asked)))
            if time.time() - last >= 1.0:
                lags, self.lags = self.lags, []
                last = time.time()
                timings.write({"page": "(event loop)", "at": round(last, 3), "lags": lags})

    def _ran(self, asked: float, ran: threading.Event) -> None:
        self.lags.append(round((time.perf_counter() - asked) * 1000, 2))
        ran.set()


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )  # fmt: skip
    ]


def memory() -> dict:
    """Where the process's memory is, in MB (what glibc and Python's allocator say)."""
    mb = 1 / 2**20
    row: dict = {"page": "(memory)", "at": round(time.time(), 3)}
    status = Path("/proc/self/status").read_text()
    for key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
        found = re.search(rf"^{key}:\s+(\d+)", status, re.M)
        if found:
            value = int(found.group(1))
            row[key] = value if key == "Threads" else round(value / 1024, 1)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        row["malloc_in_use"] = round(info.uordblks * mb, 1)
        row["malloc_free_held"] = round(info.fordblks * mb, 1)
        row["malloc_mmapped"] = round(info.hblkhd * mb, 1)
    row.update(_pymalloc())
    return row


def _pymalloc() -> dict:
    """Python's small-object allocator: its arenas and the bytes in its blocks in use
    (`sys._debugmallocstats`, which writes to the C stderr: read back from a file)."""
    with tempfile.TemporaryFile(mode="w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    got = {}
    for key, pattern in (
        ("pymalloc_arenas", r"# arenas allocated current\s*=\s*([\d,]+)"),
        ("pymalloc_in_use", r"# bytes in allocated blocks\s*=\s*([\d,]+)"),
    ):
        found = re.search(pattern, text)
        if found:
            got[key] = int(found.group(1).replace(",", ""))
    if "pymalloc_in_use" in got:
        got["pymalloc_in_use"] = round(got["pymalloc_in_use"] / 2**20, 1)
    return got


def _snapshot() -> None:
    import tracemalloc

    folder = Path(os.environ["TINYVIZ_TRACEMALLOC"])
    n = len(list(folder.glob("snapshot-*.trace"))) + 1
    tracemalloc.take_snapshot().dump(str(folder / f"snapshot-{n}.trace"))


def _on_signal(*_) -> None:
    timings.write(memory())
    if os.environ.get("TINYVIZ_TRACEMALLOC"):
        _snapshot()


def main() -> None:
    from streamlit.web import bootstrap, cli

    if os.environ.get("TINYVIZ_TRACEMALLOC"):
        import tracemalloc

        Path(os.environ["TINYVIZ_TRACEMALLOC"]).mkdir(parents=True, exist_ok=True)
        tracemalloc.start(8)

    on_start = bootstrap._on_server_start  # private: the probe needs the server's loop

    def started(server) -> None:
        on_start(server)
        LoopLag(asyncio.get_running_loop()).start()

    bootstrap._on_server_start = started
    signal.signal(signal.SIGUSR1, _on_signal)
    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
