"""Poster-ready polish (issue 13): verdicts, layer names, WordNet groups, colour scales,
time estimates, the Models page's search view and precision, the Train page's stopped runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pytest
from pagetest import chart_rows, charts, ok, open_page, texts

from tinyviz import models
from tinyviz.config import TrainConfig
from tinyviz.demo import heatmaps
from tinyviz.demo.predict import SURE_AT, Prediction, verdict
from tinyviz.explain import wordnet
from tinyviz.models.describe import describe_layers, inspectable
from tinyviz.runs import jobs, leaderboard, open_run, reference
from tinyviz.runs.folder import RunFolder
from tinyviz.runs.progress import TrainProgress, write_progress
from tinyviz.runs.search import SearchRecord, Trial, trial_rows, write_search
from tinyviz.training import estimate

# --------------------------------------------------------------- verdicts


def prediction(*probs: float) -> Prediction:
    names = tuple(f"class{i}" for i in range(len(probs)))
    return Prediction(tuple(range(len(probs))), probs, names, names, 0.01, "m")


def test_a_confident_answer_is_stated_with_its_runner_up():
    v = verdict(prediction(0.82, 0.05, 0.01))
    assert v.sure and v.headline == "class0 · 82%" and v.detail == "next: class1 5%"


def test_a_weak_answer_says_not_sure_and_names_both_guesses():
    v = verdict(prediction(0.07, 0.05, 0.04))
    assert not v.sure and v.headline == "Not sure"
    assert v.detail == "maybe class0 7% or class1 5%"


def test_the_threshold_is_inclusive_and_can_be_moved():
    assert verdict(prediction(SURE_AT, 0.1)).sure
    assert not verdict(prediction(SURE_AT - 1e-3, 0.1)).sure
    assert not verdict(prediction(0.6, 0.1), sure_at=0.7).sure
    only = verdict(prediction(0.2))  # a one-class prediction has no runner-up
    assert only.runner_up is None and only.detail == "maybe class0 20%"


# ------------------------------------------------------------- layer names

WITH_LAYERS = [n for n in models.names() if models.spec(n).family not in ("linear", "mlp")]


def build(name: str):
    return (
        models.create(name, pretrained=False)
        if models.spec(name).pretrained
        else models.create(name)
    )


@pytest.mark.parametrize("name", WITH_LAYERS)
def test_every_inspectable_layer_gets_a_students_name(name):
    import torch

    model = build(name)
    model.train()
    infos = describe_layers(model)
    assert [i.name for i in infos] == inspectable(model) and infos
    for info in infos:
        assert info.title and info.name not in info.title  # not the module name
        assert "_" not in info.title and not info.title.startswith(("layer", "features"))
        h, w = info.resolution
        assert info.label == f"{info.title} · {h}×{w} · {info.channels} channels"
    assert len({i.title for i in infos}) == len(infos)  # each layer says which it is
    assert model.training  # the model's mode is restored and no hook is left behind
    assert not any(m._forward_hooks for m in model.modules())
    last = dict(model.named_modules())[infos[-1].name]  # channels checked independently
    seen = []
    handle = last.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 64, 64))
    handle.remove()
    assert (seen[0][1], tuple(seen[0][-2:])) == (infos[-1].channels, infos[-1].resolution)


def test_layer_names_say_stage_block_resolution_and_channels():
    labels = {i.name: i.label for i in describe_layers(models.create("resnet18"))}
    assert labels["layer4"] == "Stage 4, block 2 · 8×8 · 512 channels"
    assert labels["layer1"] == "Stage 1, block 2 · 64×64 · 64 channels"
    eff = {i.name: i.title for i in describe_layers(build("effnet_lite0"))}
    assert eff["_blocks.15"] == "Stage 7, block 1" and eff["_blocks.14"] == "Stage 6, block 4"
    assert eff["_head_act"].startswith("Head")
    vgg = {i.name: i.title for i in describe_layers(models.create("vgg_like"))}
    assert vgg["features.conv3"] == "Block 2, conv 1"
    assert describe_layers(models.create("logreg")) == []


# ---------------------------------------------------------- WordNet groups


def leaves() -> list[str]:
    tree = wordnet.parse_table()
    parents = {p for p, _ in tree.values()}
    return [w for w in tree if w not in parents]


def test_every_class_of_the_table_falls_in_a_readable_group():
    classes = leaves()
    assert len(classes) == 200  # Tiny ImageNet's classes are the table's leaves
    found = wordnet.groups(classes)
    assert wordnet.OTHER not in found
    assert 10 <= len(set(found)) <= 20
    assert min(found.count(g) for g in set(found)) >= 3  # no near-empty group
    assert wordnet.group("n02099601") == "Dogs"  # golden retriever
    assert wordnet.group("n04285008") == "Vehicles"  # sports car
    assert wordnet.group("n07873807") == "Food, drink"  # pizza
    assert wordnet.group("n00000000") == wordnet.OTHER


def test_the_palette_gives_each_group_its_own_colour():
    names, colours = wordnet.palette()
    assert len(names) == len(colours) == len(set(colours)) == len(wordnet.GROUPS) + 1
    assert names[-1] == wordnet.OTHER
    some, theirs = wordnet.palette({"Vehicles", "Dogs"})
    assert some == ["Dogs", "Vehicles"]  # in GROUPS order, whatever order they were asked in
    assert theirs == [colours[names.index(n)] for n in some]


# ------------------------------------------------------------ colour scales


def test_colour_stops_are_the_drawn_colours():
    ramp = np.linspace(0, 1, 5, dtype=np.float32)[None, :]
    drawn = heatmaps.heat_to_rgb(ramp)[0]
    assert heatmaps.colour_stops(n=5) == ["#" + bytes(c).hex() for c in drawn]
    assert heatmaps.colour_stops(n=2) == ["#000004", "#fcffa4"]  # inferno's ends
    weighted = heatmaps.colour_stops(n=3, alpha=0.6, weighted=True)
    assert weighted[0] == "#ffffff"  # no heat: the (white) image itself
    assert heatmaps.colour_stops(n=3, signed=True)[1] in ("#f7f7f7", "#f7f6f6")
    with pytest.raises(ValueError):
        heatmaps.colour_stops(n=1)


def test_a_weighted_overlay_keeps_a_white_background_white():
    """Transparent uploads become white for the model; the overlay must not turn it grey."""
    white = np.full((32, 32, 3), 255, np.uint8)
    heat = np.zeros((32, 32), np.float32)
    heat[:8, :8] = 1.0
    out = heatmaps.overlay(white, heat, 0.6, weighted=True)
    assert (out[20:, 20:] == 255).all() and out[2, 2].tolist() != [255, 255, 255]


# ----------------------------------------------------------- time estimates


def test_the_speed_is_measured_once_per_model_batch_and_device():
    cfg = TrainConfig(model="logreg", batch_size=16)
    first = estimate.measure(cfg, "cpu")
    assert first.train_images_per_s > 0 and first.eval_images_per_s > 0 and first.steps >= 1
    assert estimate.measure(cfg, "cpu") is first  # cached
    assert estimate.measure(cfg.replace(batch_size=8), "cpu") is not first


def test_seconds_and_words_of_an_estimate():
    speed = estimate.Speed("m", 100, "cpu", 1000.0, 5000.0, 3)
    assert estimate.seconds_for(speed, 2, 100_000, 10_000) == pytest.approx(2 * (100 + 2))
    assert estimate.describe(204, 2, "cpu") == "about 3 min for 2 epochs on the CPU"
    assert estimate.describe(30, 1, "cpu") == "under a minute for 1 epoch on the CPU"
    assert estimate.describe(3 * 3600, 40, "cuda") == "about 3 h for 40 epochs on the GPU (cuda)"
    assert estimate.rough_duration(5400 + 1800) == "about 2 h"
    assert estimate.probe_batch(512, 2_000_000_000) == 4  # a ResNet on a CPU: a few images
    assert estimate.probe_batch(100, 5_000_000) == 100  # logistic regression: all of them


# ---------------------------------------------------- leaderboard and search


def test_seed_rows_keep_citations_out_of_the_hardware_column():
    rows = leaderboard.seed_rows()
    assert all(r["hardware"] is None for r in rows)
    assert {r["citation"] for r in rows} == {ref.citation for ref in reference.REFERENCES}


def test_ensemble_labels_name_tta_only_when_there_was_one(tiny_run, tiny_data, tmp_path):
    from tinyviz.runs.evaluate import evaluate_run

    copy = shutil.copytree(tiny_run, tmp_path / "run")
    evaluate_run(copy, tiny_data, ensemble_size=2)
    evaluate_run(copy, tiny_data, tta="flip", ensemble_size=2)
    labels = {e["label"] for e in leaderboard.ensemble_curves([open_run(copy)])}
    assert labels == {"run", "run, flip TTA"}


def search_record(n: int = 5) -> SearchRecord:
    rng = np.random.default_rng(0)
    trials = tuple(
        Trial(
            k,
            float(10 ** rng.uniform(-3, 0)),
            float(10 ** rng.uniform(-6, -3)),
            0.02 + 0.01 * k,
            f"trial_{k:02d}",
        )
        for k in range(n)
    )
    return SearchRecord("logreg", 1, 20000, trials)


def test_trial_rows_flag_the_best_trial():
    rows = trial_rows(search_record())
    assert [r["best"] for r in rows] == [False] * 4 + [True]
    assert rows[0]["lr"] > 0 and rows[0]["run"] == "trial_00"


def test_the_search_command_keeps_its_lr_range_out_of_the_recipe(tiny_zip, tmp_path):
    from tinyviz import cli

    out = tmp_path / "search"
    argv = [
        "search",
        "--data",
        str(tiny_zip),
        "--model",
        "logreg",
        "--epochs",
        "1",
        "--batch-size",
        "32",
    ]
    assert (
        cli.main([*argv, "--trials", "1", "--lr", "0.01", "0.1", "--out", str(out), "--quiet"]) == 0
    )
    trial = json.loads((out / "search.json").read_text())["trials"][0]
    assert 0.01 <= trial["lr"] <= 0.1


# ------------------------------------------------------------------- pages


def test_models_page_one_precision_sources_and_the_search_scatter(app_env, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    write_search(runs / "search-logreg", search_record())
    monkeypatch.setenv("TINYVIZ_RUNS_DIR", str(runs))
    at = ok(open_page("pages/models.py"))
    table = at.dataframe[0]
    config = json.loads(table.proto.columns)
    for column in ("top1", "top5", "best_top1"):
        assert config[column]["type_config"]["format"] == "%.1f%%"
    assert config["citation"]["label"] == "source" and config["hardware"]["label"] == "hardware"
    scatter = next(c for c in charts(at) if "weight_decay" in json.dumps(c))
    layer = scatter["layer"][0]["encoding"]
    assert layer["x"]["scale"]["type"] == "log" and layer["y"]["scale"]["type"] == "log"
    rows = chart_rows(at, charts(at).index(scatter))
    assert len(rows) == 5 and rows.best.sum() == 1
    curves = next(c for c in charts(at) if "strokeDash" in json.dumps(c))
    lines = next(layer for layer in curves["layer"] if "strokeDash" in layer.get("encoding", {}))
    assert lines["encoding"]["y"]["title"] == "top-1 accuracy"
    assert lines["mark"] == {"type": "line"}  # no points in it: the legend shows line samples
    assert lines["encoding"]["strokeDash"]["legend"]["symbolType"] == "stroke"
    assert "Ringed in red: the best, 6.0%" in texts(at)


def test_train_page_estimates_the_time_before_start(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = ok(open_page("pages/train.py"))
    shown = [m for m in at.markdown if ":material/timer:" in m.value]
    assert len(shown) == 1 and "for 2 epochs on the CPU** (estimate)" in shown[0].value
    assert "images/s training" in shown[0].proto.help


def test_a_run_stopped_in_its_first_epoch_offers_start_again(app_env, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    run = runs / "stopped-early"
    run.mkdir(parents=True)
    shutil.copy(RunFolder(app_env["run"]).config, RunFolder(run).config)
    message = "stopped by the user before the first epoch ended: nothing was saved to resume"
    write_progress(RunFolder(run), TrainProgress("stopped", os.getpid(), 1.0, 0.0, message=message))
    (runs / jobs.LAST).write_text(json.dumps({"run_dir": str(run)}))
    monkeypatch.setenv("TINYVIZ_RUNS_DIR", str(runs))
    at = ok(open_page("pages/train.py"))
    assert not any(b.label == "Resume" for b in at.button)
    assert any("Nothing to resume" in w.value for w in at.warning)
    again = next(b for b in at.button if b.label == "Start again")
    assert not again.disabled
    try:
        again.click()
        ok(at.run())
        fresh = RunFolder(runs / "stopped-early-again")  # a fresh folder, its job launched...
        assert "stopped-early-again --quiet" in fresh.log.read_text()
        assert jobs.status(fresh.path).status != "none"
        assert RunFolder(run).config.exists() and not RunFolder(run).weights.exists()  # ...kept
    finally:
        jobs.stop(runs / "stopped-early-again", jobs_dir=runs, wait=10)


@pytest.fixture
def analysed_run(app_env, tiny_data, tmp_path, monkeypatch):
    """A copy of the tiny run, biased towards class 0 so that it makes mistakes, with its
    validation analysis stored (what the explain pages read)."""
    from tinyviz import runs
    from tinyviz.explain import analysis

    run = shutil.copytree(app_env["run"], tmp_path / "runs" / "tiny-analysed")
    weights = runs.load_weights(run / runs.RunFolder.WEIGHTS)  # biased: it makes mistakes
    weights["fc.bias"][0] += weights["fc.weight"].abs().sum(1).mean() * 0.3
    runs.save_weights(run / runs.RunFolder.WEIGHTS, weights)
    analysis.compute_cache(run, tiny_data)
    monkeypatch.setenv("TINYVIZ_RUNS", str(run.parent))
    return run


def test_confusion_empty_cells_are_white_and_the_shown_cell_is_ringed(analysed_run):
    at = ok(open_page("pages/confusion.py", analysed_run))
    overview = next(c for c in charts(at) if "All " in json.dumps(c.get("title", "")))
    assert "white: no image" in json.dumps(overview)
    i = next(i for i, c in enumerate(charts(at)) if "Classes 1 to" in json.dumps(c["title"]))
    block = charts(at)[i]
    coloured, *_, grid, ring = block["layer"]
    # only non-empty cells are coloured, from a visible light blue up; the rest is the white
    # page under a transparent grid of thin grey edges (that layer takes the clicks)
    assert (chart_rows(at, i, coloured["data"]["name"])["count"] > 0).all()
    assert coloured["encoding"]["color"]["scale"]["scheme"]["extent"][0] > 0
    assert grid["mark"]["fill"] == "transparent" and grid["mark"]["stroke"] == "#eeeeee"
    click = next(p for p in grid["params"] if p["name"] == "cell")  # the grid's own clicks
    assert click["select"]["fields"] == ["t", "p"] and "params" not in block
    assert ring["mark"]["stroke"] == "#ff7f0e"

    def ringed() -> list[tuple[int, int]]:
        i = next(i for i, c in enumerate(charts(at)) if "Classes 1 to" in json.dumps(c["title"]))
        rows = chart_rows(at, i, charts(at)[i]["layer"][-1]["data"]["name"])
        return list(zip(rows["t"], rows["p"], strict=True))

    assert len(ringed()) == 1  # before a click: the most confused pair
    pairs = at.radio(key=f"tv_conf_pair_{analysed_run.name}")
    pairs.set_value(len(pairs.options) - 1)
    ok(at.run())
    _, t, p = at.session_state["tv_conf_cell"]
    assert ringed() == [(t, p)]


def test_layer_pickers_show_stage_block_resolution_and_channels(analysed_run):
    at = ok(open_page("pages/channels.py", analysed_run))
    picker = at.selectbox(key="tv_ch_layer")
    assert picker.value == "layer4"
    assert [o.split(" · ")[0] for o in picker.options] == [
        f"Stage {k}, block 2" for k in range(1, 5)
    ]
    assert picker.options[-1].startswith("Stage 4, block 2 · 8×8 · ")
    assert "`layer4`" in picker.help  # the module's name, on hover
    sal = ok(open_page("pages/saliency.py", analysed_run))
    cam = next(s for s in sal.selectbox if s.label == "Grad-CAM layer")
    assert cam.value == "layer4" and cam.options[-1].startswith("Stage 4, block 2 · 8×8")
    shown = texts(sal)  # under the Grad-CAM map: its layer in words, the module's name on hover
    assert "on Stage 4, block 2" in shown and "`layer4`" not in shown
    assert any("linear-gradient" in h.proto.body for h in sal.get("html"))  # colour scale


def test_classify_says_not_sure_below_the_threshold(app_env, monkeypatch):
    from pagetest import png

    from tinyviz.demo import predict

    monkeypatch.setattr(predict, "SURE_AT", 1.01)  # nothing is sure now
    at = ok(open_page("pages/classify.py", app_env["run"], tv_cls_runs=[str(app_env["run"])]))
    at.file_uploader(key="tv_cls_files").set_value([("photo.png", png(), "image/png")])
    ok(at.run())
    head = next(h.value for h in at.get("html") if 'class="tv-ans"' in h.value)
    assert re.search(r'<p class="say faint" title="[^"]*less than 101%[^"]*">Not sure</p>', head)
    assert re.search(r'<p class="dim">maybe [^<]+ or [^<]+</p>', head)
    monkeypatch.setattr(predict, "SURE_AT", 0.0)  # everything is
    ok(at.run())
    head = next(h.value for h in at.get("html") if 'class="tv-ans"' in h.value)
    assert re.search(r'<p class="say( faint)?">[^<]+ · \d+%</p>', head)  # no hover note
    assert re.search(r'<p class="dim">next: [^<]+</p>', head)
