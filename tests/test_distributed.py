"""`torchrun` with two CPU processes (gloo): the same trainer, one run folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import torch

from tinyviz import runs
from tinyviz.data.batches import DeviceSplit
from tinyviz.training.state import read_counters


def test_shards_split_one_order_without_overlap(tiny_data):
    split = DeviceSplit(tiny_data.train.images, tiny_data.train.labels, torch.device("cpu"))
    seen = []
    for rank in (0, 1):
        gen = torch.Generator().manual_seed(3)  # every process draws the same order
        batches = list(split.epoch(16, gen, shard=(rank, 2)))
        assert len(batches) == split.steps(16, shards=2) == 3
        seen.append(torch.cat([x for x, _ in batches]).flatten(1))
    assert len(seen[0]) == len(seen[1]) == 48
    # every generated image is distinct, so equal rows would mean one image in both shards
    both = torch.cat(seen)
    assert len(torch.unique(both, dim=0)) == 96 == len(split)


def test_torchrun_two_processes_train_one_run(tiny_zip, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "tinyviz",
        "train",
        "--data",
        str(tiny_zip),
        "--model",
        "mlp",
        "--opt",
        "hidden=32",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if res.returncode != 0 and "SIGABRT" in res.stderr:
        # gloo on a loaded 2-core machine now and then aborts a rank while the two connect
        # (SIGABRT, seen once in some hundred runs); a real fault fails the second time too.
        shutil.rmtree(out, ignore_errors=True)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["epochs"] == 2  # the first process reports
    run = runs.open_run(out)
    assert run.config.env["processes"] == 2
    assert [m.epoch for m in run.metrics] == [1, 2]
    state = read_counters(run.folder)
    assert state["step"] == 2 * (96 // 2 // 16)  # each process: half of every batch of 32
    runs.load_model(out)
