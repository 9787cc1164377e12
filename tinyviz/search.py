"""Random search over learning rate and weight decay (seeds 002 and 004), log-uniform.

Each trial is an ordinary run folder, so it can be inspected and resumed like any other;
`search.json` is rewritten after every trial so the dashboard can plot partial results.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import checkpoints
from .config import TrainConfig
from .train import train

SEARCH = "search.json"


def sample(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def random_search(base: TrainConfig, data, out: Path, *, trials: int = 8,
                  lr_range=(1e-3, 1.0), wd_range=(1e-6, 1e-3), progress: bool = True,
                  log=lambda line: None) -> dict:
    rng = np.random.default_rng(base.seed)
    rows = []
    for k in range(trials):
        cfg = base.replace(lr=sample(rng, *lr_range), weight_decay=sample(rng, *wd_range),
                           seed=base.seed + k)
        run = Path(out) / f"trial_{k:02d}"
        train(cfg, data, run, progress=progress, log=log)
        metrics = checkpoints.read_jsonl(run / checkpoints.METRICS)
        rows.append({"trial": k, "lr": cfg.lr, "weight_decay": cfg.weight_decay,
                     "val_top1": max(m["val_top1"] for m in metrics), "run": run.name})
        checkpoints.write_json(Path(out) / SEARCH, {"model": base.model, "epochs": base.epochs,
                                                    "train_limit": base.train_limit,
                                                    "trials": rows})
    best = max(rows, key=lambda r: r["val_top1"])
    return {"out": str(out), "trials": len(rows), "best": best}


def read_search(folder: Path) -> dict | None:
    p = Path(folder) / SEARCH
    return checkpoints.read_json(p) if p.exists() else None
