"""The sidebar: run folders a visitor may add, broken runs listed, the data path kept."""

from __future__ import annotations

import shutil

import pytest
import tampered
from pagetest import open_page, page

from tinyviz.errors import CheckpointError
from tinyviz.runs import roots

pytestmark = pytest.mark.slow


def test_only_folders_inside_the_run_roots_can_be_added(app_env, tmp_path, monkeypatch):
    """What the sidebar's "Add a run folder" calls (AppTest cannot rerun the sidebar's
    widgets of a navigation app, so the check is tested here, the page's use below)."""
    monkeypatch.delenv(roots.ALLOW_ANY, raising=False)
    for outside in ("/etc", str(tmp_path), "~"):
        with pytest.raises(CheckpointError, match="only folders inside the run roots"):
            roots.check_addable(outside)
    with pytest.raises(CheckpointError, match="no such folder"):
        roots.check_addable(str(app_env["run"].parent / "nope"))
    inside = app_env["run"].parent  # TINYVIZ_RUNS is a configured root
    assert roots.check_addable(str(inside)) == inside.resolve()
    assert roots.check_addable(str(inside / app_env["run"].name)) == app_env["run"].resolve()
    monkeypatch.setenv(roots.ALLOW_ANY, "1")
    assert roots.check_addable(str(tmp_path)) == tmp_path.resolve()


def test_an_added_folder_lists_its_runs(app_env, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(app_env["run"], elsewhere / "copied", ignore=shutil.ignore_patterns("analysis"))
    at = page("pages/models.py", tv_extra_runs=[str(elsewhere)])
    labels = at.sidebar.selectbox(key="tv_run").options  # as shown: "name · top-1"
    assert any(label.startswith("copied") for label in labels), labels


def test_a_run_without_a_score_says_so_not_zero(app_env, tmp_path):
    """A run stopped before its first epoch ended has no score: "not scored", never 0.0%
    (issue 21.8)."""
    elsewhere = tmp_path / "elsewhere"
    unscored = shutil.copytree(
        app_env["run"], elsewhere / "unscored", ignore=shutil.ignore_patterns("analysis")
    )
    (unscored / "metrics.jsonl").write_text("")
    (unscored / "evals.json").unlink(missing_ok=True)
    at = page("pages/models.py", unscored, tv_extra_runs=[str(elsewhere)])
    labels = at.sidebar.selectbox(key="tv_run").options
    assert "unscored · not scored" in labels, labels
    # the whole name, the model and the score under the narrow picker
    assert "unscored · resnet18 · not scored" in [c.value for c in at.sidebar.caption]


def test_a_broken_run_is_listed_with_its_reason_and_the_app_goes_on(app_env, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    shutil.copytree(app_env["run"], root / "good", ignore=shutil.ignore_patterns("analysis"))
    shutil.copytree(app_env["run"], root / "bad", ignore=shutil.ignore_patterns("analysis"))
    tampered.CASES["config is a JSON list"][0](root / "bad")
    monkeypatch.setenv("TINYVIZ_RUNS", str(root))
    for path in ("pages/models.py", "pages/classify.py", "pages/confusion.py"):
        at = open_page(path)
        assert not at.exception, (path, [e.value for e in at.exception])
        broken = [t.value for t in at.sidebar.text]
        assert any(t.startswith("bad: ") and "config.json" in t for t in broken), path


def test_the_data_path_is_kept_in_the_address(app_env):
    at = page("pages/models.py")
    at.sidebar.text_input(key="tv_data_path").input("/some/where/tiny.zip")
    at = at.run()
    assert at.query_params.get("data") in ("/some/where/tiny.zip", ["/some/where/tiny.zip"])


def test_the_explain_libraries_are_imported_in_the_background_once(monkeypatch):
    """The first click on an explain page should not wait seconds for scikit-learn, SciPy
    and plotly to import: the server's first script run starts their import in a thread.
    (What earlier tests imported does not count: the imports are watched.)"""
    import threading

    from pages import _cache

    imported = []
    real = _cache.importlib.import_module

    def watched(name, *args):
        imported.append((name, threading.current_thread().name))
        return real(name, *args)

    monkeypatch.setattr(_cache.importlib, "import_module", watched)
    _cache.warm_up.clear()  # a fresh server
    try:
        thread = _cache.warm_up()
        assert _cache.warm_up() is thread  # once per server, not per script run
        thread.join(120)
        assert not thread.is_alive()
    finally:
        _cache.warm_up.clear()
    warm = [(n, t) for n, t in imported if n in _cache.WARM_MODULES]  # not the libraries' own
    assert list(dict.fromkeys(n for n, _ in warm)) == list(_cache.WARM_MODULES)
    assert {t for _, t in warm} == {thread.name} != {threading.current_thread().name}


def test_the_chosen_runs_analysis_and_model_are_loaded_in_the_background(
    app_env, tiny_zip, tiny_data, tmp_path, monkeypatch, caplog
):
    """The sidebar's run choice starts one thread that fills the shared caches with that
    run's stored analysis and model, so the first explain page reads neither itself; that
    thread touches nothing of a page, so Streamlit has nothing to warn of (issue 21.8: the
    model cache's spinner had it log "missing ScriptRunContext")."""
    from pages import _cache
    from tinyviz.explain import analysis
    from tinyviz.runs import open_run

    run_dir = tmp_path / "runs" / "warm"  # a folder of its own: no other test cached it
    shutil.copytree(app_env["run"], run_dir)
    monkeypatch.setenv("TINYVIZ_RUNS", str(run_dir.parent))
    reads = []
    real_read = analysis.read
    monkeypatch.setattr(analysis, "read", lambda folder: reads.append(folder) or real_read(folder))
    page("pages/models.py", run_dir)
    run = open_run(run_dir)
    thread = _cache._warm_run(str(run_dir), run.stamp, str(tiny_zip), "cpu")
    thread.join(120)
    assert not thread.is_alive() and len(reads) == 1
    warned = [r for r in caplog.records if "ScriptRunContext" in r.getMessage()]
    assert not [r for r in warned if r.threadName.startswith("tinyviz-warm")], warned
    page("pages/confusion.py", run_dir)
    assert len(reads) == 1  # the page found it loaded


def test_nothing_is_warmed_for_a_data_set_never_decoded(tmp_path):
    """Decoding shows its own progress on the page that needs it: the warm-up never starts it."""
    from tinyviz.data import open_decoded

    assert open_decoded(tmp_path / "missing.zip") is None


def test_the_preloaded_chart_code_is_found_in_this_streamlits_build():
    """`_preload` looks the hashed module names up in the installed Streamlit: each exists,
    plotly's (the Embeddings map) among them, in the order given (smallest first)."""
    from pathlib import Path

    import streamlit as st

    from pages import _preload

    names = _preload.chunks()
    folder = Path(st.__file__).parent / "static" / "static" / "js"
    assert names and all((folder / n).is_file() for n in names)
    assert [n.split(".")[0] for n in names] == [
        e for e in _preload.ELEMENTS if any(n.startswith(e + ".") for n in names)
    ]
    assert names[-1].startswith("PlotlyChart.")


def test_a_large_data_set_is_decoded_in_the_background_and_the_page_follows(
    app_env, tmp_path, tiny_files, monkeypatch
):
    """Nothing slow in a script run: a data set too large to decode in a second or two is
    decoded by `tinyviz data` in the background (the page shows its progress at once and
    stops); a second visitor follows the same process; when it is done the page draws."""
    import os
    import signal
    import time

    import tinydata

    from tinyviz.data import cache
    from tinyviz.runtime import background

    fresh = tinydata.write_zip(tmp_path / "fresh.zip", tiny_files)  # never decoded
    monkeypatch.setenv("TINYVIZ_DATA", str(fresh))
    monkeypatch.setattr(cache, "SMALL_BYTES", 0)  # as if it were 250 MB
    launched = []
    spawn = background.spawn

    def held(*a, **k):  # the decode is held still until the second visitor has looked
        proc = spawn(*a, **k)
        os.kill(proc.pid, signal.SIGSTOP)
        launched.append(proc)
        return proc

    monkeypatch.setattr(background, "spawn", held)
    try:
        first = open_page("pages/data.py")
        assert not first.exception and "in the background" in first.info[0].value
        assert first.get("progress") and not first.metric  # progress at once; nothing drawn
        second = open_page("pages/data.py")
        assert "in the background" in second.info[0].value and len(launched) == 1
    finally:
        for proc in launched:
            os.kill(proc.pid, signal.SIGCONT)
    task = cache.decode_task(fresh.resolve(), 64)
    deadline = time.monotonic() + 120
    while task.files.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert launched[0].wait(60) == 0, task.log_tail(5)
    done = page("pages/data.py")
    assert [m.label for m in done.metric][:3] == ["Classes", "Training images", "Validation images"]
    assert len(launched) == 1 and not done.info


def test_closed_tabs_sessions_are_shut_down_once_past_their_time(monkeypatch):
    """What the janitor does once the server is quiet: Streamlit lets a closed tab's session
    go only when another tab closes, and without shutting it down (its uploads and images
    stay); those past their time are shut down, the others kept for a reconnect. Streamlit's
    own store (its TTLCache) and event loop (a real one, in a thread) are used."""
    import asyncio
    import inspect
    import threading
    from types import SimpleNamespace

    from streamlit import runtime
    from streamlit.runtime.caching.ttl_cache import TTLCache
    from streamlit.runtime.memory_session_storage import MemorySessionStorage
    from streamlit.runtime.runtime import Runtime
    from streamlit.runtime.websocket_session_manager import WebsocketSessionManager

    from pages import _cache

    # where this Streamlit keeps them (the function reads the same names)
    assert isinstance(MemorySessionStorage(ttl_seconds=30)._cache, TTLCache)
    assert "self._session_storage" in inspect.getsource(WebsocketSessionManager.__init__)
    assert "self._session_mgr" in inspect.getsource(Runtime.__init__)
    assert callable(Runtime._get_async_objs)

    clock, shut = [0.0], []
    stored = TTLCache(maxsize=128, ttl=30, timer=lambda: clock[0])

    def closed_tab(name: str):
        return SimpleNamespace(session=SimpleNamespace(shutdown=lambda: shut.append(name)))

    stored["left"] = closed_tab("left")
    clock[0] = 20.0
    stored["just closed"] = closed_tab("just closed")
    clock[0] = 35.0  # 35 s and 15 s after they closed
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = SimpleNamespace(
        _session_mgr=SimpleNamespace(_session_storage=SimpleNamespace(_cache=stored)),
        _get_async_objs=lambda: SimpleNamespace(eventloop=loop),
    )
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance", lambda: server)
    try:
        assert _cache.close_left_sessions() == 1
        assert shut == ["left"] and "just closed" in stored
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_sessions_share_the_scan_of_the_run_folders_until_a_run_changes(app_env, tmp_path):
    """The run folders are read once for every visitor while nothing in them changes (a
    crowd's script runs spent a fifth of the server's Python time reading them), and read
    again as soon as something does."""
    from pages import _state
    from tinyviz import io
    from tinyviz.runs import RunFolder

    run = tmp_path / "runs" / app_env["run"].name
    shutil.copytree(app_env["run"], run)
    where = (run.parent,)
    first = _state._shared_scan(where)
    assert _state._shared_scan(where) is first  # another script run, another session
    folder = RunFolder(run)
    io.write_json(folder.config, io.read_json(folder.config))  # rewritten, same content
    again = _state._shared_scan(where)
    assert again is not first and [r.name for r in again.runs] == [r.name for r in first.runs]
