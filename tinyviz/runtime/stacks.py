"""Every thread's stack on demand: `kill -USR1 <server pid>` writes them to its stderr.

A dashboard that stops answering at a poster session (a page's script run waiting on a
lock, say) must be diagnosable where it happens, without a debugger or py-spy: the
standard library's `faulthandler` writes the stacks from a C signal handler, so it works
even when every Python thread is stuck. The browser tests use it to say where a page that
never drew was waiting.
"""

from __future__ import annotations

import faulthandler
import signal
import sys

SIGNAL = getattr(signal, "SIGUSR1", None)  # none on Windows: no dumps there


def enable() -> bool:
    """Dump every thread's stack to stderr on SIGUSR1 (once per process is enough; again
    replaces the handler). False where the platform has no such signal, or no stderr with
    a file descriptor: a host that captures stderr in memory (pytest's `capsys`) made the
    page's first run fail with `UnsupportedOperation: fileno`; the process's own stderr is
    tried then."""
    if SIGNAL is None:
        return False
    for out in (sys.stderr, sys.__stderr__):
        try:
            faulthandler.register(SIGNAL, file=out, all_threads=True)
        except (AttributeError, OSError, ValueError):  # no file, or none with a descriptor
            continue
        return True
    return False
