"""Slow results of the explain pages, computed by background workers from a bounded queue.

A page's script run never computes anything slow: it asks for a result by a `Request` (a
kind of work, the run, the data set, and the kind's parameters), draws what is stored, and
follows the rest. `request` returns at once: the result is there ("done"), or it waits in
the machine's queue (`queue()`, "waiting" with its `place`), or a worker computes it
("running", with its progress and an estimate: `runtime.tasks.TaskState`). Every session
that asks for the same thing shares the one request.

The queue (`runtime.background.Queue`) is served by `QUEUE_SLOTS` long-lived worker
processes (`python -m tinyviz.explain.work --serve K`), niced (`runtime.tasks.NICE`), so
the server's own short work (Classify's top-5, a Grad-CAM) always comes first, and never
more than `QUEUE_SLOTS` heavy computations run at once whatever a crowd asks for. A worker
keeps the last `MODELS` models it loaded and the data sets it opened: a process per request
spent most of its time importing torch and loading the model (bench/results/crowd_cpu.txt).
It ends after `WORKER_IDLE` seconds without work, so its memory goes back; a request nobody
asked about for `ABANDON` seconds (its visitor left) is dropped before it starts, and stopped
at its next progress report if it has started (a page asks every 2 s while it waits or
follows the work), so a crowd that leaves does not keep the worker busy for minutes.

The kinds (`Kind`):

- "map": a t-SNE or UMAP map of a class subset (`embed.cached_embedding`), or every stop
  of an epoch-aligned map (`epochs.map_at`); stored beside its analysis.
- "channel-gradients": the gradient maps of a channel on a list of validation images
  (`channels.channel_gradients`), stored in `channel-maps/` of the run's analysis.
- "saliency": one slow saliency method (`saliency.attribute`) on one image, a validation
  image or an upload, handed over as a file in `images_dir()` (`save_image`); stored in
  `saliency/` (`attribution` reads it back).
- "contrastive-maps": the contrastive maps of a confusion cell's images
  (`contrastive.contrastive_map`), stored in `contrastive-maps/`.

To add a kind: a function computing the result (`compute(request, data, report)`, with
`report(fraction, message)`) decorated `@kind(name)`, one saying whether it is stored
(`@compute.stored`). A page asks with `request(Request(kind, run, data, size, params))`,
with `"stamp": list(run.stamp)` in params so that new weights get new results. Results are
the kind's own files: bound them (`io.keep_within`, `embed.prune_maps`).
"""

from __future__ import annotations

import contextlib
import functools
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

QUEUE_SLOTS = 1  # heavy background computations (and workers) at once on this machine
WORKER_IDLE = 20.0  # seconds a worker waits for the next request before it ends
ABANDON = 20.0  # seconds a waiting request lives unasked (a waiting page asks every 2 s)
READY_MARGIN = 8.0  # a worker this close to ending is not counted on to take a new request
MODELS = 4  # models a worker keeps loaded
CHANNEL_MAPS = "channel-maps"  # in the run's analysis folder (or its mirror)
CHANNEL_MAPS_BUDGET = 32 * 2**20  # bytes of stored channel maps kept per run (oldest go)
SALIENCY = "saliency"
SALIENCY_BUDGET = 16 * 2**20  # bytes of stored saliency maps kept per run
CONTRASTIVE = "contrastive-maps"
CONTRASTIVE_BUDGET = 16 * 2**20  # bytes of stored contrastive maps kept per run
IMAGES = "images"  # under the cache root: images handed to workers
IMAGES_BUDGET = 16 * 2**20  # about 1,300 images of 64 x 64


def queue() -> background.Queue:
    """The machine's queue of heavy background work (under the cache root)."""
    return background.Queue(
        cache_root() / "queue", slots=QUEUE_SLOTS, idle=WORKER_IDLE, abandon=ABANDON
    )


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

    @property
    def name(self) -> str:
        """The request's name in the queue and its task's name."""
        return f"{self.kind}-{self.key}"


@dataclass(frozen=True)
class Kind:
    """How to compute a kind of result, and how to tell that it is stored."""

    compute: Callable[[Request, object, Callable], None]
    stored: Callable[[Request], bool]
    heavy: bool = True  # waits in the queue for a worker; else a process of its own at once


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
    return Task(folder, req.name)


def status(req: Request) -> TaskState:
    """Where the request stands: "done" when its result is stored, "running" (or
    "starting") while a worker computes it, "waiting" with its `place` in the queue, else
    its task's last state ("failed", "stopped", "none"). Asking counts as still wanting it,
    while it waits and while it is computed."""
    if _kind(req).stored(req):
        return TaskState("done", 1.0, "done")
    now = task(req).state()
    q = queue()
    if now.active:
        q.want(req.name)
        return now
    place = q.place(req.name)
    if place is None:
        return now
    q.want(req.name)
    if q.taken(req.name):  # a worker has it and is opening its task
        return TaskState("starting", 0.0, "starting")
    if not q.working():  # its worker ended (or was killed) meanwhile
        _start_workers(q)
    return TaskState("waiting", 0.0, "waiting", place=place)


def request(req: Request) -> TaskState:
    """The result is stored ("done"), or it is queued for a worker (unless it waits or runs
    already): never computes anything here. A failed task is left alone (it would only fail
    again) unless asked again with `retry`."""
    now = status(req)
    if now.state == "done":
        task(req).clear()  # the result is the proof: its task's files may go
        return now
    if now.active or now.state == "failed":
        return now
    if not _kind(req).heavy:
        cmd = [sys.executable, "-m", "tinyviz.explain.work", req.to_json()]
        return task(req).start(cmd, nice=NICE)
    task(req).clear()  # an earlier "stopped" says nothing about this request
    q = queue()
    q.submit(req.name, req.to_json())
    _start_workers(q)
    return status(req)


def retry(req: Request) -> TaskState:
    task(req).clear()
    return request(req)


def _start_workers(q: background.Queue) -> None:
    q.start_workers(lambda k: [sys.executable, "-m", "tinyviz.explain.work", "--serve", str(k)],
                    nice=NICE)  # fmt: skip


def _kind(req: Request) -> Kind:
    try:
        return KINDS[req.kind]
    except KeyError:
        raise TinyvizError(f"no background work of kind {req.kind!r}") from None


class Abandoned(TinyvizError):
    """Nobody waits for the request any more: its worker stopped computing it."""


def run(req: Request, wanted: Callable[[], bool] | None = None) -> None:
    """Compute the request here, holding its task's lock (what a worker does for each
    request, and `python -m tinyviz.explain.work REQUEST` by hand). With `wanted`, each
    progress report first asks it (at most once a second) and stops the work with
    `Abandoned` once nobody waits for the result."""
    how = _kind(req)
    with task(req).working() as report:
        if how.stored(req):
            return
        if wanted is not None:
            report = _unless_abandoned(report, wanted)
        how.compute(req, dataset(req.data, req.size), report)


def _unless_abandoned(report: Callable, wanted: Callable[[], bool], every: float = 1.0):
    last = [float("-inf")]

    def checked(*args, **kwargs):
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            if not wanted():
                raise Abandoned("nobody waits for it any more")
        report(*args, **kwargs)

    return checked


# --------------------------------------------------------------------- the worker


@functools.lru_cache(maxsize=2)
def dataset(path: str, size: int):
    """The data set at `path` decoded at `size`, opened once per worker."""
    from ..data import load

    return load(path, size=size, progress=False)


def model(req: Request, *, epoch: int | None = None, snapshot: str | None = None):
    """The request's run's model (an epoch view's, a snapshot's), on the CPU, kept loaded in
    this process (the last `MODELS`; new weights are a new entry)."""
    run = Path(req.run)
    return _model(str(run), RunFolder(run).weights_stamp(), epoch, snapshot)


@functools.lru_cache(maxsize=MODELS)
def _model(path: str, stamp: tuple, epoch: int | None, snapshot: str | None):
    from ..runs.weights import load_model

    return load_model(Path(path), snapshot=snapshot, epoch=epoch)


def serve(slot: int) -> None:
    """Be the worker of slot `slot` until the queue has been empty for `WORKER_IDLE` s.
    It leaves one core to the server (whose script runs are the ones people wait for)."""
    from ..runtime.device import limit_threads

    global _SLOT
    limit_threads(max(1, (os.cpu_count() or 2) - 1))
    _SLOT = slot
    queue().serve(slot, handle, lost=lost)


def map_worker(lasting: float = READY_MARGIN) -> frozenset[str] | None:
    """The map methods (fitted, so compiled) of a worker that will take a map asked for
    within `lasting` seconds; None when none will, and a map asked for then starts a new
    worker (the Embeddings page's estimates: a new worker's startup, or none)."""
    notes = queue().ready(lasting)
    if not notes:
        return None
    return frozenset(m for note in notes for m in note.get("maps", []) if isinstance(m, str))


def handle(name: str, payload: str) -> None:
    """Compute one request of the queue (a worker's handler), unless nobody waits for it
    any more: then it stops, and leaves no failure behind (whoever asks next has it
    computed)."""
    global _SERVED
    req = Request.from_json(payload)
    try:
        run(req, wanted=lambda: queue().wanted(name))
    except Abandoned:
        task(req).clear()
        print(f"{name}: stopped, nobody waits for it any more", file=sys.stderr, flush=True)
    except TinyvizError as e:  # recorded in its task (the page says it); the log needs one line
        print(f"{name}: error: {e}", file=sys.stderr, flush=True)
    finally:
        _SERVED += 1


def lost(name: str, payload: str) -> None:
    """A request the last worker died computing: failed, so it is not tried again unasked."""
    with contextlib.suppress(ValueError, KeyError, TypeError, OSError, TinyvizError):
        task(Request.from_json(payload)).fail(
            "the background worker stopped while computing this (out of memory, or killed)"
        )


# ------------------------------------------------------------------------- kinds


_BORN = time.time()  # about when this process started (before torch and the model)
_FITTED: set[str] = set()  # the map methods this process has fitted
_SERVED = 0  # requests this process has handled
_SLOT: int | None = None  # the queue's slot this process serves (None: not a worker)


@kind("map")
def _map(req: Request, data, report) -> None:
    """params: method, dims, classes (a list or None), source (the analysis folder drawn),
    stop (an epoch view's epoch, "final", or None for a map without epoch views)."""
    from . import analysis, embed, epochs, map_speed

    p, run = req.params, Path(req.run)
    classes = None if p.get("classes") is None else [int(c) for c in p["classes"]]
    if p.get("stop") is None:
        source = analysis.read(Path(p["source"]))
        method, dims = p["method"], int(p["dims"])
        warm = method in _FITTED  # this worker fitted one before: no compilation again
        startup = None if _SERVED else time.time() - _launched()  # a new worker's way to it
        points = len(embed.select(source.outputs.labels, classes))
        expected = map_speed.fit_seconds(method, dims, points, warm=warm)
        began = time.perf_counter()
        embed.cached_embedding(
            run, data, method, dims, classes=classes, source=source,
            progress=_counting_down(report, expected, began),
        )  # fmt: skip
        _FITTED.add(method)
        map_speed.record(method, dims, points, startup, time.perf_counter() - began, warm=warm)
        if _SLOT is not None:
            queue().note(_SLOT, maps=sorted(_FITTED))
    else:
        final = analysis.read(analysis.available(run, data))
        epochs.map_at(
            run, data, p["stop"], p["method"], int(p["dims"]), final=final, classes=classes,
            progress=report,
        )  # fmt: skip


def _launched() -> float:
    """When this worker was launched (its slot's launch record; for a process started
    otherwise, about when it imported this module): Python's start and its imports are
    part of what a visitor waits for."""
    if _SLOT is not None:
        record = queue().worker(_SLOT).launched()
        if record.pid == os.getpid() and record.started is not None:
            return record.started
    return _BORN


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
    from . import channels

    p = req.params
    report(0.0, "loading the model", True)
    net = model(req, epoch=p.get("epoch"))
    images = [int(i) for i in p["images"]]
    maps = []
    for n, i in enumerate(images):
        maps.append(
            channels.channel_gradients(net, data.val.images[[i]], p["layer"], p["channel"])[0]
        )
        report((n + 1) / len(images), f"{n + 1} of {len(images)} images")
    _store_maps(result_path(req, CHANNEL_MAPS), np.stack(maps), CHANNEL_MAPS_BUDGET)


@_channel_gradients.stored
def _channel_gradients_stored(req: Request) -> bool:
    return result_path(req, CHANNEL_MAPS).exists()


@kind("saliency")
def _saliency(req: Request, data, report) -> None:
    """params: method, target, layer (Grad-CAM's, or None), image (a file of `save_image`),
    snapshot (or None)."""
    from ..data.batches import to_model_input
    from . import saliency

    p = req.params
    report(0.0, "loading the model", True)
    net = model(req, snapshot=p.get("snapshot"))
    rgb = load_image(p["image"])
    report(0.05, saliency.method_info(p["method"]).label, True)
    att = saliency.attribute(
        net, to_model_input(rgb), int(p["target"]), p["method"], layer=p.get("layer")
    )
    path = result_path(req, SALIENCY, ".npy")
    io.save_array(path, np.stack([att.heat, att.signed]).astype(np.float32))
    meta = {"method": att.method, "target": att.target, "seconds": att.seconds,
            "params": dict(att.params), "layer": att.layer, "delta": att.delta}  # fmt: skip
    io.write_json(path.with_suffix(".json"), meta)  # last: its presence means stored
    io.keep_within(path.parent, SALIENCY_BUDGET, keep={path.name, path.with_suffix(".json").name})


@_saliency.stored
def _saliency_stored(req: Request) -> bool:
    return result_path(req, SALIENCY, ".json").exists()


def attribution(req: Request):
    """The stored `saliency.Attribution` of a "saliency" request, or None while there is
    none (reading it counts as a use for the folder's budget)."""
    from . import saliency

    path = result_path(req, SALIENCY, ".npy")
    try:
        meta = io.read_json(path.with_suffix(".json"))
        maps = np.asarray(io.load_array(path), np.float32)
        if maps.ndim != 3 or len(maps) != 2 or not np.isfinite(maps).all():
            return None
        att = saliency.Attribution(
            str(meta["method"]), int(meta["target"]), _frozen(maps[0]), _frozen(maps[1]),
            float(meta["seconds"]), dict(meta.get("params") or {}), meta.get("layer"),
            None if meta.get("delta") is None else float(meta["delta"]),
        )  # fmt: skip
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None
    _touch(path)
    _touch(path.with_suffix(".json"))
    return att


@kind("contrastive-maps")
def _contrastive_maps(req: Request, data, report) -> None:
    """params: a, b (the cell: true class, answered class), method, images (validation
    image indices)."""
    from ..data.batches import to_model_input
    from . import contrastive

    p = req.params
    report(0.0, "loading the model", True)
    net = model(req)
    images = [int(i) for i in p["images"]]
    maps = []
    for n, i in enumerate(images):
        x = to_model_input(np.asarray(data.val.images[i]))
        maps.append(contrastive.contrastive_map(net, x, int(p["a"]), int(p["b"]), p["method"]).heat)
        report((n + 1) / len(images), f"{n + 1} of {len(images)} images")
    _store_maps(result_path(req, CONTRASTIVE), np.stack(maps), CONTRASTIVE_BUDGET)


@_contrastive_maps.stored
def _contrastive_maps_stored(req: Request) -> bool:
    return result_path(req, CONTRASTIVE).exists()


# ---------------------------------------------------------------------- results


def result_path(req: Request, folder: str, suffix: str = ".npy") -> Path:
    """Where a request's result is stored: `folder` of the run's analysis (or its mirror)."""
    run = Path(req.run)
    return mirror.writable(RunFolder(run).analysis, run) / folder / f"{req.key}{suffix}"


def _store_maps(path: Path, maps: np.ndarray, budget: int) -> None:
    io.save_array(path, maps.astype(np.float16))
    io.keep_within(path.parent, budget, keep={path.name})


def stored_maps(req: Request, folder: str) -> np.ndarray | None:
    """The stored maps (one per image) of a request whose kind stores them in `folder`
    (None while there are none); reading them counts as a use for the folder's budget."""
    path = result_path(req, folder)
    try:
        maps = io.load_array(path)
    except CheckpointError:
        return None
    _touch(path)
    return np.asarray(maps, np.float32)


def channel_maps(req: Request) -> np.ndarray | None:
    """The stored maps of a "channel-gradients" request (None while there are none)."""
    return stored_maps(req, CHANNEL_MAPS)


def channel_maps_path(req: Request) -> Path:
    """Where a "channel-gradients" request's maps are stored (float16, one per image)."""
    return result_path(req, CHANNEL_MAPS)


# ----------------------------------------------------------------------- images


def images_dir() -> Path:
    return cache_root() / IMAGES


def save_image(rgb: np.ndarray) -> str:
    """Hand an image (H x W x 3 uint8: an upload, or a validation image) to the workers: a
    file named by its content under `images_dir()`, kept within `IMAGES_BUDGET` (the least
    recently used go first). Returns its path, for a request's params."""
    rgb = np.ascontiguousarray(np.asarray(rgb, np.uint8))
    digest = hashlib.sha256(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()[:24]
    path = images_dir() / f"{digest}.npy"
    if path.exists():
        _touch(path)
    else:
        io.save_array(path, rgb)
        io.keep_within(images_dir(), IMAGES_BUDGET, keep={path.name}, pattern="*.npy")
    return str(path)


def load_image(path: str) -> np.ndarray:
    """An image `save_image` handed over (only from `images_dir()`)."""
    rgb = io.load_array(Path(path), max_bytes=4 * 2**20, inside=images_dir())
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CheckpointError(f"{Path(path).name} is not an image handed over by the server")
    return rgb


# ------------------------------------------------------------------------ bounds


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, np.float32)
    a.flags.writeable = False
    return a


def _touch(path: Path) -> None:
    """A use: the file goes last from its folder's budget (never created by this)."""
    with contextlib.suppress(OSError):  # gone, or a read-only copy: its age decides nothing
        os.utime(path)


def main(argv: list[str] | None = None) -> int:
    """`python -m tinyviz.explain.work --serve K`: the queue's worker of slot K (what
    `request` starts); `python -m tinyviz.explain.work REQUEST_JSON`: compute one request
    here. A refusal is one line on stderr and status 1."""
    background.enter_child()
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["--serve"]:
            serve(int(args[1]))
        else:
            run(Request.from_json(args[0]))
    except (TinyvizError, OSError, KeyError, ValueError, IndexError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
