"""The decoder's budget is CPU time, so a busy server does not refuse phone photos (19.2)."""

from __future__ import annotations

import os
import signal
import threading

from pagetest import png

from tinyviz.demo import images, sandbox


def test_a_worker_held_off_the_cpu_past_its_budget_still_answers():
    """The worker is stopped (as a loaded machine would starve it) for longer than its whole
    CPU budget: it uses no CPU meanwhile, so it is not killed, and the photo decodes."""
    pool = sandbox.Pool(workers=1, seconds=0.5)
    try:
        pool.decode(png(1), 64)  # a warm worker
        (worker,) = pool._all
        os.kill(worker.proc.pid, signal.SIGSTOP)
        resume = threading.Timer(1.5, os.kill, (worker.proc.pid, signal.SIGCONT))
        resume.start()
        reply = pool.decode(png(2), 64)
        resume.join()
        assert reply.header["ok"] and not reply.stats.killed
        assert reply.stats.seconds > 1.0 > reply.stats.cpu_seconds
    finally:
        pool.close()


def test_a_file_that_burns_cpu_is_stopped_after_its_cpu_seconds():
    pool = sandbox.Pool(workers=1, seconds=0.05)
    try:
        big = png(3, size=(3000, 3000))  # far more than 0.05 CPU seconds to decode
        reply, stats = pool.decode_with_stats(big, 64)
        assert isinstance(reply, images.ImageError) and stats.killed
        assert str(reply) == sandbox.TOO_SLOW.format(0.05) and "CPU time" in str(reply)
    finally:
        pool.close()
