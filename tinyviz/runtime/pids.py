"""Whether a process runs: the one liveness test of tinyviz (jobs, locks' holders, the
writers of temporary files).

It imports nothing of tinyviz, so the foundations (`tinyviz.io`) use it as well as the
background jobs (`runtime.background`, which adds our own children to it).
"""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int | None) -> bool:
    """Whether process `pid` runs: a zombie (exited, not yet reaped by its parent) is dead,
    a process of another user is alive, and any other error means it is gone."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return not is_zombie(pid)  # exists, someone else's
    except OSError:
        return False
    return not is_zombie(pid)


def is_zombie(pid: int) -> bool:
    """A process that has exited but not been reaped by its parent (Linux's /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
