"""Your own data (issue 17): a five-class image-folder data set made here, decoded at 32 px,
trains, evaluates and analyses from the command line, and every page renders on it."""

from __future__ import annotations

import json
import shutil

import pytest
from pagetest import charts, ok, open_page, png, texts

from tinyviz import cli
from tinyviz.runs import open_run

pytestmark = pytest.mark.slow


@pytest.fixture
def own_env(monkeypatch, folder_set, folder_data, folder_run):
    """The app on your own data set (decoded at 32 px before) and a run trained on it."""
    monkeypatch.setenv("TINYVIZ_DATA", str(folder_set))
    monkeypatch.setenv("TINYVIZ_RUNS", str(folder_run.parent))
    return {"data": folder_set, "run": folder_run}


def _emit(capsys, argv: list[str]) -> dict:
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_evaluate_analyse_at_32_px(folder_set, folder_data, folder_run, tmp_path, capsys):
    run = open_run(folder_run)
    assert run.config.data.size == 32 and list(run.wnids) == list(folder_data.classes.wnids)
    scored = _emit(
        capsys, ["evaluate", str(folder_run), "--data", str(folder_set), "--tta", "10crop"]
    )
    assert scored["n"] == 20 and 0 <= scored["top1"] <= 1
    bare = tmp_path / "bare"
    shutil.copytree(folder_run, bare, ignore=shutil.ignore_patterns("analysis"))
    done = _emit(capsys, ["analyse", str(bare), "--data", str(folder_set), "--quiet"])
    assert done["status"] == "done" and done["images"] == 20
    # a model with a fixed input (logistic regression) is built for the 32 px images
    lr = tmp_path / "lr"
    _emit(capsys, ["train", "--data", str(folder_set), "--model", "logreg", "--epochs", "1",
                   "--batch-size", "16", "--out", str(lr), "--quiet"])  # fmt: skip
    assert open_run(lr).config.model.options == {"input_size": 32}
    assert _emit(capsys, ["evaluate", str(lr), "--data", str(folder_set)])["n"] == 20


def test_the_single_folder_layout_trains_too(folder_single, tmp_path, capsys):
    out = tmp_path / "flat-run"
    _emit(capsys, ["data", str(folder_single), "--size", "32"])
    row = _emit(capsys, ["train", "--data", str(folder_single), "--model", "resnet18", "--opt",
                         "width=8", "--epochs", "1", "--batch-size", "16", "--out", str(out),
                         "--quiet"])  # fmt: skip
    assert row["epochs"] == 1 and open_run(out).config.data.val == 15


EXPLAIN = ["pages/confusion.py", "pages/channels.py", "pages/saliency.py", "pages/embeddings.py"]


@pytest.mark.parametrize("path", EXPLAIN)
def test_explain_pages_render(own_env, path):
    at = ok(open_page(path, own_env["run"]))
    if path.endswith("confusion.py"):  # the folder names are no WordNet synsets
        order = at.segmented_control(key="tv_conf_order")
        assert "wordnet" not in order.options and order.value == "confusion"
    if path.endswith("embeddings.py"):  # five classes: each its own colour, all on the map
        legend = {
            t["name"] for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]
        }
        assert {"apple", "elephant"} <= legend
        assert not any("figure 11" in b.label for b in at.button)
    if path.endswith("saliency.py"):
        assert any(c.endswith("(32 × 32)") for i in at.image for c in i.captions)


def test_demo_and_compare_pages_render(own_env):
    at = ok(open_page("pages/data.py"), errors=False)
    assert [m.value for m in at.metric][:3] == ["5", "60", "20"]
    assert "32 × 32" in texts(at) and "train/ and val/ folders" in texts(at)
    at = ok(open_page("pages/classify.py", own_env["run"], tv_cls_runs=[str(own_env["run"])]))
    at.file_uploader(key="tv_cls_files").set_value([("photo.png", png(), "image/png")])
    ok(at.run())
    assert "What the models see: 32 × 32" in [c for i in at.image for c in i.captions]
    ok(open_page("pages/compare.py", own_env["run"]), errors=True)
    ok(open_page("pages/train.py"))


def test_models_page_keeps_the_seeds_figures_to_tiny_imagenet(own_env):
    at = ok(open_page("pages/models.py"))
    picker = [s for s in at.segmented_control if s.key == "tv_models_data"]
    if picker:  # the shipped Tiny ImageNet runs are found too: pick your own data set
        picker[0].set_value(next(o for o in picker[0].options if o.startswith("shapes")))
        ok(at.run())
    assert "not shown beside these runs" in texts(at)
    table = at.dataframe[0].value
    assert list(table.run) == ["shapes-resnet18"]
    assert not any(str(v).startswith("seed ") for v in table.source)
    assert charts(at)
