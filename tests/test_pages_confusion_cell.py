"""The Confusion page's shown cell is one state (issue 21.3): a pair picked in the list,
then another class order, then "Compute them" computes the pair on screen, keeps it on
screen, and its nearest training images appear there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pagetest import ok, open_page, texts

from tinyviz import runs
from tinyviz.explain import analysis, tasks, train_features


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


def test_the_shown_pair_survives_an_order_change_and_is_the_one_computed(
    app_env, confused_run, tiny_data, monkeypatch
):
    started = []
    monkeypatch.setattr(tasks, "start", lambda run, task, args: started.append(args))
    monkeypatch.setenv("TINYVIZ_RUNS", str(confused_run.parent))
    names = runs.open_run(confused_run).class_names
    # a click on a matrix cell leaves this state (pages/confusion.py `pick`)
    first = (str(confused_run), 1, 2)
    at = ok(open_page("pages/confusion.py", confused_run, tv_conf_cell=first))
    ok(at.run())  # the deferred "why" section drawn
    assert _why(at) == f"Why {names[2]} and not {names[1]}?"
    pairs = at.radio(key=f"tv_conf_pair_{confused_run.name}")
    assert len(pairs.options) >= 2
    ok(pairs.set_value(1).run())  # a different pair from the list
    label = pairs.options[1]
    a_name, b_name = label.split(":")[0].split(" → ")
    a, b = names.index(a_name), names.index(b_name)
    assert (a, b) != (1, 2)
    assert _why(at) == f"Why {b_name} and not {a_name}?"
    order = at.button_group(key="tv_conf_order")
    ok(order.set_value("name").run())
    ok(at.run())  # the section of the new cell drawn
    assert _why(at) == f"Why {b_name} and not {a_name}?"
    ok(at.button(key="tv_ctr_go").click().run())
    assert started and started[-1][started[-1].index("--classes") + 1 :][:2] == [str(a), str(b)]
    assert _why(at) == f"Why {b_name} and not {a_name}?"  # not back at the first cell
    train_features.compute(confused_run, tiny_data, [a, b])  # what the job does
    ok(at.run())
    assert _why(at) == f"Why {b_name} and not {a_name}?"
    assert "(its true class)" in texts(at) and "(the model's answer)" in texts(at)
