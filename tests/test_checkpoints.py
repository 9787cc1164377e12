"""Checkpoints load without executing code, and every bad file gets a clear error."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from tinyviz import io, runs
from tinyviz.errors import CheckpointError


def _run(tmp_path: Path, model="logreg", classes=3, **options) -> Path:
    from tinyviz import models
    from tinyviz.config import TrainConfig
    from tinyviz.runs.folder import ClassList, ModelInfo, RunConfig, write_config

    run = runs.RunFolder(tmp_path / "run")
    net = models.create(model, num_classes=classes, **options)
    write_config(
        run,
        RunConfig(
            model=ModelInfo(model, options),
            train=TrainConfig(model=model),
            classes=ClassList(
                tuple(f"n{i:08d}" for i in range(classes)), tuple(f"c{i}" for i in range(classes))
            ),
        ),
    )
    runs.save_weights(run.weights, net.state_dict())
    return run.path


class Boom:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_renamed_to_safetensors_is_refused_without_running(tmp_path):
    run = _run(tmp_path)
    marker = tmp_path / "pwned"
    (run / "model.safetensors").write_bytes(pickle.dumps(Boom(str(marker))))
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        runs.load_model(run)
    assert not marker.exists()


def test_torch_save_file_is_refused(tmp_path):
    run = _run(tmp_path)
    torch.save({"w": torch.zeros(2)}, run / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        runs.load_model(run)


def test_wrong_shapes_are_named(tmp_path):
    run = _run(tmp_path)
    cfg = io.read_json(run / "config.json")
    cfg["classes"]["wnids"].append("n99999999")
    io.write_json(run / "config.json", cfg)
    with pytest.raises(CheckpointError, match="shape"):
        runs.load_model(run)


def test_missing_keys_are_named(tmp_path):
    run = _run(tmp_path)
    w = runs.load_weights(run / "model.safetensors")
    runs.save_weights(run / "model.safetensors", {"extra": torch.zeros(1), **w})
    with pytest.raises(CheckpointError, match="unexpected"):
        runs.load_model(run)


def test_unknown_model_is_named(tmp_path):
    run = _run(tmp_path)
    cfg = io.read_json(run / "config.json")
    cfg["model"]["name"] = "alexnet9000"
    io.write_json(run / "config.json", cfg)
    with pytest.raises(CheckpointError, match="unknown model 'alexnet9000'"):
        runs.load_model(run)
    (broken,) = runs.scan([tmp_path]).broken
    assert "unknown model 'alexnet9000'" in broken.reason


def test_nonfinite_weights_are_refused(tmp_path):
    run = _run(tmp_path)
    w = runs.load_weights(run / "model.safetensors")
    key = next(k for k, t in w.items() if t.is_floating_point() and t.ndim > 1)
    w[key][0, 0] = float("nan")
    runs.save_weights(run / "model.safetensors", w)
    with pytest.raises(CheckpointError, match="non-finite"):
        runs.load_model(run)


def test_missing_folder_and_config(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        runs.open_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        runs.open_run(tmp_path / "empty")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    io.write_json(tmp_path / "a.json", {"x": 1})
    io.append_jsonl(tmp_path / "m.jsonl", {"epoch": 1})
    io.append_jsonl(tmp_path / "m.jsonl", {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "m.jsonl"]
    assert [r["epoch"] for r in io.read_jsonl(tmp_path / "m.jsonl")] == [1, 2]


def test_list_runs_finds_runs_with_weights(tmp_path):
    run = _run(tmp_path)
    (tmp_path / "notarun").mkdir()
    assert [r.path for r in runs.list_runs([tmp_path])] == [run]
