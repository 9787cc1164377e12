"""A worker of the background queue (`tinyviz.explain.work`) in a thread of the test: no
process to start, and the test decides when it computes (`hold`, `release`), so what a page
shows while a request waits or runs is checked without looking at a clock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tinyviz.explain import work
from tinyviz.runtime.background import Queue


class QueueWorker:
    def __init__(self, folder: Path, abandon: float = 3600) -> None:
        self.queue = Queue(folder, slots=1, idle=3600, abandon=abandon, poll=0.01)
        self.entered = threading.Event()  # a held request has begun
        self._go = threading.Event()
        self._go.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="test-worker")
        self._ready = threading.Event()

    def _serve(self) -> None:
        self._ready.set()
        self.queue.serve(0, self._handle, lost=work.lost, stop=self._stop)

    def _handle(self, name: str, payload: str) -> None:
        self.entered.set()
        assert self._go.wait(120), "the test never released the worker"
        work.handle(name, payload)

    def start(self) -> QueueWorker:
        self._thread.start()
        self._ready.wait(30)
        deadline = time.monotonic() + 30
        while not self.queue.working():  # its slot taken: no page launches a process
            assert time.monotonic() < deadline, "the worker did not take its slot"
            time.sleep(0.01)
        return self

    def hold(self) -> None:
        """The next request waits inside the worker until `release`."""
        self.entered.clear()
        self._go.clear()

    def release(self) -> None:
        self._go.set()

    def drain(self, timeout: float = 120.0) -> None:
        """Until every request in the queue is computed (a bound, not a race)."""
        self.release()
        deadline = time.monotonic() + timeout
        while self.queue.names():
            assert time.monotonic() < deadline, f"still queued: {self.queue.names()}"
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self.release()
        self._thread.join(60)
