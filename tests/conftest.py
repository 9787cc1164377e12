"""Shared fixtures: a generated few-class data set (zip and folder) and an isolated cache."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
import tinydata


def _share_the_cores() -> None:
    """Each pytest-xdist worker computes on its share of the cores: torch's and OpenMP's
    thread pools default to every core, so two workers on two cores would run four busy
    threads that wait for each other (one-thread training took 14 s of CPU here where two
    threads took 47 s). Set before torch is imported; inherited by the processes tests
    start (the CLI, background jobs, the app's server). An explicit setting wins."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, threads)


_share_the_cores()
DEFAULT_SWITCH = sys.getswitchinterval()  # Python's own, before any app code runs

# The slow lane: modules that start processes, train, or drive the app (AppTest, Chromium).
# Tests elsewhere that do so carry @pytest.mark.slow themselves.
SLOW_MODULES = {
    "test_browser",
    "test_jobs",
    "test_distributed",
    "test_pages_demo",
    "test_pages_analysis",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def python_switch_interval():
    """Every test starts with Python's own switch interval, and after the app's warm-up.
    The warm-up, run by the first AppTest of a worker, imports the explain pages' libraries
    in a thread, which calls `ast.parse` about fifty times, then shortens the interval for
    the whole process, as it does for the server (`share_interpreter`). CPython 3.11's
    `ast.parse` in two threads at once can fail ("AST constructor recursion depth
    mismatch", CPython gh-106905): a later test parsing source while the thread still ran
    failed so (`test_architecture`, once in a CI run), so no test starts before it ends."""
    sys.setswitchinterval(DEFAULT_SWITCH)
    yield
    _after_the_warm_up()
    sys.setswitchinterval(DEFAULT_SWITCH)


def _after_the_warm_up(seconds: float = 600.0) -> None:
    """Wait for the app's warm-up thread, where a test started one (`pages/_cache`)."""
    cache = sys.modules.get("pages._cache")
    if cache is None:
        return
    for thread in threading.enumerate():
        if thread.name == cache.WARM_UP_THREAD:
            thread.join(seconds)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own cache root and no data set from the environment."""
    monkeypatch.setenv("TINYVIZ_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("TINYVIZ_DATA", raising=False)


@pytest.fixture(scope="session")
def tiny_files():
    return tinydata.make_files()


@pytest.fixture(scope="session")
def tiny_zip(tmp_path_factory, tiny_files) -> Path:
    return tinydata.write_zip(tmp_path_factory.mktemp("zip") / "tiny-imagenet-200.zip", tiny_files)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny_files) -> Path:
    return tinydata.write_folder(tmp_path_factory.mktemp("folder"), tiny_files)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, tiny_zip):
    """The generated data set, decoded into the session's cache."""
    from tinyviz.data import load

    return load(tiny_zip, root=tmp_path_factory.getbasetemp() / "cache", progress=False)


TINY_CONFIG = dict(
    model="resnet18", model_options={"width": 16}, epochs=4, batch_size=32, lr=0.05, snapshots=3
)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_data) -> Path:
    """A small resnet18 trained for a few epochs on the generated data set (about 10 s).

    Shared by many tests: a test that changes the run folder works on a copy.
    """
    from tinyviz.config import TrainConfig
    from tinyviz.training.loop import train

    runs = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(**TINY_CONFIG)
    return train(cfg, tiny_data, runs / "tiny-resnet18", progress=False, log=lambda s: None)


EPOCH_VIEWS = (1, 2, 4)
VIEW_CONFIG = dict(
    model="resnet18",
    model_options={"width": 8},
    epochs=4,
    batch_size=32,
    lr=0.05,
    snapshots=0,
    epoch_views=EPOCH_VIEWS,
)


@pytest.fixture(scope="session")
def view_run(tmp_path_factory, tiny_data) -> Path:
    """A small resnet18 trained for 4 epochs keeping views of epochs 1, 2 and 4 (weights and
    analysis, `--epoch-views 1,2,4`), alone in its runs folder. Shared: copy to change it."""
    from tinyviz.config import TrainConfig
    from tinyviz.training.loop import train

    out = tmp_path_factory.mktemp("views") / "tiny-views"
    return train(TrainConfig(**VIEW_CONFIG), tiny_data, out, progress=False, log=lambda s: None)


@pytest.fixture(scope="session")
def run_data(tiny_run, tiny_data):
    """(run folder, data set) for the analysis services' tests."""
    return tiny_run, tiny_data


@pytest.fixture
def app_env(monkeypatch, tiny_zip, tiny_run):
    """Environment for AppTest: the generated data set and the tiny run's folder."""
    monkeypatch.setenv("TINYVIZ_DATA", str(tiny_zip))
    monkeypatch.setenv("TINYVIZ_RUNS", str(tiny_run.parent))
    return {"data": tiny_zip, "run": tiny_run}


# ------------------------------------------------------- your own data (issue 17)


@pytest.fixture(scope="session")
def folder_set(tmp_path_factory) -> Path:
    """Your own data set: five classes in `train/<class>/` and `val/<class>/`, PNG and JPEG
    of four sizes, one grayscale (`tinydata.make_image_folder`)."""
    return tinydata.make_image_folder(tmp_path_factory.mktemp("own") / "shapes")


@pytest.fixture(scope="session")
def folder_single(tmp_path_factory) -> Path:
    """The same five classes as one `<class>/` folder each, split by the fixed seed."""
    return tinydata.make_image_folder(tmp_path_factory.mktemp("own1") / "flat", split=False)


@pytest.fixture(scope="session")
def folder_data(tmp_path_factory, folder_set):
    """`folder_set` decoded at 32 x 32 into the session's cache."""
    from tinyviz.data import load

    root = tmp_path_factory.getbasetemp() / "cache"
    return load(folder_set, size=32, remember=True, root=root, progress=False)


@pytest.fixture(scope="session")
def folder_run(tmp_path_factory, folder_data) -> Path:
    """A tiny resnet18 trained for one epoch on `folder_data` (32 px), with its analysis."""
    from tinyviz.config import TrainConfig
    from tinyviz.training.loop import train

    out = tmp_path_factory.mktemp("own-runs") / "shapes-resnet18"
    cfg = TrainConfig(
        model="resnet18", model_options={"width": 8}, epochs=1, batch_size=16, lr=0.05
    )
    return train(cfg, folder_data, out, progress=False, log=lambda s: None)


@pytest.fixture
def queue_worker(tmp_path, monkeypatch):
    """The background queue in a folder of this test's own, served by a worker in a thread
    (`tests/queueworker.py`): pages that ask for slow results start no process."""
    from queueworker import QueueWorker

    from tinyviz.explain import work

    worker = QueueWorker(tmp_path / "queue")
    monkeypatch.setattr(work, "queue", lambda: worker.queue)
    yield worker.start()
    worker.stop()
