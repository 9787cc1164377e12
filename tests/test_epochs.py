"""A run across its epochs: the `epoch_views` setting, the views the trainer keeps (weights
and analysis), resuming and exporting them, and maps aligned from one epoch to the next."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EPOCH_VIEWS, VIEW_CONFIG
from scipy.spatial.transform import Rotation

from tinyviz import runs
from tinyviz.cli import build_parser, config_from_args, main
from tinyviz.config import TrainConfig
from tinyviz.errors import CheckpointError, ConfigError
from tinyviz.explain import analysis, confusion, epochs
from tinyviz.runs import jobs
from tinyviz.runs.export import export_run
from tinyviz.training.loop import train

VIEWS = EPOCH_VIEWS  # the `view_run` fixture's (tests/conftest.py)
CFG = TrainConfig(**VIEW_CONFIG)


# ------------------------------------------------------------------ the setting


@pytest.mark.parametrize(
    ("views", "message"),
    [
        ((0, 2), "from 1 to 4, not 0"),
        ((2, 5), "from 1 to 4, not 5"),
        ((3, 1), "sorted and each listed once"),
        ((2, 2), "sorted and each listed once"),
        ((1.0,), "whole epoch numbers"),
        ((True,), "whole epoch numbers"),
        ("1,2", "whole epoch numbers"),
    ],
)
def test_epoch_views_must_be_epochs_of_the_run_in_order(views, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(epochs=4, epoch_views=views)


def test_epoch_views_round_trip_through_json_the_command_line_and_jobs():
    cfg = TrainConfig(epochs=6, epoch_views=[1, 3, 6])  # a list from Python is taken too
    assert cfg.epoch_views == (1, 3, 6)
    assert TrainConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    with pytest.raises(ConfigError, match="train.epoch_views"):
        TrainConfig.from_json({**cfg.to_json(), "epoch_views": ["1"]})
    args = build_parser().parse_args(["train", "--epochs", "6", "--epoch-views", "1, 3,6"])
    assert config_from_args(args) == cfg
    assert "--epoch-views=1,3,6" in jobs.train_args(cfg)
    again = build_parser().parse_args(["train", *jobs.train_args(cfg)])
    assert config_from_args(again) == cfg
    none = build_parser().parse_args(["train", "--epoch-views", ""])
    assert config_from_args(none).epoch_views == ()


def test_a_bad_epoch_list_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--out", "x", "--epoch-views", "1;3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "like 1,3,6" in err[0]


# ------------------------------------------------------------ what is kept


def test_a_run_keeps_one_view_per_chosen_epoch(view_run, tiny_data):
    folder = runs.RunFolder(view_run)
    assert folder.epoch_views() == VIEWS == runs.open_run(view_run).epoch_views()
    found = epochs.views(view_run, tiny_data)
    assert [v.epoch for v in found] == list(VIEWS) and all(v.analysed for v in found)
    metrics = {m.epoch: m.val_top1 for m in runs.open_run(view_run).metrics}
    assert [v.top1 for v in found] == [metrics[e] for e in VIEWS]
    for e in VIEWS:
        weights = runs.load_weights(folder.epoch_weights(e))
        assert all(t.dtype == torch.float16 for t in weights.values() if t.is_floating_point())
        assert len(list(folder.epoch_analysis(e).iterdir())) == 1  # one analysis, no other
    # the last view is the final weights in half precision: the same answers
    last = epochs.val_outputs(view_run, tiny_data, 4)
    final = analysis.val_outputs(view_run, tiny_data)
    assert np.mean(last.preds == final.preds) >= 0.9


def test_confusion_changes_across_epochs(view_run, tiny_data):
    names = runs.open_run(view_run).class_names
    outs = [epochs.val_outputs(view_run, tiny_data, e) for e in VIEWS]
    assert all(isinstance(o, analysis.ValOutputs) and len(o) == 24 for o in outs)
    matrices = [confusion.confusion(o, names, order_by="name").matrix for o in outs]
    assert all(m.sum() == 24 for m in matrices)
    assert any(not np.array_equal(matrices[0], m) for m in matrices[1:])
    tops = epochs.open_analysis(view_run, tiny_data, 1).channels
    assert set(tops) == {"layer1", "layer2", "layer3", "layer4"}  # each epoch's channels too


def test_an_epoch_without_a_view_or_analysis_is_one_line(view_run, tiny_data, tmp_path):
    with pytest.raises(CheckpointError, match="no view of epoch 3"):
        epochs.open_analysis(view_run, tiny_data, 3)
    bare = tmp_path / "bare"
    shutil.copytree(view_run, bare, ignore=shutil.ignore_patterns("analysis"))
    assert [v.analysed for v in epochs.views(bare, tiny_data)] == [False] * 3
    with pytest.raises(CheckpointError, match="tinyviz analyse"):
        epochs.open_analysis(bare, tiny_data, 2)
    assert epochs.compute_missing(bare, tiny_data) == list(VIEWS)
    assert all(v.analysed for v in epochs.views(bare, tiny_data))


def test_strays_in_the_epochs_folder_are_not_views(view_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(view_run, run)
    views = run / "epochs"
    (views / "007").mkdir()
    (views / "007" / "model.safetensors").write_bytes(b"x")
    (views / "3").mkdir()  # no weights: what a kill leaves
    (views / "5").symlink_to(views / "4")
    (views / "notes.txt").write_text("hello")
    assert runs.RunFolder(run).epoch_views() == VIEWS
    (views / "3" / "model.safetensors").write_bytes(b"\x80\x04 a pickle, say")
    assert [v.epoch for v in epochs.views(run)] == list(VIEWS)  # not weights: no view
    with pytest.raises(CheckpointError, match="not an epoch number"):
        runs.RunFolder(run).epoch_view(0)


def test_the_analyse_command_fills_in_missing_views(view_run, tiny_zip, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(view_run, run)
    shutil.rmtree(run / "epochs" / "2" / "analysis")
    assert main(["analyse", str(run), "--data", str(tiny_zip), "--quiet", "--compact"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [v["epoch"] for v in out["epoch_views"]] == list(VIEWS)
    assert all(v["stored"] and 0 <= v["top1"] <= 1 for v in out["epoch_views"])
    assert not list((run / "epochs").rglob("logp.npy"))  # --compact: the views' too


# --------------------------------------------------------------- resume, export


class Killed(Exception):
    pass


def test_a_killed_run_resumed_keeps_each_view_once(view_run, tiny_data, tmp_path, monkeypatch):
    """Killed just after epoch 2's view was written, before its resume state: epoch 2 is
    trained again, and its view kept again, once; the views match an unbroken run's (the
    session's `view_run`, trained with the same `CFG` on the same data)."""
    from tinyviz.training import loop

    straight = view_run
    real, seen = loop.save_state, []

    def save_state(folder, *args):
        seen.append(1)
        if len(seen) == 2:
            raise Killed()
        real(folder, *args)

    monkeypatch.setattr(loop, "save_state", save_state)
    with pytest.raises(Killed):
        train(CFG, tiny_data, tmp_path / "b", progress=False, log=lambda s: None)
    monkeypatch.setattr(loop, "save_state", real)
    broken = runs.RunFolder(tmp_path / "b")
    assert broken.epoch_views() == (1, 2)  # epoch 2's view, of an epoch not committed
    train(None, tiny_data, broken.path, resume=True, progress=False, log=lambda s: None)
    assert broken.epoch_views() == VIEWS
    for e in VIEWS:
        assert len(list(broken.epoch_analysis(e).iterdir())) == 1
        a = runs.load_weights(runs.RunFolder(straight).epoch_weights(e))
        b = runs.load_weights(broken.epoch_weights(e))
        assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in a)


def test_a_view_analysis_cut_short_is_finished_by_the_resumed_run(view_run, tiny_data, tmp_path):
    run = tmp_path / "r"
    shutil.copytree(view_run, run)  # a finished `CFG` run, its resume state included
    folder = runs.RunFolder(run)
    shutil.rmtree(folder.epoch_analysis(1))  # as if killed while epoch 1's pass ran
    assert not epochs.views(run, tiny_data)[0].analysed
    train(None, tiny_data, run, resume=True, epochs=5, progress=False, log=lambda s: None)
    assert [v.analysed for v in epochs.views(run, tiny_data)] == [True] * 3


def test_export_copies_the_views_with_their_analyses(view_run, tiny_data, tmp_path, capsys):
    info = export_run(view_run, tmp_path / "a")
    assert info["epoch_views"] == list(VIEWS)
    copy = runs.RunFolder(tmp_path / "a")
    for e in VIEWS:
        src = runs.RunFolder(view_run).epoch_weights(e)
        assert copy.epoch_weights(e).read_bytes() == src.read_bytes()
    assert main(["export", str(view_run), str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out)["epoch_analyses"] == len(VIEWS)
    shipped = epochs.views(tmp_path / "b", tiny_data)
    assert all(v.analysed for v in shipped)  # the slider works at once on the copy
    assert not list((tmp_path / "b").rglob("logp.npy"))  # compact only
    mine = epochs.val_outputs(view_run, tiny_data, 2)
    theirs = epochs.val_outputs(tmp_path / "b", tiny_data, 2)
    assert np.array_equal(mine.preds, theirs.preds)


def test_a_new_run_over_an_old_one_drops_its_views(view_run, tiny_data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(view_run, run)
    cfg = CFG.replace(model="logreg", model_options={}, epochs=1, epoch_views=())
    train(cfg, tiny_data, run, overwrite=True, progress=False, log=lambda s: None)
    assert runs.RunFolder(run).epoch_views() == () and not (run / "epochs").exists()


# -------------------------------------------------------------------- alignment


def _moved(coords: np.ndarray, rotation: np.ndarray, scale: float, shift) -> np.ndarray:
    return (scale * coords @ rotation + np.asarray(shift)).astype(np.float32)


@pytest.mark.parametrize("dims", [2, 3])
def test_alignment_undoes_a_rotation_scale_and_shift(dims):
    rng = np.random.default_rng(dims)
    reference = rng.normal(size=(300, dims)).astype(np.float32)
    turn = Rotation.from_euler("z", 40, degrees=True).as_matrix()
    rotation = turn[:2, :2] if dims == 2 else turn @ Rotation.from_euler("x", 25, True).as_matrix()
    moved = _moved(reference, rotation, 3.5, [10.0, -4.0, 2.0][:dims])
    fit = epochs.procrustes(moved, reference)
    assert fit.scale == pytest.approx(1 / 3.5, rel=1e-4)
    np.testing.assert_allclose(fit.apply(moved), reference, atol=1e-4)
    mirrored = moved * np.r_[-1.0, np.ones(dims - 1)]  # a map may come out mirrored, too
    back = epochs.procrustes(mirrored, reference).apply(mirrored)
    np.testing.assert_allclose(back, reference, atol=1e-4)


def test_alignment_matches_points_by_image_and_survives_noise():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(200, 2)).astype(np.float32)
    ref_images = np.arange(200) * 3
    rotation = Rotation.from_euler("z", -120, degrees=True).as_matrix()[:2, :2]
    moved = _moved(reference, rotation, 0.2, [5.0, 5.0])
    moved += rng.normal(scale=0.002, size=moved.shape).astype(np.float32)
    keep = rng.permutation(200)[:150]  # another selection, in another order
    fit = epochs.align(moved[keep], ref_images[keep], reference, ref_images)
    np.testing.assert_allclose(fit.apply(moved[keep]), reference[keep], atol=0.05)
    far = np.array([[100.0, -100.0]], np.float32)  # anything else placed on the map moves too
    np.testing.assert_allclose(fit.apply(_moved(far, rotation, 0.2, [5, 5])), far, atol=0.5)


def test_alignment_of_too_few_points_leaves_the_map():
    two = np.array([[0, 0], [1, 1]], np.float32)
    np.testing.assert_array_equal(epochs.procrustes(two, two * 5).apply(two), two)
    with pytest.raises(ValueError, match="same points"):
        epochs.procrustes(two, two[:1])


def test_maps_of_the_epochs_are_aligned_one_onto_the_next(view_run, tiny_data):
    final = analysis.read(analysis.available(view_run, tiny_data))
    chain = epochs.chain(view_run, tiny_data, epochs.FINAL, final)
    assert [stop for stop, _ in chain] == [*VIEWS, epochs.FINAL]
    maps = epochs.aligned_maps(view_run, tiny_data, chain, "pca", 2)
    assert [m.stop for m in maps] == [*VIEWS, epochs.FINAL]
    assert maps[0].alignment.scale == 1.0  # the first view's map is the frame
    for k in range(1, len(maps)):
        where = chain[k][1]
        raw = where if isinstance(where, analysis.Analysis) else analysis.read(where)
        previous = maps[k - 1].embedding.coords
        aligned, alone = maps[k].embedding.coords, embed_coords(view_run, tiny_data, raw)
        # never further from the previous epoch's map than the map as it was fitted
        assert ((aligned - previous) ** 2).sum() <= ((alone - previous) ** 2).sum() + 1e-4
    assert epochs.maps_stored(view_run, tiny_data, 2, "pca", 2, final=final)
    at_two = epochs.map_at(view_run, tiny_data, 2, "pca", 2, final=final)
    np.testing.assert_allclose(at_two.embedding.coords, maps[1].embedding.coords)
    with pytest.raises(CheckpointError, match="no analysed view of epoch 3"):
        epochs.map_at(view_run, tiny_data, 3, "pca", 2, final=final)


def embed_coords(run, data, source) -> np.ndarray:
    from tinyviz.explain import embed

    return embed.cached_embedding(run, data, "pca", 2, source=source).coords


@pytest.fixture
def one_thread():
    """The same arithmetic in this process as in the killed children (one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_every_write_of_a_run_with_views_survives_a_kill(tiny_zip, tmp_path, capsys, one_thread):
    """SIGKILLed at each write of its folder (the views' analyses included), then resumed:
    each chosen epoch has its view once, with the weights of an unbroken run and one
    analysis (a kill in the last epoch's pass leaves that to `tinyviz analyse`)."""
    from test_kill_writes import kill_points, train_args, writes_of_a_whole_run
    from test_kill_writes import tinyviz as killed_at

    def args(out: Path) -> list[str]:
        return [*train_args(tiny_zip, out), "--epoch-views", "1,2"]

    ref = tmp_path / "ref"
    writes = writes_of_a_whole_run(*args(ref))
    capsys.readouterr()
    want = {e: runs.load_weights(runs.RunFolder(ref).epoch_weights(e)) for e in (1, 2)}
    for k in kill_points(writes):
        out = tmp_path / f"kill{k:02d}"
        assert killed_at(*args(out), kill_at=k).returncode == -9, k
        rc = main(["train", "--resume", str(out), "--data", str(tiny_zip), "--quiet"])
        err = capsys.readouterr().err
        if rc != 0 and "nothing to resume" in err:  # killed before epoch 1 was saved
            rc = main([*args(out), "--overwrite"])
        elif rc != 0 and "already finished" in err:  # killed in the last view's pass
            rc = main(["analyse", str(out), "--data", str(tiny_zip), "--quiet"])
        assert rc == 0, (k, err[-500:])
        capsys.readouterr()
        folder = runs.RunFolder(out)
        assert folder.epoch_views() == (1, 2), k
        for e in (1, 2):
            got = runs.load_weights(folder.epoch_weights(e))
            same = [torch.allclose(want[e][n].float(), got[n].float(), atol=1e-3) for n in got]
            assert got.keys() == want[e].keys() and all(same), (k, e)
            stored = list(folder.epoch_analysis(e).iterdir())
            assert len(stored) == 1 and analysis.is_complete(stored[0]), (k, e, stored)
        assert not list(out.rglob("*.tmp")), (k, sorted(out.rglob("*.tmp")))


SHIPPED = Path(__file__).parents[1] / "checkpoints"
SHIPPED_VIEWS = sorted(p for p in SHIPPED.iterdir() if runs.RunFolder(p).epoch_views())


@pytest.mark.parametrize("run_dir", SHIPPED_VIEWS, ids=[p.name for p in SHIPPED_VIEWS])
def test_a_shipped_run_with_views_ships_their_analyses(run_dir):
    """Each view of a shipped run loads, and carries its compact analysis of the whole
    validation set (the data set is not needed to check it: its meta.json says)."""
    run = runs.open_run(run_dir)
    assert set(run.config.train.epoch_views) == set(run.epoch_views())
    for e in run.epoch_views():
        model = runs.load_model(run_dir, epoch=e)
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 200)
        (stored,) = [p for p in run.folder.epoch_analysis(e).iterdir() if p.is_dir()]
        meta = json.loads((stored / analysis.META).read_text())
        assert meta["n"] == 10000 and meta["epoch"] == e and meta["stage"] == "full"
        assert stored.name.endswith(analysis.weights_digest(run.folder.epoch_weights(e))[:16])
        names = {p.name for p in stored.iterdir()}  # maps drawn here since are not shipped
        assert {analysis.COMPACT, analysis.META} <= names and not names & set(analysis.EXACT)
