"""Slow results of the explain pages, computed by background processes in a bounded queue.

A page's script run never computes anything slow: it asks for a result by a `Request` (a
kind of work, the run, the data set, and the kind's parameters), draws what is stored, and
follows the rest. `request` returns at once: the result is there ("done"), or a process is
computing it (`python -m tinyviz.explain.work REQUEST`), shared by every session that asks
for the same thing, with its progress and an estimate (`runtime.tasks.TaskState`).

Each kind says how to compute its result and how to tell that it is stored (`Kind`):

- "map": a t-SNE or UMAP map of a class subset (`embed.cached_embedding`), or every stop
  of an epoch-aligned map (`epochs.map_at`); stored beside its analysis.
- "channel-gradients": the gradient maps of a channel on a list of validation images
  (`channels.channel_gradients`), stored in `channel-maps/` of the run's analysis.

Heavy kinds wait for a slot of `QUEUE` (one at a time on this machine, `QUEUE_SLOTS`) inside
their own process; a waiting task's state says how many wait before it (`place`). Their
process runs at a lower priority (`runtime.tasks.NICE`), so the server answers first.

To add a kind: a function computing the result (`compute(request, data, report)`, with
`report(fraction, message)`), one saying whether it is stored (`stored(request)`), and an
entry in `KINDS`. A page asks with `request(Request(kind, run, data, size, params))`.
Results are the kind's own files: bound them (`embed.prune_maps` keeps
each run's derived files within a byte budget, `io.keep_within` any folder's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import io
from ..data.cache import cache_root
from ..errors import CheckpointError, TinyvizError
from ..runs.folder import RunFolder
from ..runtime import background
from ..runtime.tasks import NICE, Task, TaskState
from . import mirror

QUEUE_SLOTS = 1  # heavy background computations at once on this machine
CHANNEL_MAPS = "channel-maps"  # in the run's analysis folder (or its mirror)
CHANNEL_MAPS_BUDGET = 32 * 2**20  # bytes of stored channel maps kept per run (oldest go)


def queue() -> background.Queue:
    """The machine's queue of heavy background work (under the cache root)."""
    return background.Queue(cache_root() / "queue", slots=QUEUE_SLOTS)


@dataclass(frozen=True)
class Request:
    """One result asked for: `kind` of work on the run at `run` with the data set at
    `data` decoded at `size`, with the kind's `params` (plain JSON values)."""

    kind: str
    run: str
    data: str
    size: int
    params: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"kind": self.kind, "run": self.run, "data": self.data, "size": self.size,
             "params": self.params},
            sort_keys=True,
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Request:
        raw = json.loads(text)
        return cls(str(raw["kind"]), str(raw["run"]), str(raw["data"]), int(raw["size"]),
                   dict(raw.get("params") or {}))  # fmt: skip

    @property
    def key(self) -> str:
        """A digest of everything the result depends on (the task's name)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Kind:
    """How to compute a kind of result, and how to tell that it is stored."""

    compute: Callable[[Request, object, Callable], None]
    stored: Callable[[Request], bool]
    heavy: bool = True  # waits for a slot of the queue


KINDS: dict[str, Kind] = {}


def kind(name: str, *, heavy: bool = True):
    """Register `compute` under `name` (decorator); `stored` is given with `.stored`."""

    def register(compute):
        def stored(check):
            KINDS[name] = Kind(compute, check, heavy)
            return check

        compute.stored = stored
        return compute

    return register


def task(req: Request) -> Task:
    """The request's task: its files in `tasks/` beside the run's analysis (or mirror)."""
    run = Path(req.run)
    folder = mirror.writable(RunFolder(run).analysis, run) / "tasks"
    return Task(folder, f"{req.kind}-{req.key}")


def status(req: Request) -> TaskState:
    """Where the request stands: "done" when its result is stored, else its task's state."""
    if _kind(req).stored(req):
        return TaskState("done", 1.0, "done")
    return task(req).state()


def request(req: Request) -> TaskState:
    """The result is stored ("done"), or a background process computes it (launched now
    unless one already does): never computes anything here. A failed task is left alone
    (it would only fail again) unless asked again with `retry`."""
    now = status(req)
    if now.state == "done":
        task(req).clear()  # the result is the proof: its task's files may go
        return now
    if now.active or now.state == "failed":
        return now
    cmd = [sys.executable, "-m", "tinyviz.explain.work", req.to_json()]
    return task(req).start(cmd, nice=NICE)


def retry(req: Request) -> TaskState:
    task(req).clear()
    return request(req)


def _kind(req: Request) -> Kind:
    try:
        return KINDS[req.kind]
    except KeyError:
        raise TinyvizError(f"no background work of kind {req.kind!r}") from None


def run(req: Request) -> None:
    """Compute the request here (what the background process does), holding its task's
    lock and, for a heavy kind, a slot of the queue."""
    from ..data import load

    how = _kind(req)
    with task(req).working(queue=queue() if how.heavy else None) as report:
        if how.stored(req):
            return
        data = load(req.data, size=req.size, progress=False)
        how.compute(req, data, report)


# ------------------------------------------------------------------------- kinds


@kind("map")
def _map(req: Request, data, report) -> None:
    """params: method, dims, classes (a list or None), source (the analysis folder drawn),
    stop (an epoch view's epoch, "final", or None for a map without epoch views)."""
    from . import analysis, embed, epochs, map_speed

    p, run = req.params, Path(req.run)
    classes = None if p.get("classes") is None else [int(c) for c in p["classes"]]
    if p.get("stop") is None:
        source = analysis.read(Path(p["source"]))
        launched = task(req).files.launched()
        mine = launched.pid == os.getpid()  # not a process started by hand
        startup = map_speed.process_startup(launched.started if mine else None, report.queued)
        method, dims = p["method"], int(p["dims"])
        points = len(embed.select(source.outputs.labels, classes))
        expected, began = map_speed.fit_seconds(method, dims, points), time.perf_counter()
        embed.cached_embedding(
            run, data, method, dims, classes=classes, source=source,
            progress=_counting_down(report, expected, began),
        )  # fmt: skip
        map_speed.record(method, dims, points, startup, time.perf_counter() - began)
    else:
        final = analysis.read(analysis.available(run, data))
        epochs.map_at(
            run, data, p["stop"], p["method"], int(p["dims"]), final=final, classes=classes,
            progress=report,
        )  # fmt: skip


def _counting_down(report, expected: float, began: float):
    """The fit's progress with the time left: the fit's expected seconds counted down
    until a fifth of it is done, then what its rate so far says."""

    def progress(fraction: float, message: str) -> None:
        spent = time.perf_counter() - began
        left = spent * (1 - fraction) / fraction if fraction >= 0.2 else expected - spent
        report(fraction, message, seconds_left=max(left, 1.0))

    return progress


@_map.stored
def _map_stored(req: Request) -> bool:
    from . import analysis, embed, epochs

    p = req.params
    classes = None if p.get("classes") is None else [int(c) for c in p["classes"]]
    if p.get("stop") is None:
        return embed.stored_in(Path(p["source"]), p["method"], int(p["dims"]), classes=classes)
    from ..data import open_decoded

    data = open_decoded(req.data, size=req.size)
    if data is None:
        return False
    final = analysis.available(Path(req.run), data)
    if final is None:
        return False
    return epochs.maps_stored(
        Path(req.run), data, p["stop"], p["method"], int(p["dims"]),
        final=analysis.read(final), classes=classes,
    )  # fmt: skip


@kind("channel-gradients")
def _channel_gradients(req: Request, data, report) -> None:
    """params: layer, channel, images (validation image indices), epoch (or None)."""
    from ..runs.folder import open_run
    from ..runs.weights import load_model
    from . import channels

    p = req.params
    report(0.0, "loading the model", True)
    model = load_model(open_run(Path(req.run)), epoch=p.get("epoch"))
    images = [int(i) for i in p["images"]]
    maps = []
    for n, i in enumerate(images):
        maps.append(
            channels.channel_gradients(model, data.val.images[[i]], p["layer"], p["channel"])[0]
        )
        report((n + 1) / len(images), f"{n + 1} of {len(images)} images")
    path = channel_maps_path(req)
    io.save_array(path, np.stack(maps).astype(np.float16))
    io.keep_within(path.parent, CHANNEL_MAPS_BUDGET, keep={path.name})


@_channel_gradients.stored
def _channel_gradients_stored(req: Request) -> bool:
    return channel_maps_path(req).exists()


def channel_maps_path(req: Request) -> Path:
    """Where a "channel-gradients" request's maps are stored (float16, one per image)."""
    run = Path(req.run)
    return mirror.writable(RunFolder(run).analysis, run) / CHANNEL_MAPS / f"{req.key}.npy"


def channel_maps(req: Request) -> np.ndarray | None:
    """The stored maps of a "channel-gradients" request (None while there are none);
    reading one counts as a use for the folder's budget (`io.keep_within`)."""
    path = channel_maps_path(req)
    try:
        maps = io.load_array(path)
    except CheckpointError:
        return None
    _touch(path)
    return np.asarray(maps, np.float32)


# ------------------------------------------------------------------------ bounds


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only copy: its age only decides when it goes
        path.touch(exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m tinyviz.explain.work REQUEST_JSON`: compute one request (the background
    process `request` launches). A refusal is one line on stderr and status 1."""
    background.enter_child()
    args = sys.argv[1:] if argv is None else argv
    try:
        run(Request.from_json(args[0]))
    except (TinyvizError, OSError, KeyError, ValueError, IndexError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
