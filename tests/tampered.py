"""Tampered run folders: every way a downloaded or hand-edited run can be wrong.

Each case turns a copy of a good run folder into a bad one. What must happen is the same for
all: the run is listed as broken with a one-line reason (or, where only an optional part is
bad, that part is refused when used), nothing hangs, nothing outside the folder is read, and
the rest of the app goes on. Used by tests/test_run_folder.py and bench/hardening.py.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

Case = Callable[[Path], None]


def _json(run: Path, name: str, change: Callable[[dict], object]) -> None:
    path = run / name
    obj = json.loads(path.read_text())
    path.write_text(json.dumps(change(obj)))


def _set(keys: str, value) -> Callable[[dict], dict]:
    def change(obj: dict) -> dict:
        *parents, last = keys.split(".")
        d = obj
        for k in parents:
            d = d[k]
        d[last] = value
        return obj

    return change


def _drop(keys: str) -> Callable[[dict], dict]:
    def change(obj: dict) -> dict:
        *parents, last = keys.split(".")
        d = obj
        for k in parents:
            d = d[k]
        del d[last]
        return obj

    return change


def _metrics_line(line: str) -> Case:
    def case(run: Path) -> None:
        with open(run / "metrics.jsonl", "a") as f:
            f.write(line + "\n")

    return case


def _metrics_field(key: str, value) -> Case:
    def case(run: Path) -> None:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        rows[0][key] = value
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    return case


def _text(name: str, text: str) -> Case:
    def case(run: Path) -> None:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)

    return case


def _index(entries) -> Case:
    return _text("snapshots/index.json", json.dumps(entries))


def _replace_weights(make: Callable[[Path], None]) -> Case:
    def case(run: Path) -> None:
        (run / "model.safetensors").unlink()
        make(run / "model.safetensors")

    return case


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _link_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _link_outside(run: Path) -> None:
    """Real weights, but the file is a link to a copy outside the run folder."""
    outside = run.parent / f"{run.name}-outside.safetensors"
    shutil.move(run / "model.safetensors", outside)
    (run / "model.safetensors").symlink_to(outside)


def _int_weights(run: Path) -> None:
    import torch

    from tinyviz.runs import load_weights, save_weights

    tensors = load_weights(run / "model.safetensors")
    key = next(k for k, t in tensors.items() if t.is_floating_point() and t.ndim > 1)
    tensors[key] = tensors[key].to(torch.int64)
    save_weights(run / "model.safetensors", tensors)


def _nan_weights(run: Path) -> None:
    from tinyviz.runs import load_weights, save_weights

    tensors = load_weights(run / "model.safetensors")
    key = next(k for k, t in tensors.items() if t.is_floating_point() and t.ndim > 1)
    tensors[key].view(-1)[0] = float("nan")
    save_weights(run / "model.safetensors", tensors)


def _config_as(text: str) -> Case:
    return _text("config.json", text)


def _config(change) -> Case:
    return lambda run: _json(run, "config.json", change)


# name -> (how to break it, where it must be refused: "scan" = listed as broken (the weights'
#          header is checked then); "load" = listed, but its weights are refused when loaded)
CASES: dict[str, tuple[Case, str]] = {
    "config is a JSON list": (_config_as("[1, 2, 3]"), "scan"),
    "config is not JSON": (_config_as("{model: resnet18"), "scan"),
    "config is empty": (_config_as(""), "scan"),
    "config is 40 MB": (_config_as('{"x": "' + "a" * 40_000_000 + '"}'), "scan"),
    "config nested 100,000 deep": (_config_as("[" * 100_000 + "]" * 100_000), "scan"),
    "model is a string": (_config(_set("model", "logreg")), "scan"),
    "model name is a number": (_config(_set("model.name", 18)), "scan"),
    "model is unknown": (_config(_set("model.name", "alexnet9000")), "scan"),
    "model option unknown": (_config(_set("model.options", {"bogus": 1})), "scan"),
    "model options a list": (_config(_set("model.options", [1])), "scan"),
    "wnids is a number": (_config(_set("classes.wnids", 200)), "scan"),
    "wnids and names differ in length": (_config(_set("classes.names", ["a"])), "scan"),
    "a wnid twice": (
        _config(
            lambda c: _set(
                "classes.wnids", [c["classes"]["wnids"][0]] * len(c["classes"]["wnids"])
            )(c)
        ),
        "scan",
    ),
    "classes missing": (_config(_drop("classes")), "scan"),
    "train missing": (_config(_drop("train")), "scan"),
    "train epochs a string": (_config(_set("train.epochs", "6")), "scan"),
    "train lr negative": (_config(_set("train.lr", -1.0)), "scan"),
    "train optimizer unknown": (_config(_set("train.optimizer", "lion")), "scan"),
    "train precision fp16": (_config(_set("train.precision", "fp16")), "scan"),
    "augment not an object": (_config(_set("train.augment", 5)), "scan"),
    "env not an object": (_config(_set("env", "gpu")), "scan"),
    "config is a FIFO": (
        lambda run: ((run / "config.json").unlink(), os.mkfifo(run / "config.json")),
        "scan",
    ),
    "config links to /etc/passwd": (
        lambda run: (
            (run / "config.json").unlink(),
            (run / "config.json").symlink_to("/etc/passwd"),
        ),
        "scan",
    ),
    "metrics line is a number": (_metrics_line("5"), "scan"),
    "metrics line is a list": (_metrics_line("[1, 2]"), "scan"),
    "metrics val_top1 'high'": (_metrics_field("val_top1", "high"), "scan"),
    "metrics epoch missing": (_metrics_field("epoch", None), "scan"),
    "metrics is a directory": (
        lambda run: ((run / "metrics.jsonl").unlink(), (run / "metrics.jsonl").mkdir()),
        "scan",
    ),
    "evals not JSON": (_text("evals.json", "[{"), "scan"),
    "evals a dict": (_text("evals.json", '{"top1": 1}'), "scan"),
    "evals top1 a string": (
        _text(
            "evals.json",
            json.dumps(
                [
                    {
                        "split": "val",
                        "tta": "none",
                        "ensemble": 1,
                        "top1": "0.9",
                        "top5": 1.0,
                        "loss": 0.1,
                        "n": 10,
                    }
                ]
            ),
        ),
        "scan",
    ),
    "snapshot index not JSON": (_text("snapshots/index.json", "nope"), "scan"),
    "snapshot index to /dev/zero": (
        _index([{"epoch": 1, "top1": 0.5, "file": "../../../../dev/zero"}]),
        "scan",
    ),
    "snapshot index to /etc/passwd": (
        _index([{"epoch": 1, "top1": 0.5, "file": "../etc/passwd"}]),
        "scan",
    ),
    "snapshot index absolute path": (
        _index([{"epoch": 1, "top1": 0.5, "file": "/etc/passwd"}]),
        "scan",
    ),
    "snapshot index entry a string": (_index(["epoch_001.safetensors"]), "scan"),
    "weights a FIFO": (_replace_weights(_fifo), "scan"),
    "weights link to /dev/zero": (_replace_weights(_link_zero), "scan"),
    "weights link outside the run": (_link_outside, "scan"),
    "weights a pickle": (
        _replace_weights(
            lambda p: p.write_bytes(
                b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93."
            )
        ),
        "scan",
    ),
    "weights empty": (_replace_weights(lambda p: p.write_bytes(b"")), "scan"),
    "weights header lies": (
        _replace_weights(lambda p: p.write_bytes((10**12).to_bytes(8, "little") + b"{}")),
        "scan",
    ),
    "weights as int64": (_int_weights, "load"),
    "weights hold NaN": (_nan_weights, "load"),
}
