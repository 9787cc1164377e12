"""The Classify, Saliency, Data and Train pages in Streamlit's AppTest, on the tiny data set.

Classify also runs with no data set at all (the poster-session case) on the shipped
ResNet-18; Train starts a real (tiny) training process, finds it again from a second
session, and stops it.
"""

from __future__ import annotations

import io
import shutil
import time

import pagetest
import pytest
from pagetest import RESNET, open_page, path_of, png, texts, top5_bars, wait_for_analysis
from PIL import Image
from streamlit.testing.v1 import AppTest

from tinyviz import runs
from tinyviz.data import load
from tinyviz.runs import jobs


def ok(at):
    """These pages may show st.error on purpose (a refused file): exceptions only."""
    return pagetest.ok(at, errors=True)


def page(path: str, run=None, **state):
    return ok(open_page(path, run, **state))


# ------------------------------------------------------------------- Classify


needs_resnet = pytest.mark.skipif(
    not (RESNET / "model.safetensors").exists(),
    reason="the shipped resnet18-push checkpoint is missing",
)


@needs_resnet
def test_classify_uploads_good_and_bad_files(app_env, tiny_run):
    at = page("pages/classify.py", tiny_run, tv_cls_runs=[str(RESNET), f"{tiny_run}#snapshots"])
    assert at.file_uploader(key="tv_cls_files").accept_multiple_files
    at.file_uploader(key="tv_cls_files").set_value(
        [("photo.png", png(), "image/png"), ("notes.png", b"just some text", "image/png")]
    )
    ok(at.run())
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "notes.png" in errors[0] and "\n" not in errors[0]
    assert any("photo.png" in s.value for s in at.subheader)  # the good file still shows
    resnet = top5_bars(at, 0)
    assert len(resnet) == 5 and resnet.p.between(0, 1).all() and resnet.p.is_monotonic_decreasing
    assert resnet["class"].str.len().gt(0).all()
    snaps = top5_bars(at, 1)  # the tiny run's snapshot ensemble: its 4 classes
    assert len(snaps) == 4 and abs(snaps.p.sum() - 1) < 1e-4
    captions = texts(at)
    assert "Top-5 (" in captions and "best snapshot" in captions
    assert len(at.image) >= 4  # original, 64 x 64 view, two overlays


@needs_resnet
def test_classify_without_a_data_set(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYVIZ_DATA", raising=False)
    monkeypatch.setenv("TINYVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    at = page("pages/classify.py", tv_cls_runs=[str(RESNET)])
    at.segmented_control(key="tv_cls_look").set_value("gradient")
    at.camera_input(key="tv_cls_camera").set_value(("shot.jpg", jpeg(), "image/jpeg"))
    ok(at.run())
    assert not at.error
    assert len(top5_bars(at)) == 5
    assert "Vanilla gradient" in texts(at)


def test_the_newest_photo_is_answered_first_and_each_upload_decoded_once(
    app_env, tiny_run, monkeypatch
):
    """A visitor's newest photo comes at the top, above the ones before it (it was drawn
    below the fold); a rerun decodes no photo again, a refused one included."""
    from tinyviz.demo import images

    decoded, real = [], images.load_upload

    def load_upload(data, **kwargs):
        decoded.append(data)
        return real(data, **kwargs)

    monkeypatch.setattr(images, "load_upload", load_upload)
    at = page("pages/classify.py", tiny_run, tv_cls_runs=[str(tiny_run)])
    files = [("first.png", png(1), "image/png"), ("bad.png", b"not an image", "image/png")]
    at.file_uploader(key="tv_cls_files").set_value(files)
    ok(at.run())
    assert len(decoded) == 2 and len(at.error) == 1 and "bad.png" in at.error[0].value
    files.append(("newest.png", png(2), "image/png"))
    at.file_uploader(key="tv_cls_files").set_value(files)
    ok(at.run())
    assert [s.value for s in at.subheader] == ["newest.png", "first.png"]
    assert decoded[2:] == [png(2)]  # the new one only
    ok(at.run())
    assert len(decoded) == 3 and len(at.error) == 1  # the refusal is kept, not tried again
    at.file_uploader(key="tv_cls_files").set_value(files[:1])
    ok(at.run())
    assert len(at.session_state["tv_cls_decoded"]) == 1  # removed files' pictures go


def test_a_photo_costs_each_model_one_forward_pass_for_its_top5_and_familiarity(
    app_env, tiny_run, monkeypatch
):
    """Classify reads a model's top-5 and its familiarity check from one pass (`look`): no
    second forward pass for the top-5 (`_probs`), one look per new photo once warm."""
    from tinyviz.demo import predict

    looks, passes, real_look, real_probs = [], [], predict.look, predict._probs
    monkeypatch.setattr(predict, "look", lambda *a: looks.append(1) or real_look(*a))
    monkeypatch.setattr(predict, "_probs", lambda *a: passes.append(1) or real_probs(*a))
    at = page("pages/classify.py", tiny_run, tv_cls_runs=[str(tiny_run)])
    files = [("one.png", png(4101), "image/png")]  # photos no other test shows: not cached
    at.file_uploader(key="tv_cls_files").set_value(files)
    ok(at.run())
    assert "Top-5 (" in texts(at) and not passes and looks  # (its first: a warm-up too)
    before = len(looks)
    at.file_uploader(key="tv_cls_files").set_value([*files, ("two.png", png(4102), "image/png")])
    ok(at.run())
    assert texts(at).count("Top-5 (") == 2 and not passes and len(looks) == before + 1


@needs_resnet
def test_a_run_that_fails_mid_answer_says_so_in_its_column_and_the_others_answer(
    app_env, tiny_run, monkeypatch
):
    """A run whose map cannot be made (its weights or layers refused after the top-5) gets
    one line in its own column, where its map would be, under its top-5; the other model's
    answer is drawn whole."""
    from pages import _cache
    from tinyviz.errors import CheckpointError

    real = _cache.attribution

    def attribution(run, *args, **kwargs):
        if run.name == tiny_run.name:
            raise CheckpointError("its layers do not match its weights")
        return real(run, *args, **kwargs)

    monkeypatch.setattr(_cache, "attribution", attribution)
    at = page("pages/classify.py", tiny_run, tv_cls_runs=[str(tiny_run), str(RESNET)])
    at.file_uploader(key="tv_cls_files").set_value([("photo.png", png(), "image/png")])
    ok(at.run())
    (error,) = [e.value for e in at.error]
    assert tiny_run.name in error and "do not match its weights" in error and "\n" not in error
    assert len(top5_bars(at, 0)) and len(top5_bars(at, 1)) == 5  # each model's top-5 first
    assert len(at.image) == 3  # the photo, what the models see, resnet18-push's map


def test_every_models_top5_is_out_before_any_heat_map_is_computed(app_env, tiny_run, monkeypatch):
    """The answers first: a map costs a model as much again as its top-5, so with two
    models the second top-5 must not wait for the first model's map (issue 19). Each map
    then fills the place held for it under its model's verdict."""
    from pages import _cache
    from pages.charts import predictions

    done = []
    real_map, real_top5 = _cache.attribution, predictions.top5_html

    def attribution(*args, **kwargs):
        done.append("map")
        return real_map(*args, **kwargs)

    def top5_html(*args, **kwargs):
        done.append("top-5")
        return real_top5(*args, **kwargs)

    monkeypatch.setattr(_cache, "attribution", attribution)
    monkeypatch.setattr(predictions, "top5_html", top5_html)
    at = page("pages/classify.py", tiny_run, tv_cls_runs=[str(tiny_run), str(RESNET)])
    at.file_uploader(key="tv_cls_files").set_value([("photo.png", png(), "image/png")])
    ok(at.run())
    assert done == ["top-5", "top-5", "map", "map"]
    assert len(at.image) == 4 and "Where it looked for" in texts(at)  # photo, seen, 2 maps


def test_a_photo_is_classified_while_an_explanation_holds_the_same_runs_model(app_env, tiny_run):
    """Classify has model objects of its own: another visitor's explanation holding the
    explain pages' copy of the run's model (its lock, mid-pass, in another thread) does not
    hold up a photo."""
    import threading

    from pages import _cache
    from tinyviz.runtime.locks import model_lock

    run = runs.open_run(tiny_run)
    theirs = _cache._model(str(tiny_run), run.stamp, None, "cpu")  # the explain pages'
    holding, done = threading.Event(), threading.Event()

    def explain() -> None:
        with model_lock(theirs):
            holding.set()
            done.wait(120)

    threading.Thread(target=explain, daemon=True).start()
    assert holding.wait(30)
    try:
        at = page("pages/classify.py", tiny_run, tv_cls_runs=[str(tiny_run)])
        at.file_uploader(key="tv_cls_files").set_value([("photo.png", png(), "image/png")])
        ok(at.run(timeout=30))  # it would wait for the lock until `done`
        assert "Top-5 (" in texts(at) and "Where it looked for" in texts(at)
    finally:
        done.set()
    ours = _cache._model(str(tiny_run), run.stamp, None, "cpu", lane=_cache.CLASSIFY)
    assert ours is not theirs and model_lock(ours) is not model_lock(theirs)


def test_a_quiet_server_forgets_the_explain_pages_models_but_not_classifys(tiny_run):
    """What the janitor calls once a crowd has left: the explain pages' models go (the next
    click loads its own again), Classify's stay loaded for the next photo."""
    from pages import _cache

    run = runs.open_run(tiny_run)
    explain = _cache._model(str(tiny_run), run.stamp, None, "cpu")
    classify = _cache._model(str(tiny_run), run.stamp, None, "cpu", lane=_cache.CLASSIFY)
    import streamlit as st

    @_cache.forgettable
    @st.cache_resource(max_entries=2)
    def a_pages_matrix(n: int) -> list[int]:
        return list(range(n))

    matrix = a_pages_matrix(3)
    _cache._forget()
    assert _cache._model(str(tiny_run), run.stamp, None, "cpu") is not explain
    assert _cache._model(str(tiny_run), run.stamp, None, "cpu", lane=_cache.CLASSIFY) is classify
    assert a_pages_matrix(3) is not matrix  # a page's own cache marked `forgettable` went too


@needs_resnet
def test_classifys_default_models_are_loaded_before_the_first_photo(app_env, monkeypatch):
    """The server loads the models Classify shows first (and runs them once) as soon as a
    page has found the runs: the first visitor's photo loads nothing."""
    import threading

    from pages import _cache, _classify_ready

    _classify_ready._warm.clear()  # as on a new server (another test may have warmed them)
    page("pages/models.py")  # any page: the sidebar finds the runs
    warming = [t for t in threading.enumerate() if t.name == "tinyviz-warm-classify"]
    for thread in warming:
        thread.join(120)

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded for the photo")

    monkeypatch.setattr(_cache, "load_model", no_load)
    at = page("pages/classify.py")  # its default models
    at.file_uploader(key="tv_cls_files").set_value([("photo.png", png(), "image/png")])
    ok(at.run())
    assert not at.error and texts(at).count("Top-5 (") == 2


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png(1, (320, 240)))).save(buf, "JPEG")
    return buf.getvalue()


# ------------------------------------------------------------------- Saliency


def test_saliency_methods_side_by_side(app_env, tiny_run, queue_worker):
    at = page("pages/saliency.py", tiny_run)
    shown = texts(at)
    for label in ("Vanilla gradient", "Grad-CAM", "Guided backprop", "True:", "Predicted:"):
        assert label in shown
    assert "Occlusion" not in shown.split("**Methods**")[1]  # slow: off by default on a CPU
    at.slider(key="tv_sal_pick").set_value(3)
    ok(at.run())
    at.checkbox(key="tv_sal_m_occlusion").check()
    ok(at.run())
    assert "**Occlusion**" in texts(at)
    assert len(at.image) >= 5
    at.slider(key="tv_sal_pick").set_value(4)  # a new image: the slow method starts unticked
    ok(at.run())
    assert not at.checkbox(key="tv_sal_m_occlusion").value
    at.checkbox(key="tv_sal_keep_slow").check()  # unless the visitor asks to keep it
    at.checkbox(key="tv_sal_m_occlusion").check()
    at.slider(key="tv_sal_pick").set_value(5)
    ok(at.run())
    assert at.checkbox(key="tv_sal_m_occlusion").value
    at.selectbox(key="tv_sal_target").set_value(3)  # any class can be explained
    ok(at.run())
    assert "for class **convertible**" in texts(at)


def test_a_saliency_click_leaves_the_trust_section_where_it_is(app_env, tiny_run, queue_worker):
    """Issue 19: the image picker, the ticks and the maps are one part of the page (a
    fragment: a click redraws it alone); the trust section lies outside it and keeps its
    place when a method is ticked, so the browser does not draw its charts again."""
    at = page("pages/saliency.py", tiny_run)
    part = path_of(at, at.segmented_control(key="tv_sal_source"))[0]
    assert path_of(at, at.checkbox(key="tv_sal_m_gradient"))[0] == part
    assert path_of(at, at.image[-1])[0] == part  # the last map

    def trust() -> tuple[int, ...]:
        heading = next(s for s in at.subheader if s.value == "How far to trust these maps")
        return path_of(at, heading)

    before = trust()
    assert before[0] != part
    at.checkbox(key="tv_sal_m_occlusion").check()  # a fourth map: a second row of maps
    ok(at.run())
    assert "**Occlusion**" in texts(at) and trust() == before


def test_saliency_upload_and_misclassified(app_env, tiny_run, tmp_path, monkeypatch):
    run = tmp_path / tiny_run.name  # a copy: finding mistakes writes RUN/analysis/
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analysis"))
    weights = runs.load_weights(run / runs.RunFolder.WEIGHTS)  # biased: it makes mistakes
    weights["fc.bias"][0] += weights["fc.weight"].abs().sum(1).mean() * 0.3
    runs.save_weights(run / runs.RunFolder.WEIGHTS, weights)
    monkeypatch.setenv("TINYVIZ_RUNS", str(tmp_path))
    at = page("pages/saliency.py", run, tv_sal_source="upload")
    at.file_uploader(key="tv_sal_file").set_value(("bad.png", b"not a png", "image/png"))
    ok(at.run())
    assert "bad.png" in at.error[0].value
    at.file_uploader(key="tv_sal_file").set_value(("photo.png", png(2), "image/png"))
    ok(at.run())
    assert not at.error and "True:** unknown" in texts(at) and "**Grad-CAM**" in texts(at)
    at.segmented_control(key="tv_sal_source").set_value("wrong")
    ok(at.run())  # no stored predictions: the page starts the background job and waits
    assert "First look at" in at.info[0].value
    from tinyviz.explain import analysis

    data = load(app_env["data"], progress=False)
    wait_for_analysis(run, data)
    ok(at.run())
    wrong = analysis.val_outputs(run, data).misclassified()
    assert len(wrong) > 0  # the tiny run is not perfect on its validation images
    assert f"{len(wrong):,} of 24 validation images are misclassified by" in texts(at)


def test_saliency_refuses_a_run_of_other_classes(app_env):
    at = page("pages/saliency.py", RESNET)
    assert any("classes" in e.value for e in at.error)


# ----------------------------------------------------------------------- Data


def test_data_page_browses_and_augments(app_env):
    at = page("pages/data.py")
    assert [m.value for m in at.metric][:3] == ["4", "96", "24"]
    at.text_input(key="tv_data_query").input("tabby")
    ok(at.run())
    assert at.selectbox(key="tv_data_class").value == 1  # the only match: the tabby class
    assert "tabby" in texts(at)
    before = len(at.image)
    at.slider(key="tv_aug_mixup").set_value(0.4)
    at.button[0].click()  # re-roll
    ok(at.run())
    assert at.session_state["tv_aug_seed"] == 1
    assert len(at.image) == before
    mixed = [c for i in at.image for c in i.captions if "this image" in c]
    assert mixed and all(c.startswith("mixup: ") for c in mixed)  # mixed copies say so


# ---------------------------------------------------------------------- Train


def wait(at: AppTest, until, timeout: float = 60) -> AppTest:
    deadline = time.monotonic() + timeout
    while not until(at):
        assert time.monotonic() < deadline, texts(at)
        time.sleep(0.5)
        ok(at.run())
    return at


def start_button(at: AppTest):
    return next(b for b in at.button if b.label == "Start training")


def test_train_start_watch_second_tab_stop(app_env, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("TINYVIZ_RUNS_DIR", str(runs))
    at = page("pages/train.py")
    assert "CPU" in at.warning[0].value
    at.selectbox(key="tv_tr_model").set_value("logreg")
    at.number_input(key="tv_tr_epochs").set_value(400)
    at.selectbox(key="tv_tr_batch_size").set_value(32)
    at.text_input(key="tv_tr_name").input("tiny-logreg")
    ok(at.run())
    start_button(at).click()
    ok(at.run())
    try:
        wait(
            at,
            lambda a: (
                "**tiny-logreg**: running" in texts(a) and "val: the validation images" in texts(a)
            ),
        )  # an epoch is done: curves show
        assert at.get("progress")
        second = page("pages/train.py")  # another tab: the same job, Start disabled
        assert "**tiny-logreg**: running" in texts(second)
        assert start_button(second).disabled
        assert any("one job at a time" in c.value for c in second.caption)
        # "Stop training", once: Streamlit's own "Stop" (of a script run) is another one
        assert [b.label for b in at.button if "Stop" in b.label] == ["Stop training"]
        next(b for b in at.button if b.label == "Stop training").click()
        ok(at.run())
        wait(at, lambda a: "**tiny-logreg**: stopped" in texts(a))
        assert any(b.label == "Resume" for b in at.button)
        assert not start_button(page("pages/train.py")).disabled
    finally:
        jobs.stop(runs / "tiny-logreg", jobs_dir=runs, wait=10)
    assert jobs.status(runs / "tiny-logreg").status == "stopped"


def test_a_run_stopped_as_it_takes_its_turn_gives_the_turn_back(monkeypatch):
    """Streamlit stops a run whose visitor moved on where it writes to the page: a run that
    waited for its turn and is stopped while clearing its note must not keep the turn (it
    did, and then no page but Classify ever ran again for any visitor)."""
    import threading

    from pages import _turns

    class Stopped(Exception):
        pass

    class Note:
        def caption(self, text):
            pass

        def empty(self):
            raise Stopped

    monkeypatch.setattr(_turns.st, "empty", Note)
    turns = _turns._turns()
    assert turns.acquire(blocking=False)  # another visitor's page holds the turn
    threading.Timer(0.3, turns.release).start()
    with pytest.raises(Stopped), _turns.turn():
        pytest.fail("a stopped run draws nothing")
    assert turns.acquire(blocking=False)  # the turn is free again
    turns.release()


def test_other_pages_take_turns_while_classify_does_not_wait(app_env):
    """With another visitor's page being drawn (its turn held), Classify still runs at once;
    any other page waits, saying so, and runs when the turn is given back."""
    import threading

    from pages import _turns

    turns = _turns._turns()
    assert turns.acquire(blocking=False)  # another visitor's Confusion, being drawn
    released = threading.Event()

    def give_back() -> None:
        released.set()
        turns.release()

    try:
        at = page("pages/classify.py")
        assert not released.is_set() and any("Upload a photo above" in i.value for i in at.info)
        threading.Timer(1.5, give_back).start()
        models = page("pages/models.py")
        assert released.is_set()  # it ran only once the turn was given back
        assert "Every run found" in texts(models)  # the Models page, drawn whole
    finally:
        if not released.is_set():
            turns.release()
    assert turns.acquire(blocking=False)  # the Models page gave its turn back as well
    turns.release()


def test_a_pages_fragment_takes_the_turn_and_shows_a_refusal_as_one_line():
    """`_turns.fragment`: a fragment's own rerun does not pass through app.py, so it takes
    the page's turn itself (a fragment inside the page's run is in that run's turn: it does
    not wait for itself) and a TinyvizError is one line in it, the page going on below."""

    def script():
        import streamlit as st

        from pages import _turns
        from tinyviz.errors import TinyvizError

        @_turns.fragment("A page")
        def part():
            st.markdown("in the fragment")
            raise TinyvizError("no such run")

        with _turns.turn():  # as app.py runs a page
            part()
            st.markdown("after the fragment")

    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["no such run"]
    assert [m.value for m in at.markdown] == ["in the fragment", "after the fragment"]
