"""Training end to end on the CPU: run folder, evaluation, resume, divergence, CLI, search."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG

from tinyviz import io, runs
from tinyviz.config import AugmentConfig, TrainConfig
from tinyviz.errors import ConfigError, TrainingError
from tinyviz.runs.evaluate import evaluate_run
from tinyviz.training.loop import lr_at, train
from tinyviz.training.search import random_search
from tinyviz.training.state import read_counters

SMALL = TrainConfig(
    model="resnet18", model_options={"width": 8}, epochs=2, batch_size=32, lr=0.05, snapshots=2
)


@pytest.fixture(scope="module")
def data(tiny_data):
    return tiny_data


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory) -> Path:
    """A copy of the session's trained run (`TINY_CONFIG`): these tests record evaluations."""
    out = tmp_path_factory.mktemp("runs") / "r"
    shutil.copytree(tiny_run, out)
    return out


def test_run_folder_holds_everything(run):
    r = runs.open_run(run)
    epochs, kept = TINY_CONFIG["epochs"], TINY_CONFIG["snapshots"]
    assert r.model_name == "resnet18" and len(r.wnids) == 4
    assert r.config.train.epochs == epochs and r.config.model.params > 0
    assert r.config.env["torch"] == torch.__version__
    assert [m.epoch for m in r.metrics] == list(range(1, epochs + 1))
    assert all(m.images_per_s > 0 and m.seconds > 0 and 0 <= m.val_top1 <= 1 for m in r.metrics)
    snaps = r.snapshots
    tops = [s.top1 for s in snaps]
    assert len(snaps) == kept >= 2 and tops == sorted(tops, reverse=True)
    assert all(r.snapshot_path(s).exists() for s in snaps)
    assert len(list((run / "snapshots").glob("*.safetensors"))) == kept
    assert json.loads((run / "progress.json").read_text())["status"] == "done"
    # the resume state is one file (one atomic commit), and no temporary file is left
    assert (run / "resume.safetensors").exists() and not (run / "state.json").exists()
    assert not list(run.rglob("*.tmp"))


def test_trained_model_learns_the_classes(run, data):
    result = evaluate_run(run, data, record=False)
    assert result["n"] == 24 and result["top1"] >= 0.75  # chance is 0.25
    model = runs.load_model(run)
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 4)


def test_evaluate_tta_ensemble_and_record(run, data):
    for tta in ("flip", "10crop"):
        assert evaluate_run(run, data, tta=tta)["tta"] == tta
    ens = evaluate_run(run, data, ensemble_size=2)
    assert ens["ensemble"] == 2 and len(ens["curve"]) == 2
    recorded = runs.open_run(run).evals
    assert {(e.tta, e.ensemble) for e in recorded} >= {("flip", 1), ("10crop", 1), ("none", 2)}


class Killed(Exception):
    pass


def _kill_after(epochs: int):
    """A `log` callback that stops training after `epochs` epochs, as a kill would."""
    seen = []

    def log(line: str) -> None:
        seen.append(line)
        if len(seen) >= epochs:
            raise Killed()

    return log


def test_resume_after_kill_loses_at_most_one_epoch(data, tmp_path):
    out = tmp_path / "r"
    cfg = SMALL.replace(epochs=4)
    with pytest.raises(Killed):
        train(cfg, data, out, progress=False, log=_kill_after(2))
    train(cfg, data, out, resume=True, progress=False, log=lambda s: None)
    assert [m["epoch"] for m in io.read_jsonl(out / "metrics.jsonl")] == [1, 2, 3, 4]
    state = read_counters(runs.RunFolder(out))
    assert state["epoch"] == 4 and state["step"] == 4 * (96 // 32)


def test_resume_with_more_epochs_extends_a_finished_run(data, tmp_path):
    out = tmp_path / "r"
    train(SMALL.replace(epochs=1), data, out, progress=False, log=lambda s: None)
    with pytest.raises(ConfigError, match="already finished all 1 epochs"):
        train(None, data, out, resume=True, progress=False, log=lambda s: None)
    train(None, data, out, resume=True, epochs=2, progress=False, log=lambda s: None)
    r = runs.open_run(out)
    assert [m.epoch for m in r.metrics] == [1, 2] and r.config.train.epochs == 2
    with pytest.raises(ConfigError, match="cannot shorten"):
        train(None, data, out, resume=True, epochs=1, progress=False, log=lambda s: None)


def test_a_new_run_never_lands_on_an_existing_one(run, data, tmp_path):
    """Shipped and exported runs have no resume state: they must be refused too."""
    from tinyviz.runs.export import export_run

    export_run(run, tmp_path / "shipped")
    before = {p.name: p.read_bytes() for p in (tmp_path / "shipped").iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match="already holds a run"):
        train(
            SMALL.replace(model="logreg", model_options={}, epochs=1),
            data,
            tmp_path / "shipped",
            progress=False,
        )
    after = {p.name: p.read_bytes() for p in (tmp_path / "shipped").iterdir() if p.is_file()}
    assert after == before
    train(
        SMALL.replace(model="logreg", model_options={}, epochs=1),
        data,
        tmp_path / "shipped",
        overwrite=True,
        progress=False,
        log=lambda s: None,
    )
    replaced = runs.open_run(tmp_path / "shipped")
    assert replaced.model_name == "logreg" and replaced.evals == ()


def test_resume_is_exact(data, tmp_path):
    """A run killed after epoch 1 and resumed ends with the weights of an uninterrupted one."""
    cfg = SMALL.replace(epochs=2, augment=AugmentConfig(mixup=0.2), ema=0.9)
    straight, split = tmp_path / "a", tmp_path / "b"
    train(cfg, data, straight, progress=False, log=lambda s: None)
    with pytest.raises(Killed):
        train(cfg, data, split, progress=False, log=_kill_after(1))
    train(cfg, data, split, resume=True, progress=False, log=lambda s: None)
    a = runs.load_weights(straight / "model.safetensors")
    b = runs.load_weights(split / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path):
    out = tmp_path / "r"
    train(SMALL.replace(epochs=1), data, out, progress=False, log=lambda s: None)
    good = (out / "model.safetensors").read_bytes()
    conf = io.read_json(out / "config.json")
    conf["train"].update(epochs=3, lr=1e30, schedule="constant")
    io.write_json(out / "config.json", conf)
    with pytest.raises(TrainingError, match=r"non-finite.*epoch 1\) is kept"):
        train(None, data, out, resume=True, progress=False, log=lambda s: None)
    assert (out / "model.safetensors").read_bytes() == good
    assert json.loads((out / "progress.json").read_text())["status"] == "failed"
    runs.load_model(out)  # still loads


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "step", "constant"])
def test_schedules_start_positive_and_end_low(schedule):
    cfg = TrainConfig(schedule=schedule, epochs=10, lr=0.1, lr_decay=0.5, warmup=0.2)
    rates = [lr_at(cfg, step, 100) for step in range(1000)]
    assert all(r > 0 for r in rates[:-1]) and max(rates) == pytest.approx(0.1, rel=0.05)
    expected_last = {"onecycle": 1e-4, "cosine": 1e-4, "step": 0.1 * 0.5**9, "constant": 0.1}
    assert rates[-1] == pytest.approx(expected_last[schedule], abs=1e-4)
    if schedule != "constant":  # after the peak the rate only goes down
        peak = rates.index(max(rates))
        assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1 :], strict=False))


def _cli(*args, env_extra=None, **kw):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "tinyviz", *args], capture_output=True, text=True, env=env, **kw
    )


@pytest.mark.slow
def test_cli_train_and_evaluate_print_json(tiny_zip, tmp_path):
    out = tmp_path / "cli"
    res = _cli(
        "train",
        "--data",
        str(tiny_zip),
        "--model",
        "logreg",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--out",
        str(out),
        "--quiet",
        "--rotate",
        "5",
        "--no-flip",
    )
    assert res.returncode == 0, res.stderr
    line = json.loads(res.stdout.strip().splitlines()[-1])
    assert line["epochs"] == 1 and 0 <= line["best_val_top1"] <= 1
    cfg = io.read_json(out / "config.json")["train"]
    assert cfg["optimizer"] == "adam" and cfg["augment"]["rotate"] == 5
    assert cfg["augment"]["flip"] is False
    res = _cli("evaluate", str(out), "--data", str(tiny_zip), "--tta", "flip")
    assert res.returncode == 0, res.stderr
    score = json.loads(res.stdout)
    assert score["n"] == 24 and score["tta"] == "flip" and {"top1", "top5", "loss"} <= set(score)
    again = _cli("train", "--data", str(tiny_zip), "--model", "logreg", "--out", str(out))
    assert again.returncode == 2 and "--resume" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_sigterm_stops_cleanly_and_resume_finishes(tiny_zip, tmp_path):
    out = tmp_path / "stop"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tinyviz",
            "train",
            "--data",
            str(tiny_zip),
            "--model",
            "resnet18",
            "--opt",
            "width=8",
            "--epochs",
            "30",
            "--batch-size",
            "16",
            "--out",
            str(out),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "resume.safetensors").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert json.loads((out / "progress.json").read_text())["status"] == "stopped"
    done = len(io.read_jsonl(out / "metrics.jsonl"))
    assert 1 <= done < 30
    res = _cli("train", "--resume", str(out), "--epochs", str(done + 1), "--quiet")
    assert res.returncode == 0, res.stderr
    assert len(io.read_jsonl(out / "metrics.jsonl")) == done + 1
    assert io.read_json(out / "config.json")["train"]["epochs"] == done + 1


def test_export_halves_weights_and_still_loads(run, tmp_path):
    from tinyviz.runs.export import export_run

    info = export_run(run, tmp_path / "half", snapshots=1)
    assert info["snapshots"] == 1
    w = runs.load_weights(tmp_path / "half" / "model.safetensors")
    assert all(t.dtype == torch.float16 for t in w.values() if t.is_floating_point())
    full = runs.load_model(run)
    half = runs.load_model(tmp_path / "half")
    x = torch.rand(4, 3, 64, 64)
    assert torch.allclose(full(x).softmax(1), half(x).softmax(1), atol=0.02)


def test_random_search_writes_scatter_data(data, tmp_path):
    base = TrainConfig(model="logreg", epochs=1, batch_size=32, optimizer="adam")
    result = random_search(
        base, data, tmp_path, trials=2, lr_range=(1e-4, 1e-2), wd_range=(1e-6, 1e-4), progress=False
    )
    rows = io.read_json(tmp_path / "search.json")["trials"]
    assert result["trials"] == 2 and len(rows) == 2
    assert all(1e-4 <= r["lr"] <= 1e-2 and 0 <= r["val_top1"] <= 1 for r in rows)
