"""Checkpoints load without executing code, and every bad file gets a clear error."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from tinyviz import checkpoints
from tinyviz.checkpoints import CheckpointError


def _run(tmp_path: Path, model="logreg", classes=3, **options) -> Path:
    from tinyviz import models

    run = tmp_path / "run"
    net = models.create(model, num_classes=classes, **options)
    checkpoints.write_json(run / "config.json", {
        "model": {"name": model, "options": options},
        "classes": {"wnids": [f"n{i:08d}" for i in range(classes)],
                    "names": [f"c{i}" for i in range(classes)]},
    })
    checkpoints.save_weights(run / "model.safetensors", net.state_dict())
    return run


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
        checkpoints.load_model(run)
    assert not marker.exists()


def test_torch_save_file_is_refused(tmp_path):
    run = _run(tmp_path)
    torch.save({"w": torch.zeros(2)}, run / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        checkpoints.load_model(run)


def test_wrong_shapes_are_named(tmp_path):
    run = _run(tmp_path)
    cfg = checkpoints.read_json(run / "config.json")
    cfg["classes"]["wnids"].append("n99999999")
    checkpoints.write_json(run / "config.json", cfg)
    with pytest.raises(CheckpointError, match="shape"):
        checkpoints.load_model(run)


def test_missing_keys_are_named(tmp_path):
    run = _run(tmp_path)
    w = checkpoints.load_weights(run / "model.safetensors")
    checkpoints.save_weights(run / "model.safetensors", {"extra": torch.zeros(1), **w})
    with pytest.raises(CheckpointError, match="unexpected"):
        checkpoints.load_model(run)


def test_unknown_model_is_named(tmp_path):
    run = _run(tmp_path)
    cfg = checkpoints.read_json(run / "config.json")
    cfg["model"]["name"] = "alexnet9000"
    checkpoints.write_json(run / "config.json", cfg)
    with pytest.raises(CheckpointError, match="unknown model 'alexnet9000'"):
        checkpoints.load_model(run)


def test_nonfinite_weights_are_refused(tmp_path):
    run = _run(tmp_path)
    w = checkpoints.load_weights(run / "model.safetensors")
    key = next(k for k, t in w.items() if t.is_floating_point() and t.ndim > 1)
    w[key][0, 0] = float("nan")
    checkpoints.save_weights(run / "model.safetensors", w)
    with pytest.raises(CheckpointError, match="non-finite"):
        checkpoints.load_model(run)


def test_missing_folder_and_config(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoints.open_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        checkpoints.open_run(tmp_path / "empty")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    checkpoints.write_json(tmp_path / "a.json", {"x": 1})
    checkpoints.append_jsonl(tmp_path / "m.jsonl", {"epoch": 1})
    checkpoints.append_jsonl(tmp_path / "m.jsonl", {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "m.jsonl"]
    assert [r["epoch"] for r in checkpoints.read_jsonl(tmp_path / "m.jsonl")] == [1, 2]


def test_list_runs_finds_runs_with_weights(tmp_path):
    run = _run(tmp_path)
    (tmp_path / "notarun").mkdir()
    assert [r.path for r in checkpoints.list_runs([tmp_path])] == [run]
