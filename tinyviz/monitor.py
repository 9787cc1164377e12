"""Live progress of a training run: a terminal progress bar and `progress.json` for the dashboard.

The dashboard's Train page runs training in another process and polls this file, so it is
written atomically at most once a second and never forces a device synchronisation.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import checkpoints

if TYPE_CHECKING:
    from .train import Trainer

PROGRESS = "progress.json"
WRITE_EVERY = 1.0  # seconds


class Monitor:
    def __init__(self, out: Path, trainer: Trainer, bar: bool = True,
                 write: bool = True) -> None:
        self.path = Path(out) / PROGRESS
        self.enabled = write  # only one process of a distributed run writes
        self.t = trainer
        self.epochs = trainer.cfg.epochs
        self.steps = trainer.steps_per_epoch
        self.start = time.time()
        self.start_step = trainer.step
        self.last_write = 0.0
        self.last_row: dict | None = None
        self.bar = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(total=self.epochs * self.steps, initial=trainer.step,
                            unit="step", desc=f"{trainer.cfg.model}", dynamic_ncols=True)
        self.write("running")

    def step(self, epoch: int, step_in_epoch: int) -> None:
        if self.bar is not None:
            self.bar.update(1)
        now = time.time()
        if now - self.last_write >= WRITE_EVERY:
            self.write("running", epoch=epoch, step_in_epoch=step_in_epoch)

    def epoch_done(self, row: dict) -> None:
        self.last_row = row
        if self.bar is not None:
            self.bar.set_postfix(val_top1=f"{row['val_top1']:.3f}")
        self.write("running", epoch=row["epoch"], step_in_epoch=self.steps)

    def finish(self, status: str, message: str = "") -> None:
        if self.bar is not None:
            self.bar.close()
        self.write(status, message=message)

    def write(self, status: str, epoch: int | None = None, step_in_epoch: int = 0,
              message: str = "") -> None:
        now = time.time()
        self.last_write = now
        if not self.enabled:
            return
        done = self.t.step - self.start_step
        total = self.epochs * self.steps
        rate = done / max(now - self.start, 1e-9)  # steps/s since this process started
        eta = (total - self.t.step) / rate if rate > 0 and status == "running" else 0.0
        checkpoints.write_json(self.path, {
            "status": status, "pid": os.getpid(), "updated": now, "started": self.start,
            "epoch": epoch if epoch is not None else self.t.epoch, "epochs": self.epochs,
            "step": self.t.step, "total_steps": total,
            "images_per_s": round(rate * self.t.cfg.batch_size, 1),
            "eta_s": round(eta, 1), "message": message, "last": self.last_row,
        })


def read_progress(run_dir: Path) -> dict | None:
    p = Path(run_dir) / PROGRESS
    try:
        return checkpoints.read_json(p)
    except checkpoints.CheckpointError:
        return None
