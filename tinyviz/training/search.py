"""Random search over learning rate and weight decay (seeds 002 and 004), log-uniform.

Each trial is an ordinary run folder, so it can be inspected and resumed like any other;
`search.json` (`tinyviz.runs.search`) is rewritten after every trial so the dashboard can
plot partial results.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..errors import ConfigError
from ..runs import folder as runfiles
from ..runs.search import SearchRecord, Trial, write_search
from .loop import train


def sample(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def random_search(
    base: TrainConfig,
    data,
    out: Path,
    *,
    trials: int = 8,
    lr_range=(1e-3, 1.0),
    wd_range=(1e-6, 1e-3),
    progress: bool = True,
    log=lambda line: None,
) -> dict:
    check_ranges(trials, lr_range, wd_range)
    rng = np.random.default_rng(base.seed)
    rows: list[Trial] = []
    for k in range(trials):
        cfg = base.replace(
            lr=sample(rng, *lr_range), weight_decay=sample(rng, *wd_range), seed=base.seed + k
        )
        run = Path(out) / f"trial_{k:02d}"
        train(cfg, data, run, progress=progress, log=log)
        metrics = runfiles.read_metrics(runfiles.RunFolder(run))
        rows.append(Trial(k, cfg.lr, cfg.weight_decay, max(m.val_top1 for m in metrics), run.name))
        write_search(
            Path(out), SearchRecord(base.model, base.epochs, base.train_limit, tuple(rows))
        )
    best = max(rows, key=lambda r: r.val_top1)
    return {"out": str(out), "trials": len(rows), "best": dataclasses.asdict(best)}


def check_ranges(trials: int, lr_range, wd_range) -> None:
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, not {trials}")
    for name, (lo, hi) in (("--lr", lr_range), ("--wd", wd_range)):
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ConfigError(f"{name} wants 0 < MIN <= MAX, not {lo} {hi}")
