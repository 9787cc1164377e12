"""Decode uploads in worker processes that a bomb can cost, but never the server.

A purpose-built file can hold a decoder for minutes (a progressive JPEG repeating a scan)
or make it allocate gigabytes, and neither can be interrupted inside the server's process.
So `decode()` hands the bytes to a worker: a separate Python process (started with
`subprocess`, not `fork`, since the server runs threads) that limits its own address
space (RLIMIT_AS) and CPU time (RLIMIT_CPU) and is killed by the parent at a wall-clock
deadline. A killed or crashed worker is replaced on the next request.

Workers are kept warm in a small pool, so an ordinary photo costs one round trip through
a pipe (milliseconds), and the pool is thread-safe: Streamlit runs each session in its own
thread, and each request takes an idle worker or waits for one. The protocol is plain
bytes both ways (a length-prefixed JSON header, then raw pixels): nothing is unpickled.

Run as `python -m tinyviz.demo.sandbox SECONDS MEMORY_BYTES`, this module is the worker.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import queue
import resource
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageError

# A decode's budget is CPU time, not wall time: on a loaded server (another visitor's
# explanation on both cores) a 12-megapixel HEIC photo (1.5 CPU seconds) still gets its
# seconds, and a file built to stall a decoder is stopped after the same CPU seconds.
SECONDS = 4.0  # CPU seconds a decode may use before the worker is killed
WALL_SECONDS = 30.0  # and the wall time it may take however busy the machine is
POLL = 0.1  # how often the parent looks at the worker's CPU time
MEMORY = 300_000_000  # what a worker may map beyond its idle size
WORKERS = 2
START_SECONDS = 60.0  # a cold start on a busy machine imports numpy and Pillow
TOO_SLOW = "image takes too long to decode (stopped after {:g} s of CPU time)"
CRASHED = "the image decoder stopped on this file ({})"
NO_WORKER = "the image decoder could not start"
_REQUEST = struct.Struct(">iQ")  # size (0 for None), data length
_HEADER = struct.Struct(">I")  # JSON header length


@dataclass(frozen=True)
class Stats:
    """What one decode cost the worker: wall and CPU seconds, peak resident bytes above
    the worker's idle size (`peak_bytes`), and whether the worker had to be killed."""

    seconds: float
    cpu_seconds: float
    peak_bytes: int
    killed: bool


@dataclass(frozen=True)
class Reply:
    """A worker's answer: `header` (JSON, ours) and `payload` (raw RGB bytes)."""

    header: dict
    payload: bytes
    stats: Stats


class _Died(Exception):
    """The worker answered nothing usable (it exited, or broke the protocol)."""


class Timeout(_Died):
    """The worker did not answer by the deadline."""


class _Worker:
    """One worker process and its pipes; used by one thread at a time."""

    def __init__(self, seconds: float, memory: int):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        env["MALLOC_ARENA_MAX"] = "2"  # one arena per thread would map 64 MB each
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tinyviz.demo.sandbox", repr(seconds), str(memory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.seconds = seconds
        try:  # the greeting: the worker's idle resident size, once its limits are set
            greeting = self._header(time.monotonic() + START_SECONDS)
            self.base, self.cpu_before = greeting["base"], greeting["cpu_total"]
        except (_Died, ValueError, KeyError):
            self.kill()
            raise _Died("no greeting") from None

    def run(self, data: bytes, size: int | None) -> Reply:
        start = time.monotonic()
        try:
            self.proc.stdin.write(_REQUEST.pack(size or 0, len(data)))
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError:
            raise _Died("the worker is gone") from None
        deadline = start + max(WALL_SECONDS, self.seconds)
        header = self._header(deadline, self._over_budget)
        payload = _read_exact(self.proc.stdout, header.get("payload", 0), deadline)
        self.base, self.cpu_before = header["base"], header["cpu_total"]
        stats = Stats(time.monotonic() - start, header["cpu"], header["peak"] - self.base, False)
        return Reply(header, payload, stats)

    def _header(self, deadline: float, over=None) -> dict:
        (n,) = _HEADER.unpack(_read_exact(self.proc.stdout, _HEADER.size, deadline, over))
        return json.loads(_read_exact(self.proc.stdout, n, deadline))

    def _over_budget(self) -> bool:
        """The job in progress has used its CPU seconds (however long that took)."""
        return self.cpu_seconds() > self.seconds

    def peak_bytes(self) -> int:
        """The worker's resident peak in this job, read from outside (before a kill)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        return _status_kb(status, "VmHWM") * 1024

    def cpu_seconds(self) -> float:
        """CPU seconds of the job in progress, read from outside (nan once it has exited)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return math.nan
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK") - self.cpu_before

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def _read_exact(pipe, n: int, deadline: float, over=None) -> bytes:
    """Read `n` bytes from `pipe` by `deadline`, or raise Timeout / _Died; with `over`,
    also Timeout as soon as `over()` says the job has spent its budget (asked every POLL)."""
    fd, chunks, got = pipe.fileno(), [], 0
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("deadline")
            if not sel.select(min(left, POLL) if over else left):
                if over is None or over():
                    raise Timeout("budget")
                continue
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                raise _Died("end of output")
            chunks.append(chunk)
            got += len(chunk)
    return b"".join(chunks)


class Pool:
    """Up to `workers` warm decoder processes, shared by all threads.

    `decode` returns the worker's reply, or raises ImageError with a one-line reason
    (including for a file that made the worker run out of time or crash).
    """

    def __init__(self, workers: int = WORKERS, seconds: float = SECONDS, memory: int = MEMORY):
        self.seconds, self.memory = seconds, memory
        self._slots = threading.BoundedSemaphore(workers)
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._warming = False

    def decode(self, data: bytes, size: int | None) -> Reply:
        """The worker's answer for `data`; ImageError when it had to be stopped."""
        reply, _ = self.decode_with_stats(data, size)
        if isinstance(reply, ImageError):
            raise reply
        return reply

    def decode_with_stats(self, data: bytes, size: int | None) -> tuple[Reply | ImageError, Stats]:
        """The worker's answer, or the error that stopped it, and what it cost either way."""
        with self._slots:
            worker = self._take()
            start = time.monotonic()
            try:
                reply = worker.run(data, size)
            except _Died as e:
                peak, cpu, code = worker.peak_bytes(), worker.cpu_seconds(), worker.proc.poll()
                self._drop(worker)
                slow = isinstance(e, Timeout)
                error = ImageError(
                    TOO_SLOW.format(self.seconds) if slow else CRASHED.format(_describe_exit(code))
                )
                spent = Stats(time.monotonic() - start, cpu, max(0, peak - worker.base), True)
                return error, spent
            self._idle.put(worker)
            return reply, reply.stats

    def warm(self) -> None:
        """Start a worker in the background if none exists yet, so that the first upload
        does not wait for Python to import Pillow (a second on a busy machine)."""
        with self._lock:
            if self._all or self._warming:
                return
            self._warming = True
        threading.Thread(target=self._start_idle, daemon=True).start()

    def _start_idle(self) -> None:
        try:
            worker = _Worker(self.seconds, self.memory)
        except (OSError, _Died):
            return  # the next decode tries again and says so
        finally:
            self._warming = False
        with self._lock:
            self._all.add(worker)
        self._idle.put(worker)

    def close(self) -> None:
        """Stop every worker (the server is exiting, or a test is done with its pool)."""
        with self._lock:
            workers, self._all = list(self._all), set()
        for w in workers:
            w.kill()

    def _take(self) -> _Worker:
        """An idle live worker, or a new one (an idle worker may have been killed)."""
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            if worker.proc.poll() is None:
                return worker
            self._drop(worker)
        try:
            worker = _Worker(self.seconds, self.memory)
        except (OSError, _Died):
            raise ImageError(NO_WORKER) from None
        with self._lock:
            self._all.add(worker)
        return worker

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return "no answer" if code is None else f"exit status {code}"


_POOL: Pool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> Pool:
    """The process's shared pool, started on first use and stopped at exit."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = Pool()
            atexit.register(_POOL.close)
        return _POOL


def set_pool(new: Pool | None) -> Pool | None:
    """Make `new` the shared pool (None: a default one on next use); returns the old one.

    For tests that judge pixels on a loaded machine: a pool with a longer deadline.
    """
    global _POOL
    with _POOL_LOCK:
        old, _POOL = _POOL, new
        return old


# ---------------------------------------------------------------------- the worker


def _status_kb(status: str, field: str) -> int:
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _rss() -> tuple[int, int]:
    """(current, peak) resident bytes of this process."""
    status = Path("/proc/self/status").read_text()
    return _status_kb(status, "VmRSS") * 1024, _status_kb(status, "VmHWM") * 1024


def _reset_peak() -> None:
    """Make VmHWM start again from the current size (Linux: write 5 to clear_refs)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _limit_memory(extra: int) -> None:
    mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = mapped + extra
    resource.setrlimit(resource.RLIMIT_AS, (want if hard < 0 else min(want, hard), hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _limit_cpu(seconds: float) -> float:
    """Let the next job use at most `seconds` more CPU (SIGXCPU ends the process after)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    total = used.ru_utime + used.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(total + seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard < 0 else min(soft, hard), hard))
    return total


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _serve(seconds: float, memory: int) -> None:
    """Answer requests on stdin until it closes; one job at a time."""
    import warnings

    from . import decode as decoder

    warnings.simplefilter("ignore")  # our own checks report; nothing reads our stderr
    decoder.register_plugins()
    decoder.decode(_tiny_png(), 64)  # warm every import and lazy table before the limit
    _limit_memory(memory)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    _send(out, {"base": _rss()[0], "cpu_total": _cpu()})
    while True:
        head = inp.read(_REQUEST.size)
        if len(head) < _REQUEST.size:
            return
        size, n = _REQUEST.unpack(head)
        base, _ = _rss()  # the upload's own bytes count as part of its cost
        _reset_peak()
        data = inp.read(n)
        start = _limit_cpu(2 * seconds + 1)
        header, payload = _answer(decoder, data, size or None)
        total = _cpu()
        header.update(cpu=total - start, cpu_total=total, base=base, peak=max(_rss()[1], base))
        _send(out, header, payload)


def _send(out, header: dict, payload: bytes = b"") -> None:
    blob = json.dumps(header).encode()
    out.write(_HEADER.pack(len(blob)) + blob + payload)
    out.flush()


def _answer(decoder, data: bytes, size: int | None) -> tuple[dict, bytes]:
    try:
        d = decoder.decode(data, size)
    except ImageError as e:
        return {"ok": False, "message": str(e)}, b""
    except MemoryError:
        return {"ok": False, "message": decoder.OUT_OF_MEMORY}, b""
    except Exception as e:  # a decoder bug must still answer in one line
        return {"ok": False, "message": f"{decoder.CORRUPT} ({type(e).__name__})"}, b""
    header = {
        "ok": True,
        "format": d.format,
        "original_size": d.original_size,
        "rgb_size": d.rgb_size,
        "display_size": d.display_size,
        "payload": len(d.rgb) + len(d.display),
    }
    return header, d.rgb + d.display


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


if __name__ == "__main__":
    _serve(float(sys.argv[1]), int(sys.argv[2]))
