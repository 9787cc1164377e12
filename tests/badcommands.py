"""Careless commands: each must be refused with one line and a non-zero exit, before any work
(none of them may decode the data set or create a run folder). Used by tests/test_cli_errors.py
and bench/hardening.py. `{run}` is a good run folder, `{file}` an existing file, `{new}` a
folder that does not exist yet; `--data /nonexistent` shows whether a refusal came first: had
the data been read, the message would be about the data.
"""

from __future__ import annotations

NO_DATA = "--data=/nonexistent"
NEW = ["train", NO_DATA, "--out", "{new}"]

COMMANDS: list[list[str]] = [
    ["train", NO_DATA],
    [*NEW, "--opt", "bogus=1"],
    [*NEW, "--opt", "novalue"],
    [*NEW, "--opt", "=3"],
    ["train", NO_DATA, "--out", "{file}"],
    ["train", NO_DATA, "--out", "/proc/tinyviz/run"],
    ["train", NO_DATA, "--out", "{run}"],
    [*NEW, "--eval-batch-size", "0"],
    [*NEW, "--lr", "nan"],
    [*NEW, "--lr", "-0.1"],
    [*NEW, "--lr", "inf"],
    [*NEW, "--snapshots", "-2"],
    [*NEW, "--epochs", "0"],
    [*NEW, "--batch-size", "abc"],
    [*NEW, "--optimizer", "lion"],
    [*NEW, "--precision", "fp16"],
    [*NEW, "--model", "alexnet9000"],
    [*NEW, "--device", "cuda:7"],
    [*NEW, "--device", "tpu"],
    [*NEW, "--crop", "70"],
    [*NEW, "--mix-prob", "2"],
    [*NEW, "--label-smoothing", "1.5"],
    [*NEW, "--momentum", "1.0"],
    [*NEW, "--epochs", "3", "--epoch-views", "0,2"],
    [*NEW, "--epochs", "3", "--epoch-views", "2,5"],
    [*NEW, "--epochs", "3", "--epoch-views", "3,1"],
    [*NEW, "--epochs", "3", "--epoch-views", "2,2"],
    [*NEW, "--epoch-views", "1,x"],
    ["train", NO_DATA, "--resume", "{new}"],
    ["train", NO_DATA, "--resume", "{run}", "--lr", "0.1"],
    ["train", NO_DATA, "--resume", "{run}", "--epochs", "1"],
    ["train", NO_DATA, "--resume", "{run}"],
    ["evaluate", "{new}", NO_DATA],
    ["evaluate", "{run}", NO_DATA, "--ensemble", "0"],
    ["evaluate", "{run}", NO_DATA, "--limit", "-5"],
    ["evaluate", "{run}", NO_DATA, "--tta", "5crop"],
    ["evaluate", "{run}", NO_DATA, "--device", "tpu"],
    ["export", "{run}", "{run}"],
    ["export", "{run}", "{run}/../copy", "--snapshots", "-1"],
    ["search", NO_DATA, "--out", "{new}", "--trials", "0"],
    ["search", NO_DATA, "--out", "{new}", "--lr", "1", "0.1"],
    ["data", "/nonexistent"],
    ["no-such-command"],
    ["train", "--no-such-option"],
]
