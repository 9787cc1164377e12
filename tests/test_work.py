"""Slow results of the explain pages as background work (`tinyviz.explain.work`): asked for
by a request, computed once by a process of its own whoever asks, stored, then read."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from tinyviz.explain import analysis, channels, embed, map_speed, work
from tinyviz.runs import load_model
from tinyviz.runtime import background


@pytest.fixture
def own_run(run_data, tmp_path):
    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    return copy, data


def finish(req: work.Request, timeout: float = 240.0) -> None:
    """Wait for the request's background process (a bound, not a race) and check it."""
    task = work.task(req)
    deadline = time.monotonic() + timeout
    while task.files.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc = background.child(task.files.launched().pid)
    assert proc is None or proc.wait(60) == 0, task.log_tail(10)


@pytest.mark.slow
def test_a_subset_map_is_computed_once_in_the_background(own_run):
    run, data = own_run
    source = analysis.read(analysis.available(run, data))
    req = work.Request(
        "map", str(run), str(data.source), data.size,
        {"method": "tsne", "dims": 2, "classes": [0, 2], "source": str(source.folder),
         "stop": None},
    )  # fmt: skip
    first = work.request(req)
    assert first.active  # launched, never computed in the asking thread
    launched = work.task(req).files.launched()
    assert work.request(req).state in ("starting", "running", "waiting", "done")
    finish(req)
    assert work.task(req).files.launched() == launched  # the second ask launched nothing
    assert work.status(req).state == "done"
    emb = embed.cached_embedding(run, data, "tsne", 2, classes=[0, 2], source=source)
    assert set(source.outputs.labels[emb.indices]) == {0, 2}
    measured = map_speed._read()  # what the process took, for the page's next estimates
    assert measured["tsne2d"][-1][0] == len(emb.indices) and measured["tsne2d"][-1][1] > 0
    assert len(measured["startup"]) >= 1
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
    got = work.channel_maps(req)
    want = channels.channel_gradients(model, data.val.images[images], layer, 1)
    assert got.shape == want.shape and np.abs(got - want).max() < 2e-3  # stored as float16


def test_an_unknown_kind_is_one_line():
    req = work.Request("nothing", "/r", "/d", 64)
    with pytest.raises(work.TinyvizError, match="no background work of kind 'nothing'"):
        work.status(req)
