"""How long a t-SNE or UMAP map takes to appear on this machine: measured by the background
processes that make them, and the estimates the Embeddings page shows before and while.

A map not stored yet is made by a background worker (`explain.work`, kind "map"), and
what a visitor waits for is often that worker, not the fit of a few hundred points: when
none runs, starting Python and importing torch, scikit-learn and openTSNE or umap (5 to 20
s on this 2-core machine, by what else runs), and for UMAP numba compiling umap-learn's
layout code in the worker's first UMAP fit (about 16 s here, `COMPILE`, longer than fitting
1,000 points). A running worker has paid both. So an estimate is the sum of three parts:

- `startup`: from a new worker's launch to the start of its first fit (none while a worker
  runs that will take the request: `work.map_worker`; the wait in the queue left out: the
  page shows the place instead), the median of this machine's last ones;
- the fit: a curve of the method's cost against the number of points (`CURVES`, wall
  seconds measured on this 2-core machine with bench/map_speed.py, interpolated in log-log
  between them; for UMAP, a process's first fit, with numba's compilation), scaled by what
  this machine measured for its last maps of about as many points (the median ratio);
- `PAGE`: the page noticing the stored map (it looks every 2 s) and drawing it.

Every map process records its startup and fit in `cache_root()/map-speed.json` (`record`),
so the estimates follow the machine: a faster or a busier one is seen after a map or two.
The load average does not predict them better: the map processes run niced, and most of
what a shared machine runs beside them is niced too (t-SNE of 350 points took 6 s and 10 s
at the same load). bench/map_speed.py compares the estimates with the time from the click
to the map drawn.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from .. import io
from ..data.cache import cache_root
from ..errors import CheckpointError

RECORD = "map-speed.json"
KEEP = 16  # the fits (and startups) remembered per method and dimension count
PAGE = 2.0  # seconds from the map stored to the map drawn: a poll every 2 s, a rerun
STARTUP = 6.0  # seconds from launch to fit, before this machine measured one
STARTUPS = "launch-to-fit"  # their record (an earlier "startup" began at an import, later)
NEAR = (1.5, 3.0)  # records of maps within these factors of points calibrate an estimate
# (points, wall seconds) of a map process's 2-D fit on a quiet 2-core machine
# (bench/map_speed.py, bench/results/map_speed_cpu.txt); UMAP's first fit in a process pays
# numba's compilation
CURVES = {
    "tsne": ((50, 1.5), (350, 2.6), (1000, 3.6), (10_000, 61.0)),
    "umap": ((50, 17.5), (350, 19.0), (1000, 19.5), (10_000, 84.0)),
}
# seconds a process's first UMAP fit spends compiling umap-learn's code with numba (about
# 16 s on a quiet machine here); a worker that made one map keeps it compiled (`warm`)
COMPILE = {"umap": 16.0}
WARM_FLOOR = 0.1  # a warm fit is at least this share of the curve
THREE_D = 1.3  # a 3-D map's fit against a 2-D one's (openTSNE: Barnes-Hut either way)
_GUARD = threading.Lock()


def path() -> Path:
    return cache_root() / RECORD


def curve(method: str, dims: int, points: int) -> float:
    """The fit's idle seconds by `CURVES` (log-log interpolation, extended at both ends)."""
    xs, ys = (np.log([p for p, _ in CURVES[method]]), np.log([s for _, s in CURVES[method]]))
    x = np.log(max(points, 2))
    i = int(np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2))
    slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
    seconds = float(np.exp(ys[i] + slope * (x - xs[i])))
    return seconds * (THREE_D if dims == 3 else 1.0)


def _read() -> dict:
    try:
        raw = io.read_json(path())
    except CheckpointError:
        return {}
    return raw if isinstance(raw, dict) else {}


def _key(method: str, dims: int, warm: bool) -> str:
    return f"{method}{dims}d" + ("-warm" if warm and method in COMPILE else "")


def record(
    method: str, dims: int, points: int, startup: float | None, fit: float, *, warm: bool = False
) -> None:
    """Remember one map's startup (a new worker's, from its launch to the fit; None when the
    worker had made a map before, or for a process started by hand) and its fit, in wall
    seconds; `warm`: not the process's first fit of this method."""
    key = _key(method, dims, warm)
    with _GUARD:
        raw = _read()
        fits = [f for f in raw.get(key, []) if _valid(f)][-(KEEP - 1) :]
        raw[key] = [*fits, [int(points), round(float(fit), 3), round(time.time())]]
        if startup is not None and startup >= 0:
            starts = [s for s in raw.get(STARTUPS, []) if _number(s)]
            raw[STARTUPS] = [*starts[-(KEEP - 1) :], round(float(startup), 3)]
        with contextlib.suppress(OSError):  # a read-only cache: estimates keep their curves
            io.write_json(path(), raw)


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v >= 0


def _valid(entry) -> bool:
    return isinstance(entry, list) and len(entry) >= 2 and all(_number(v) for v in entry[:2])


def startup_seconds() -> float:
    """From a map process's launch to its fit, as measured here lately."""
    starts = [s for s in _read().get(STARTUPS, []) if _number(s)]
    return statistics.median(starts) if starts else STARTUP


def _warm_curve(method: str, dims: int, points: int) -> float:
    """A fit in a worker that compiled the method's code already: the curve less it."""
    full = curve(method, dims, points)
    return max(full - COMPILE.get(method, 0.0), full * WARM_FLOOR)


def fit_seconds(method: str, dims: int, points: int, *, warm: bool = False) -> float:
    """A fit of `points` images (`warm`: not the worker's first of this method): the curve,
    scaled by this machine's last fits of about as many points (of any size when it has
    none)."""
    line = _warm_curve if warm and method in COMPILE else curve
    fits = [f for f in _read().get(_key(method, dims, warm), []) if _valid(f) and f[0] > 0]
    near = fits  # the closest in size that exist: a curve's shape is only roughly right
    for far in NEAR:
        close = [f for f in fits if abs(np.log(f[0] / max(points, 1))) <= np.log(far)]
        if close:
            near = close
            break
    ratios = [f[1] / line(method, dims, int(f[0])) for f in near]
    scale = statistics.median(ratios) if ratios else 1.0
    return scale * line(method, dims, points)


def estimate(
    method: str, dims: int, points: int, *, fits: int = 1, worker: frozenset[str] | None = None
) -> float:
    """Seconds from asking for a map (`fits` maps of `points` images, in one worker) to
    seeing it drawn: the startup of a new worker (none where `worker`, the map methods a
    running worker that will take the request has fitted, is given), the fits (the first
    compiles the method's code unless that worker fitted it before), the page's poll and
    redraw."""
    warm = worker is not None and method in worker
    first = fit_seconds(method, dims, points, warm=warm)
    more = (fits - 1) * fit_seconds(method, dims, points, warm=True)
    return (0.0 if worker is not None else startup_seconds()) + first + more + PAGE
