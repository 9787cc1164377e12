"""The Confusion page's shown cell is one state (issue 21.3): a matrix click, then a pair
picked in the list, then another class order, then "Compute them" computes the pair on
screen, keeps it on screen, and its nearest training images appear there; the list, the
zoomed block and the matrices' highlight agree with it at every step."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pagetest import chart_rows, charts, ok, open_page, select_in_chart, texts

from tinyviz import runs
from tinyviz.explain import analysis, tasks, train_features
from tinyviz.runtime.tasks import TaskState


@pytest.fixture(scope="module")
def confused_run(tmp_path_factory, tiny_run, tiny_data) -> Path:
    """The tiny run biased towards class 0 (it makes mistakes), with its analysis."""
    run = tmp_path_factory.mktemp("cell") / "runs" / "tiny-confused"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("analysis"))
    weights = runs.load_weights(run / runs.RunFolder.WEIGHTS)
    weights["fc.bias"][0] += weights["fc.weight"].abs().sum(1).mean() * 0.3
    runs.save_weights(run / runs.RunFolder.WEIGHTS, weights)
    analysis.val_outputs(run, tiny_data)
    return run


def _why(at) -> str:
    return next(s.value for s in at.subheader if s.value.startswith("Why "))


def _ringed(at) -> list[tuple[int, int]]:
    """The cell the zoomed block rings in orange (its last layer)."""
    i = next(i for i, c in enumerate(charts(at)) if "(counts)" in str(c.get("title", "")))
    rows = chart_rows(at, i, charts(at)[i]["layer"][-1]["data"]["name"])
    return list(zip(rows["t"], rows["p"], strict=True))


def _pair(names, label: str) -> tuple[int, int]:
    a, b = label.split(":")[0].split(" → ")
    return names.index(a), names.index(b)


def _shows(at, names, cell: tuple[int, int], pairs_key: str) -> None:
    """Every part of the page shows `cell`: the "why" section, the images' line, the ring
    in the zoomed block (inside the zoom), and the pairs list (its pair, or none)."""
    t, p = cell
    assert _why(at) == f"Why {names[p]} and not {names[t]}?"
    assert f"**{names[t]}** taken for **{names[p]}**" in texts(at)
    assert _ringed(at) == [cell]
    pairs = at.radio(key=pairs_key)
    chosen = pairs.value
    listed = [_pair(names, o) for o in pairs.options]
    assert chosen == (listed.index(cell) if cell in listed else None)


def test_a_click_a_pair_an_order_and_compute_all_show_and_compute_one_cell(
    app_env, confused_run, tiny_data, monkeypatch
):
    started = []
    monkeypatch.setattr(tasks, "start", lambda run, task, args: started.append(args))
    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    names = runs.open_run(confused_run).class_names
    key = f"tv_conf_pair_{confused_run.name}"
    at = ok(open_page("pages/confusion.py", confused_run))
    ok(at.run())  # the deferred "why" section drawn
    listed = [_pair(names, o) for o in at.radio(key=key).options]
    assert len(listed) >= 3
    clicked = listed[-1]  # a cell clicked in the whole matrix
    ok(select_in_chart(at, "tv_conf_overview_", {"cell": [dict(t=clicked[0], p=clicked[1])]}))
    ok(at.run())
    _shows(at, names, clicked, key)
    picked = listed[1]  # then a different pair from the list
    ok(at.radio(key=key).set_value(1).run())
    _shows(at, names, picked, key)
    # the cell clicked first, clicked again: shown again (an old chart would keep its
    # selection and send nothing new)
    ok(select_in_chart(at, "tv_conf_overview_", {"cell": [dict(t=clicked[0], p=clicked[1])]}))
    _shows(at, names, clicked, key)
    ok(at.radio(key=key).set_value(1).run())
    ok(at.segmented_control(key="tv_conf_order").set_value("name").run())
    ok(at.run())  # the section of the cell drawn
    _shows(at, names, picked, key)
    ok(at.button(key="tv_ctr_go").click().run())
    a, b = picked
    assert started and started[-1][started[-1].index("--classes") + 1 :][:2] == [str(a), str(b)]
    _shows(at, names, picked, key)  # not back at the cell clicked first
    train_features.compute(confused_run, tiny_data, [a, b])  # what the job does
    ok(at.run())
    _shows(at, names, picked, key)
    assert "(its true class)" in texts(at) and "(the model's answer)" in texts(at)
    assert f"training images of {names[a]} and the" in texts(at)


def test_a_pair_asked_for_while_another_is_computed_starts_after_it(
    app_env, confused_run, tiny_data, monkeypatch
):
    """The task computes one pair at a time: the page names the pair being computed, and
    a pair asked for meanwhile is computed as soon as that ends, for the pair on screen."""
    started = []
    monkeypatch.setattr(tasks, "start", lambda run, task, args: started.append(args))
    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    names = runs.open_run(confused_run).class_names
    key = f"tv_conf_pair_{confused_run.name}"
    at = ok(open_page("pages/confusion.py", confused_run))
    listed = [_pair(names, o) for o in at.radio(key=key).options]
    base = train_features.folder(confused_run, tiny_data)
    shutil.rmtree(base, ignore_errors=True)  # nothing stored yet
    other = tuple(k for k in range(len(names)) if k not in listed[2])[:2]  # another pair's
    busy = TaskState("running", 0.4, "20 / 48 training images", 1.0, 1.0)
    monkeypatch.setattr(tasks, "state", lambda run, task: busy)
    monkeypatch.setattr(train_features, "computing", lambda run: other)
    ok(at.radio(key=key).set_value(2).run())
    ok(at.run())
    a, b = listed[2]
    assert f"Computing the features of {names[other[0]]} and {names[other[1]]} first" in texts(at)
    ok(at.button(key="tv_ctr_after").click().run())
    assert not started  # the task runs another pair's: this one waits
    assert f"those of {names[a]} and {names[b]} start when it is done" in texts(at)
    monkeypatch.setattr(tasks, "state", lambda run, task: TaskState("done", 1.0, "done"))
    monkeypatch.setattr(train_features, "computing", lambda run: None)
    ok(at.run())  # the other pair's task ended (the progress fragment reruns the page)
    assert len(started) == 1
    assert started[0][started[0].index("--classes") + 1 :][:2] == [str(a), str(b)]
    assert _why(at) == f"Why {names[b]} and not {names[a]}?"


def _matrices(at) -> list[tuple[str, str]]:
    """Both matrices as the browser tells them apart: (element id, spec without data)."""
    return [
        (c.proto.id, c.proto.spec) for c in at.get("vega_lite_chart") if "tv_conf_" in c.proto.id
    ]


def test_a_cell_click_keeps_both_matrices_and_moves_their_rings(app_env, confused_run, monkeypatch):
    """Issue 19: a click on a cell keeps both matrices' element ids and specs (the browser
    does not build them again: only the ring's data changes); a pick in the list renews
    only a chart that holds another cell selected, so clicking that cell again shows it."""
    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    names = runs.open_run(confused_run).class_names
    key = f"tv_conf_pair_{confused_run.name}"
    at = ok(open_page("pages/confusion.py", confused_run))
    listed = [_pair(names, o) for o in at.radio(key=key).options]
    before = _matrices(at)
    assert len(before) == 2
    clicked = listed[1]
    ok(select_in_chart(at, "tv_conf_block_", {"cell": [dict(t=clicked[0], p=clicked[1])]}))
    _shows(at, names, clicked, key)
    assert _matrices(at) == before
    ok(at.radio(key=key).set_value(0).run())  # the block holds `clicked`: renewed
    _shows(at, names, listed[0], key)
    after = _matrices(at)
    assert after[0] == before[0] and after[1][0] != before[1][0]
    ok(select_in_chart(at, "tv_conf_block_", {"cell": [dict(t=clicked[0], p=clicked[1])]}))
    _shows(at, names, clicked, key)
