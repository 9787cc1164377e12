"""Slow results of the explain pages as background work (`tinyviz.explain.work`): asked for
by a request, queued for a long-lived niced worker, computed once whoever asks, stored, then
read; the server's own short work never waits for it."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinyviz.data.batches import to_model_input
from tinyviz.demo import predict
from tinyviz.explain import analysis, channels, embed, map_speed, saliency, work
from tinyviz.runs import load_model, open_run
from tinyviz.runtime.locks import model_lock


@pytest.fixture
def own_run(run_data, tmp_path):
    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    return copy, data


def finish(req: work.Request, timeout: float = 240.0) -> None:
    """Wait for the queue's worker process to compute the request (a bound, not a race)."""
    deadline = time.monotonic() + timeout
    while work.status(req).active and time.monotonic() < deadline:
        time.sleep(0.05)
    now = work.status(req)
    assert now.state == "done", (now, work.queue().worker(0).log_tail(10))


def _measured(key: str, since: float, timeout: float = 30.0) -> dict:
    """The map timings recorded so far, once one of `key` was recorded at `since` or later
    (time.time()): the worker records a map's time just after storing the map, so a page
    (or a test) may see the map first; earlier tests of this worker recorded theirs."""

    def recorded() -> bool:
        return any(len(f) > 2 and f[2] >= int(since) for f in map_speed._read().get(key, []))

    deadline = time.monotonic() + timeout
    while not recorded() and time.monotonic() < deadline:
        time.sleep(0.05)
    return map_speed._read()


def stop_worker() -> None:
    work.queue().worker(0).stop()


@pytest.mark.slow
def test_a_subset_map_is_computed_once_in_the_background(own_run):
    run, data = own_run
    since = time.time()
    source = analysis.read(analysis.available(run, data))
    req = work.Request(
        "map", str(run), str(data.source), data.size,
        {"method": "tsne", "dims": 2, "classes": [0, 2], "source": str(source.folder),
         "stop": None},
    )  # fmt: skip
    first = work.request(req)
    assert first.active  # queued for a worker, never computed in the asking thread
    launched = work.queue().worker(0).launched()
    assert work.request(req).state in ("starting", "running", "waiting", "done")
    assert work.queue().names().count(req.name) <= 1  # asked twice: one request
    finish(req)
    assert work.queue().worker(0).launched() == launched  # the second ask started nothing
    measured = _measured("tsne2d", since)  # what the worker took, for the page's next estimates
    deadline = time.monotonic() + 30  # its note follows the record
    while "tsne" not in (work.map_worker(lasting=0) or ()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "tsne" in work.map_worker(lasting=0)  # the next map's estimate: no startup
    stop_worker()
    assert work.map_worker(lasting=0) is None  # ended: the next map starts a worker
    emb = embed.cached_embedding(run, data, "tsne", 2, classes=[0, 2], source=source)
    assert set(source.outputs.labels[emb.indices]) == {0, 2}
    assert measured["tsne2d"][-1][0] == len(emb.indices) and measured["tsne2d"][-1][1] > 0
    assert len(measured.get(map_speed.STARTUPS, [])) >= 1  # a worker started for it, or earlier
    assert work.request(req).state == "done" and not work.task(req).progress.exists()


@pytest.mark.slow
def test_channel_maps_in_the_background_are_the_ones_a_page_would_compute(own_run):
    run, data = own_run
    model = load_model(run)
    layer = list(model.channel_layers)[-1]
    images = [0, 3, 5]
    req = work.Request(
        "channel-gradients", str(run), str(data.source), data.size,
        {"layer": layer, "channel": 1, "images": images, "epoch": None},
    )  # fmt: skip
    assert work.channel_maps(req) is None
    work.request(req)
    finish(req)
    stop_worker()
    got = work.channel_maps(req)
    want = channels.channel_gradients(model, data.val.images[images], layer, 1)
    assert got.shape == want.shape and np.abs(got - want).max() < 2e-3  # stored as float16


def test_an_unknown_kind_is_one_line():
    req = work.Request("nothing", "/r", "/d", 64)
    with pytest.raises(work.TinyvizError, match="no background work of kind 'nothing'"):
        work.status(req)


def saliency_request(run, data, image: int, method: str) -> work.Request:
    return work.Request(
        "saliency", str(run), str(data.source), data.size,
        {"method": method, "target": 0, "layer": None, "snapshot": None,
         "image": work.save_image(data.val.images[image]), "stamp": list(open_run(run).stamp)},
    )  # fmt: skip


def test_a_heavy_map_waits_its_turn_while_the_servers_short_work_goes_on(own_run, queue_worker):
    """The worker is stopped inside an Integrated Gradients pass (holding its model's lock):
    the request says it runs, the next one its place, and the server's own copy of the
    model answers a top-5 meanwhile; then both maps are stored and read back."""
    run, data = own_run
    first = saliency_request(run, data, 0, "integrated_gradients")
    second = saliency_request(run, data, 1, "smoothgrad")
    theirs = work.model(first)  # the worker's copy (its thread shares this process's cache)
    inside, go = threading.Event(), threading.Event()

    def pause(module, args) -> None:
        inside.set()
        assert go.wait(60)

    hook = theirs.register_forward_pre_hook(pause)
    try:
        assert work.request(first).state in ("waiting", "starting")
        assert work.request(second).state == "waiting"
        assert inside.wait(60)
        assert work.status(first).state == "running"
        later = work.status(second)
        assert (later.state, later.place) == ("waiting", 1)
        assert not model_lock(theirs).acquire(blocking=False)  # the attribution holds it
        server = load_model(run)  # the server's cached model: another object, its own lock
        names = list(open_run(run).class_names)
        top = predict.predict_ensemble([server], data.val.images[2], names, names)
        assert len(top.classes) == min(5, len(names)) and inside.is_set() and not go.is_set()
    finally:
        go.set()
        hook.remove()
    queue_worker.drain()
    att = work.attribution(first)
    want = saliency.attribute(server, to_model_input(data.val.images[0]), 0, "integrated_gradients")
    assert att.method == "integrated_gradients" and att.delta is not None
    assert np.abs(att.heat - want.heat).max() < 1e-4
    assert (
        work.status(second).state == "done"
        and work.attribution(second).heat.shape == att.heat.shape
    )


def test_a_failed_request_says_why_and_waits_to_be_asked_again(own_run, queue_worker):
    run, data = own_run
    req = saliency_request(run, data, 0, "occlusion")
    Path(req.params["image"]).unlink()  # the image it was handed is gone
    work.request(req)
    queue_worker.drain()
    failed = work.request(req)
    assert failed.state == "failed" and req.params["image"].rsplit("/", 1)[1] in failed.error
    assert not work.queue().names()  # not queued again by asking
    assert work.retry(req).state in ("waiting", "starting", "running")
    queue_worker.drain()
    assert work.status(req).state == "failed"


def test_a_request_whose_worker_died_is_reported_failed_and_not_queued_again(
    own_run, tmp_path, monkeypatch
):
    """A worker killed while computing a request (out of memory, say) leaves it in the
    queue with its name in the slot's `current` file: the slot's next worker reports it as
    failed, with why, instead of computing it again (it could kill that worker too); the
    page then says so, and asking again does not queue it."""
    from queueworker import QueueWorker

    run, data = own_run
    req = saliency_request(run, data, 0, "occlusion")
    worker = QueueWorker(tmp_path / "queue")
    monkeypatch.setattr(work, "queue", lambda: worker.queue)
    worker.queue.submit(req.name, req.to_json())
    (entry,) = (tmp_path / "queue").glob("req-*")
    (tmp_path / "queue" / "slot-0.current").write_text(entry.name)  # what the dead one left
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while worker.queue.names() and time.monotonic() < deadline:  # a bound, not a race
            time.sleep(0.01)
        now = work.request(req)
        assert now.state == "failed" and "worker stopped while computing" in now.error
        assert not worker.queue.names() and not worker.entered.is_set()  # never computed
    finally:
        worker.stop()


def test_a_request_its_visitor_left_stops_at_its_next_report_and_leaves_no_failure(
    own_run, tmp_path, monkeypatch
):
    """The worker has begun a request when its visitor leaves (nobody asks about it for
    longer than `abandon`): it stops at its next progress report instead of computing on
    for nobody, and leaves no failure, so the next visitor who asks has it computed."""
    from queueworker import QueueWorker

    run, data = own_run
    layer = list(load_model(run).channel_layers)[-1]
    req = work.Request(
        "channel-gradients", str(run), str(data.source), data.size,
        {"layer": layer, "channel": 1, "images": [0, 3, 5], "epoch": None},
    )  # fmt: skip
    worker = QueueWorker(tmp_path / "queue", abandon=30)
    monkeypatch.setattr(work, "queue", lambda: worker.queue)
    worker.start()
    try:
        worker.hold()
        work.request(req)
        assert worker.entered.wait(60)  # taken: the worker is about to compute it
        (entry,) = (tmp_path / "queue").glob("req-*")
        old = time.time() - 120
        os.utime(entry, (old, old))  # nobody asked about it for two minutes
        worker.drain()
        assert work.channel_maps(req) is None  # stopped before the end
        assert work.status(req).state == "none"  # no failure left behind
        assert work.request(req).active  # asked again: queued again
        worker.drain()
        assert work.channel_maps(req) is not None
    finally:
        worker.stop()


def test_an_image_handed_to_the_workers_is_named_by_its_content_and_read_only_from_there(tmp_path):
    rgb = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)
    path = work.save_image(rgb)
    assert work.save_image(rgb.copy()) == path and np.array_equal(work.load_image(path), rgb)
    outside = tmp_path / "x.npy"
    np.save(outside, rgb)
    with pytest.raises(work.CheckpointError):
        work.load_image(str(outside))
